"""The GRU keyword model: one set of GRUCell weights serves the unrolled training model and the
one-time-step model that is exported to int8 and runs on the device.

Per-band feature normalization is a fixed first layer during training and is folded into the
GRU input kernel for export, so the device feeds raw log-mel frames (quantized with the model's
input scale) and does no normalization of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # same float results run to run

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kws.model.config import ModelConfig  # noqa: E402


@dataclass
class GruModel:
    """The training model plus handles on its parts (shared weights)."""

    model: keras.Model
    cells: list  # keras GRUCell per layer, reset_after=True
    dense: keras.layers.Dense
    mean: np.ndarray
    std: np.ndarray


def build(config: ModelConfig, frames: int, bands: int, labels: int,
          mean: np.ndarray, std: np.ndarray) -> GruModel:
    """[frames, bands] log-mel -> (x - mean) / std -> GRU x layers -> dropout -> Dense(labels)."""
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    inp = keras.Input((frames, bands), name="log_mel")
    x = keras.layers.Rescaling(1.0 / std, offset=-mean / std, name="normalize")(inp)
    layers = []
    for i in range(config.layers):
        gru = keras.layers.GRU(config.units, reset_after=True, return_sequences=i + 1 < config.layers,
                               name=f"gru{i}")
        x = gru(x)
        layers.append(gru)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    dense = keras.layers.Dense(labels, name="logits")
    out = dense(x)
    model = keras.Model(inp, out, name="kws_gru")
    return GruModel(model, [g.cell for g in layers], dense, mean, std)


def step_model(gm: GruModel) -> keras.Model:
    """One time step: (frame [1,F] raw log-mel, state [1, L*H]) -> (new_state, logits).

    A fresh GRUCell per layer takes the trained weights, with the normalization folded into the
    first input kernel and bias: x_n = (x - m)/s, so x_n W + b = x (W/s) + (b - (m/s) W).
    """
    bands = gm.mean.shape[0]
    units = gm.cells[0].units
    frame = keras.Input((bands,), batch_size=1, name="frame")
    state = keras.Input((units * len(gm.cells),), batch_size=1, name="state")
    x = frame
    new_states = []
    for i, cell in enumerate(gm.cells):
        kernel, recurrent, bias = (np.asarray(w) for w in cell.get_weights())
        if i == 0:
            bias = bias.copy()
            bias[0] = bias[0] - (gm.mean / gm.std) @ kernel
            kernel = kernel / gm.std[:, None]
        step_cell = keras.layers.GRUCell(units, reset_after=True, name=f"gru{i}_step")
        h_in = state if len(gm.cells) == 1 else keras.layers.Lambda(
            lambda s, i=i: s[:, i * units:(i + 1) * units])(state)
        step_cell.build((1, x.shape[-1]))
        step_cell.set_weights([kernel, recurrent, bias])
        h, _ = step_cell(x, [h_in])
        new_states.append(h)
        x = h
    new_state = new_states[0] if len(new_states) == 1 else keras.layers.Concatenate()(new_states)
    out_dense = keras.layers.Dense(gm.dense.units, name="logits_step")
    out_dense.build((1, units))
    out_dense.set_weights(gm.dense.get_weights())
    logits = out_dense(x)
    return keras.Model([frame, state], [new_state, logits], name="kws_gru_step")


def macs_per_step(config: ModelConfig, bands: int, labels: int) -> int:
    """Multiply-accumulates of one step: 3 gates x (input + recurrent) per layer + output."""
    h = config.units
    total, inputs = 0, bands
    for _ in range(config.layers):
        total += 3 * h * (inputs + h)
        inputs = h
    return total + h * labels


def run_step_float(step: keras.Model, frames: np.ndarray, state_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Float step model over [N, T, F] clips in one batch per time step: (states [N,T,H'],
    logits at the last frame [N, C]). Used for calibration data and the agreement check."""
    import tensorflow as tf

    n, t, _ = frames.shape
    # The step model's inputs say batch 1 (for export); calling its layers on a batch works.
    fn = tf.function(lambda f, s: step([f, s], training=False), reduce_retracing=True)
    state = np.zeros((n, state_size), np.float32)
    states = np.zeros((n, t, state_size), np.float32)
    logits = None
    for i in range(t):
        new_state, logits = fn(tf.constant(frames[:, i]), tf.constant(state))
        state = new_state.numpy()
        states[:, i] = state
    return states, np.asarray(logits)


@dataclass
class StreamingModel:
    """The streaming training model and the clip model that share its layers.

    `sequence`: ([frames [B, T, F], state of each layer [B, H]...]) -> (logits [B, T, C], new
    state of each layer...), so truncated BPTT can carry the state from chunk to chunk.
    `clip.model`: [frames of a clip] -> logits at its last frame from the zero state, which is
    how `kws eval` scores a clip with the streaming model (and what model.keras holds)."""

    sequence: keras.Model
    clip: GruModel


def build_streaming(config: ModelConfig, clip_frames: int, bands: int, labels: int,
                    mean: np.ndarray, std: np.ndarray) -> StreamingModel:
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    normalize = keras.layers.Rescaling(1.0 / std, offset=-mean / std, name="normalize")
    grus = [keras.layers.GRU(config.units, reset_after=True, return_sequences=True,
                             return_state=True, name=f"gru{i}") for i in range(config.layers)]
    dropout = keras.layers.Dropout(config.dropout, name="dropout")
    dense = keras.layers.Dense(labels, name="logits")

    frames = keras.Input((None, bands), name="log_mel")
    states_in = [keras.Input((config.units,), name=f"state{i}") for i in range(config.layers)]
    x, states_out = normalize(frames), []
    for gru, h0 in zip(grus, states_in):
        x, h = gru(x, initial_state=h0)
        states_out.append(h)
    sequence = keras.Model([frames, *states_in], [dense(dropout(x)), *states_out],
                           name="kws_gru_stream")

    clip_in = keras.Input((clip_frames, bands), name="log_mel_clip")
    y = normalize(clip_in)
    for gru in grus:
        y, _ = gru(y)
    y = keras.layers.Cropping1D((clip_frames - 1, 0), name="last_frame")(y)
    y = keras.layers.Flatten(name="flat")(dense(dropout(y)))
    clip = keras.Model(clip_in, y, name="kws_gru")
    return StreamingModel(sequence, GruModel(clip, [g.cell for g in grus], dense, mean, std))
