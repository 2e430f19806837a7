"""A random-weight int8 GRU step model made by the project's own export path: the fixed shape
the cost figures compare (the GRU-64 step that TFLM + CMSIS-NN was measured on, DESIGN.md), and
the models the native-backend tests run. Instruction counts of the generated C depend on the
shapes and on which exact integer forms the constants allow, not on trained values.

Biases are set to random non-zero values so the bias arithmetic is exercised.
"""

from __future__ import annotations

import numpy as np

FRAMES, BANDS = 49, 40
# TFLM with CMSIS-NN kernels on the emulated Cortex-M4, GRU-64 step model (DESIGN.md, "Where
# the time goes"): the baseline the native backend's step is compared with.
TFLM_CMSIS_NN_GRU64_STEP = 177_000


def gru_step_tflite(units: int = 64, labels: int = 12, layers: int = 1,
                    per_channel: bool = True, seed: int = 0, bands: int = BANDS) -> bytes:
    """The int8 step model (frame, state) -> (logits, new state) of a random GRU."""
    from kws.export import convert
    from kws.model import gru  # sets the TF environment before keras loads
    from kws.model.config import ModelConfig

    gru.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed + 1000 * units + labels)
    mean = rng.uniform(-9.0, -3.0, bands).astype(np.float32)  # raw log-mel statistics
    std = rng.uniform(2.0, 4.0, bands).astype(np.float32)
    gm = gru.build(ModelConfig(units=units, layers=layers), FRAMES, bands, labels, mean, std)
    for cell in gm.cells:
        kernel, recurrent, bias = cell.get_weights()
        cell.set_weights([kernel, recurrent, rng.normal(0.0, 0.5, bias.shape).astype(np.float32)])
    weights, bias = gm.dense.get_weights()
    gm.dense.set_weights([weights, rng.normal(0.0, 0.3, bias.shape).astype(np.float32)])
    step = gru.step_model(gm)
    frames = (mean + std * rng.standard_normal((256, bands))).astype(np.float32)
    states = rng.uniform(-1.0, 1.0, (256, units * layers)).astype(np.float32)
    raw = convert.to_int8_tflite(step, frames, states, per_channel=per_channel)
    fixed, _ = convert.share_state(raw)
    return fixed
