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
    from kws.export import convert
    from kws.model import gru  # sets the TF environment before keras loads
    from kws.model.config import ModelConfig

    gru.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed + 1000 * units + labels)
    mean = rng.uniform(-9.0, -3.0, BANDS).astype(np.float32)  # raw log-mel statistics
    std = rng.uniform(2.0, 4.0, BANDS).astype(np.float32)
    gm = gru.build(ModelConfig(units=units, layers=layers), FRAMES, BANDS, labels, mean, std)
    for cell in gm.cells:
        kernel, recurrent, bias = cell.get_weights()
        cell.set_weights([kernel, recurrent, rng.normal(0.0, 0.5, bias.shape).astype(np.float32)])
    weights, bias = gm.dense.get_weights()
    gm.dense.set_weights([weights, rng.normal(0.0, 0.3, bias.shape).astype(np.float32)])
    step = gru.step_model(gm)
    state_size = units * layers
    frames = (mean + std * rng.standard_normal((256, BANDS))).astype(np.float32)
    states = rng.uniform(-1.0, 1.0, (256, state_size)).astype(np.float32)
    raw = convert.to_int8_tflite(step, frames, states, per_channel=per_channel)
    fixed, _ = convert.share_state(raw)
    return fixed


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
