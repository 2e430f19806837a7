"""Keras step model -> full-integer int8 TFLite with one shared state quantization."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from kws.errors import KwsError
from kws.model import gru  # sets the TF environment first

import tensorflow as tf  # noqa: E402

CALIBRATION_PAIRS = 2000
STATE_SCALE = 1.0 / 128.0  # the state lives in [-1, 1]; int8 covers [-1, 127/128]
STATE_ZERO_POINT = 0


def calibration_pairs(step, frames: np.ndarray, state_size: int, seed: int,
                      pairs: int = CALIBRATION_PAIRS) -> tuple[np.ndarray, np.ndarray]:
    """(frame, state) pairs the step model really sees: real training frames and the states the
    float model reaches on them (the zero start state included)."""
    states, _ = gru.run_step_float(step, frames, state_size)
    before = np.concatenate([np.zeros_like(states[:, :1]), states[:, :-1]], axis=1)
    f = frames.reshape(-1, frames.shape[-1])
    s = before.reshape(-1, state_size)
    pick = np.random.default_rng(seed).choice(len(f), size=min(pairs, len(f)), replace=False)
    return f[np.sort(pick)], s[np.sort(pick)]


def to_int8_tflite(step, frames: np.ndarray, states: np.ndarray, per_channel: bool = True) -> bytes:
    """Full-integer conversion (int8 in and out) calibrated on the given pairs."""

    def representative():
        for f, s in zip(frames, states):
            yield {"frame": f[None].astype(np.float32), "state": s[None].astype(np.float32)}

    with tempfile.TemporaryDirectory(prefix="kws-export-") as tmp:
        step.export(str(Path(tmp) / "saved"), verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved"))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        # No public switch exists for this in TF 2.21; the attribute is what the converter reads.
        conv._experimental_disable_per_channel = not per_channel
        from kws.export.tflm import captured_stderr

        # The converter prints C++ progress lines and a deprecation warning of its own
        # calibration interpreter; keep the user's terminal for our messages.
        with warnings.catch_warnings(), captured_stderr() as log:
            warnings.simplefilter("ignore", UserWarning)
            try:
                return bytes(conv.convert())
            except Exception as exc:  # noqa: BLE001 - the converter raises many types
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise KwsError(f"int8 conversion of the step model failed: {detail}") from None
        del log


def share_state(tflite: bytes) -> tuple[bytes, dict]:
    """Give the state input and the new_state output one quantization (so the firmware copies
    new_state into state) and return the model with its input/output description."""
    from kws.export.state_quant import find_io, share_state_quantization

    io = find_io(tflite)
    fixed = share_state_quantization(tflite, io["state"].tensor, io["new_state"].tensor,
                                     STATE_SCALE, STATE_ZERO_POINT)
    return fixed, find_io(fixed)
