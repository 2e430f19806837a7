"""keras: the float model the training exported (model.keras), on librosa reference features."""

from __future__ import annotations

import numpy as np

from kws.evaluation.backends import Backend
from kws.features import reference


class KerasBackend(Backend):
    name = "keras"
    int8 = False
    features = "librosa reference"

    def run_clips(self, audio_int16: np.ndarray) -> np.ndarray:
        from kws.model import gru  # noqa: F401  (sets the TF environment)
        import keras

        model = keras.models.load_model(self.bundle.folder / "model.keras", compile=False)
        feats = reference.log_mel(audio_int16, self.bundle.manifest.features)
        return np.asarray(model.predict(feats, verbose=0, batch_size=256), np.float32)
