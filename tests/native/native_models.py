"""Models and inputs for the native-backend tests (imported by conftest.py and the tests; a
module name of its own, since several test folders have a conftest.py).

`build_step_model(units, labels, ...)`: a random-weight GRU step model made by the project's own
export path (kws.model.gru + kws.export.convert), biases set to random non-zero values so the
bias arithmetic is exercised. About half a second each; cached per process.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "runs" / "default" / "model.tflite"
FRAMES, BANDS = 49, 40


@functools.cache
def build_step_model(units: int, labels: int, layers: int = 1, per_channel: bool = True,
                     seed: int = 0) -> bytes:
    from kws.emulate.reference_model import gru_step_tflite

    return gru_step_tflite(units, labels, layers, per_channel, seed, BANDS)


def clip_frames(model_io, n: int, seed: int) -> np.ndarray:
    """[n, 49, F] int8 clips: half uniform over all int8 codes, half plausible log-mel frames
    quantized with the model's input quantization (so both saturated and mid-range gates occur)."""
    rng = np.random.default_rng(seed)
    width = model_io["frame"].width
    wild = rng.integers(-128, 128, (n - n // 2, FRAMES, width), dtype=np.int8)
    q = model_io["frame"]
    floats = -6.0 + 3.0 * rng.standard_normal((n // 2, FRAMES, width))  # log-mel-like values
    tame = np.clip(np.round(floats / q.scale) + q.zero_point, -128, 127).astype(np.int8)
    return np.concatenate([wild, tame])


# name -> (units, labels, layers, per_channel): one-layer models at the sizes the firmware
# targets, a two-layer one (adds CONCATENATION) and a per-tensor one (other FC multipliers)
BUILT = {
    "H16-C10": (16, 10, 1, True),
    "H64-C12": (64, 12, 1, True),
    "H128-C12": (128, 12, 1, True),
    "H16x2-C12": (16, 12, 2, True),
    "H32-C10-per-tensor": (32, 10, 1, False),
}
