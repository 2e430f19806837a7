"""Streaming training: truncated BPTT over endless synthetic streams with one carried state.

`lanes` streams run side by side (the batch). Each lane is endless: when its stream is used
up the next one continues it with the state carried over, so the model learns to live with
a state that has heard minutes of audio; with `reset_prob` per chunk a lane starts again
from zero (as after boot, and as `kws eval` scores a clip). One optimizer step per chunk of
`chunk_frames` frames; gradients stop at chunk borders. An epoch is `blocks_per_epoch`
blocks of `lanes` streams; validation runs fixed streams of validation-split speakers with
the state carried across all of them. Checkpoints (best validation loss, last) every epoch,
so Ctrl-C keeps the best model and `--resume` continues.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np

from kws.model.sequences import UNKNOWN, StreamMaker, TrainStream, word_bank
from kws.errors import KwsError
from kws.model import gru
from kws.model.config import TrainConfig
from kws.model.prepare import Prepared
from kws.model.train import CHECKPOINT_DIR, TrainResult, train_stage

PRETRAIN_DIR = "pretrain"

import keras  # noqa: E402  (after kws.model.gru set the TF environment)
import tensorflow as tf  # noqa: E402

KEYWORD_HIT = 0.5  # posterior that counts a keyword window as heard in the validation summary


def chunks_per_stream(config: TrainConfig) -> int:
    sc = config.streaming
    return max(1, round(sc.stream_seconds * 1000 / config.features.hop_ms / sc.chunk_frames))


def make_block(maker: StreamMaker, config: TrainConfig, count: int,
               rng: np.random.Generator) -> list[TrainStream]:
    frames = chunks_per_stream(config) * config.streaming.chunk_frames
    return [maker.make(frames, rng) for _ in range(count)]


def stack(streams: list[TrainStream]) -> dict[str, np.ndarray]:
    return {
        "x": np.stack([s.features for s in streams]).astype(np.float32),
        "y": np.stack([s.targets.labels for s in streams]),
        "w": np.stack([s.targets.weights for s in streams]),
        "win": np.stack([s.targets.window for s in streams]),
    }


def _segments(win: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids of (lane, keyword window) pairs in a chunk for the max-pooling loss; frames
    outside any window get the last id, which carries no weight."""
    b, t = win.shape
    key = np.where(win >= 0, np.arange(b)[:, None] * 1_000_000 + win, -1)
    uniq, inv = np.unique(key, return_inverse=True)
    ids = inv.reshape(b, t).astype(np.int32)
    seg_w = np.zeros(b * t + 1, np.float32)
    real = uniq >= 0
    seg_w[: len(uniq)][real] = 1.0
    ids = np.where(win >= 0, ids, b * t).astype(np.int32)
    return ids, seg_w


def _frame_loss(logits, y, w, win, ids, seg_w, maxpool: bool):
    logp = tf.nn.log_softmax(logits, axis=-1)
    target = tf.gather(logp, y, batch_dims=2)  # [B, T]
    if not maxpool:
        return -tf.reduce_sum(target * w) / tf.maximum(tf.reduce_sum(w), 1.0)
    outside = tf.cast(win < 0, tf.float32) * w
    n = tf.shape(seg_w)[0]
    best = tf.math.unsorted_segment_max(tf.reshape(target, [-1]), tf.reshape(ids, [-1]), n)
    kw = tf.reduce_sum(tf.where(seg_w > 0, best, 0.0))
    total = -(kw + tf.reduce_sum(target * outside))
    return total / tf.maximum(tf.reduce_sum(seg_w) + tf.reduce_sum(outside), 1.0)


class _Loop:
    def __init__(self, model: gru.StreamingModel, config: TrainConfig, steps_total: int):
        self.model = model
        self.clip_weight = config.streaming.clip_weight
        self.layers = config.model.layers
        self.maxpool = config.streaming.loss == "maxpool"
        warmup = min(steps_total // 20, 500)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config.learning_rate * 0.1,
            decay_steps=max(steps_total - warmup, 1),
            alpha=config.final_learning_rate / config.learning_rate,
            warmup_target=config.learning_rate, warmup_steps=warmup)
        self.optimizer = keras.optimizers.Adam(schedule, global_clipnorm=config.clip_global_norm)
        self.optimizer.build(model.sequence.trainable_variables)
        self._train = tf.function(self._train_step, reduce_retracing=True)
        self._eval = tf.function(self._eval_step, reduce_retracing=True)

    def _train_step(self, x, states, y, w, win, ids, seg_w, clip_x, clip_y):
        seq = self.model.sequence
        with tf.GradientTape() as tape:
            out = seq([x, *states], training=True)
            loss = _frame_loss(out[0], y, w, win, ids, seg_w, self.maxpool)
            if self.clip_weight:
                clip_logits = self.model.clip.model(clip_x, training=True)
                loss += self.clip_weight * tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(clip_y, clip_logits))
        grads = tape.gradient(loss, seq.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, seq.trainable_variables))
        return loss, out[1:]

    def _eval_step(self, x, states):
        out = self.model.sequence([x, *states], training=False)
        return out[0], out[1:]

    def train_chunk(self, batch: dict, states: list[np.ndarray], clips=None):
        """One optimizer step on a chunk; `clips` = (features [N, T, F], labels [N]) for the
        clip term (clip_weight > 0)."""
        ids, seg_w = _segments(batch["win"]) if self.maxpool else (
            np.zeros(batch["win"].shape, np.int32), np.zeros(1, np.float32))
        if clips is None:
            clips = (np.zeros((1, 1, batch["x"].shape[-1]), np.float32), np.zeros(1, np.int32))
        loss, new = self._train(tf.constant(batch["x"]), [tf.constant(s) for s in states],
                                tf.constant(batch["y"]), tf.constant(batch["w"]),
                                tf.constant(batch["win"]), tf.constant(ids), tf.constant(seg_w),
                                tf.constant(clips[0]), tf.constant(clips[1]))
        return float(loss), [np.asarray(s) for s in new]

    def run(self, x: np.ndarray, chunk: int) -> np.ndarray:
        """Float logits [B, T, C] of whole streams, one state per lane carried across chunks."""
        b = x.shape[0]
        states = [np.zeros((b, self.model.clip.cells[0].units), np.float32)
                  for _ in range(self.layers)]
        outs = []
        for c in range(0, x.shape[1], chunk):
            logits, new = self._eval(tf.constant(x[:, c:c + chunk]),
                                     [tf.constant(s) for s in states])
            outs.append(np.asarray(logits))
            states = [np.asarray(s) for s in new]
        return np.concatenate(outs, axis=1)


def validate(loop: _Loop, val: dict, chunk: int) -> dict:
    """Loss and frame accuracy on the unmasked frames, plus keyword windows heard (the right
    keyword's posterior >= 0.5 somewhere in its window) and keyword-posterior frames >= 0.5
    outside every keyword window, per hour."""
    logits = loop.run(val["x"], chunk)
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    y, w, win = val["y"], val["w"], val["win"]
    target = np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    loss = float(-(target * w).sum() / max(w.sum(), 1.0))
    acc = float(((logits.argmax(-1) == y) * w).sum() / max(w.sum(), 1.0))
    p = np.exp(logp)
    hits = total = 0
    for lane in range(len(y)):
        for k in np.unique(win[lane][win[lane] >= 0]):
            frames = win[lane] == k
            label = int(y[lane][frames][0])
            total += 1
            hits += bool(p[lane, frames, label].max() >= KEYWORD_HIT)
    kw_post = p[..., UNKNOWN + 1:].max(axis=-1)
    false = int(((kw_post >= KEYWORD_HIT) & (win < 0) & (w > 0)).sum())
    return {"val_loss": loss, "val_accuracy": acc, "val_keyword_hit": hits / max(total, 1),
            "val_false_frames": false}


def load_clip_run(source: str) -> keras.Model:
    path = Path(source)
    path = path / "model.keras" if path.is_dir() else path
    if not path.is_file():
        raise KwsError(f"{path}: streaming.init_from names no clip model (model.keras)")
    return keras.models.load_model(path, compile=False)


def init_from_clip_model(model: gru.StreamingModel, clip: keras.Model, config: TrainConfig,
                         where: str) -> None:
    """Start from a clip-trained model: its GRU and output weights (same width and layers)."""
    grus = [layer for layer in clip.layers if isinstance(layer, keras.layers.GRU)]
    dense = clip.get_layer("logits")
    if len(grus) != config.model.layers or grus[0].units != config.model.units or \
            dense.units != model.clip.dense.units:
        raise KwsError(f"{where}: streaming.init_from has {len(grus)} x GRU-{grus[0].units if grus else 0}"
                       f" with {dense.units} labels; this run is {config.model.layers} x "
                       f"GRU-{config.model.units} with {model.clip.dense.units} labels")
    for cell, src in zip(model.clip.cells, grus):
        cell.set_weights(src.cell.get_weights())
    model.clip.dense.set_weights(dense.get_weights())


def init_from_clip_run(model: gru.StreamingModel, source: str, config: TrainConfig) -> None:
    init_from_clip_model(model, load_clip_run(source), config, source)


def pretrain_on_clips(prep: Prepared, config: TrainConfig, run_dir: Path, resume: bool,
                      on_epoch: Callable[[int, dict], None]) -> tuple[keras.Model, dict]:
    """`streaming.pretrain_epochs` of ordinary clip training (RUN/checkpoints/pretrain), whose
    weights then start the streaming training: the clips teach the words quickly, the streams
    then teach one state to live with continuous audio."""
    clip_config = config.model_copy(update={
        "epochs": config.streaming.pretrain_epochs,
        "streaming": config.streaming.model_copy(update={"enabled": False})})
    return train_stage(prep, clip_config, run_dir / CHECKPOINT_DIR / PRETRAIN_DIR, "pretrain",
                       "clip pretraining", resume, on_epoch)


def train_streaming(prep: Prepared, config: TrainConfig, run_dir: Path, resume: bool = False,
                    on_epoch: Callable[[int, dict], None] = lambda _e, _l: None) -> TrainResult:
    started = time.perf_counter()
    sc = config.streaming
    if config.distill.teacher_units:
        raise KwsError("settings: distillation is not available with streaming.enabled")
    keras.utils.set_random_seed(config.seed)
    labels = len(prep.dataset.labels)
    clip_frames, bands = prep.splits["train"].features.shape[1:]
    model = gru.build_streaming(config.model, clip_frames, bands, labels, prep.mean, prep.std)
    pretrain = None
    if sc.init_from and not resume:
        init_from_clip_run(model, sc.init_from, config)
    elif sc.pretrain_epochs and not sc.init_from:
        clip, pretrain = pretrain_on_clips(prep, config, run_dir, resume, on_epoch)
        init_from_clip_model(model, clip, config, f"{run_dir}/{CHECKPOINT_DIR}/{PRETRAIN_DIR}")
    result = TrainResult(model.clip, pretrain=pretrain)
    train, val = prep.splits["train"], prep.splits["validation"]
    maker = StreamMaker(word_bank(train.audio, train.labels, sc.span_floor_db), prep.noise, sc, config.features)
    if not maker.keywords:
        raise KwsError("streaming training: the training split has no keyword clips")
    val_maker = StreamMaker(word_bank(val.audio, val.labels, sc.span_floor_db), prep.noise, sc, config.features)
    val_count = max(1, math.ceil(sc.validation_seconds / sc.stream_seconds))
    val_block = stack(make_block(val_maker, config, val_count,
                                 np.random.default_rng([config.seed, 7, 7])))
    n_chunks, chunk = chunks_per_stream(config), sc.chunk_frames
    steps_per_epoch = sc.blocks_per_epoch * n_chunks
    loop = _Loop(model, config, config.epochs * steps_per_epoch)
    ckpt = run_dir / CHECKPOINT_DIR
    ckpt.mkdir(parents=True, exist_ok=True)
    start_epoch, best_loss, earlier_seconds = 0, math.inf, 0.0
    if resume and (ckpt / "progress.json").is_file():
        progress = json.loads((ckpt / "progress.json").read_text())
        model.sequence.load_weights(ckpt / "last.weights.h5")
        start_epoch = progress["epoch"]
        result.history = progress["history"]
        result.best_epoch = progress["best_epoch"]
        result.best_val_accuracy = progress["best_val_accuracy"]
        best_loss = progress["best_val_loss"]
        earlier_seconds = progress.get("seconds", 0.0)  # training time before the resume
        loop.optimizer.iterations.assign(start_epoch * steps_per_epoch)
    units = config.model.units
    states = [np.zeros((sc.lanes, units), np.float32) for _ in range(config.model.layers)]
    try:
        for epoch in range(start_epoch, config.epochs):
            losses = []
            for block in range(sc.blocks_per_epoch):
                rng = np.random.default_rng([config.seed, epoch, block, 3])
                data = stack(make_block(maker, config, sc.lanes, rng))
                for c in range(n_chunks):
                    reset = rng.random(sc.lanes) < sc.reset_prob
                    states = [np.where(reset[:, None], 0.0, s).astype(np.float32) for s in states]
                    part = {k: v[:, c * chunk:(c + 1) * chunk] for k, v in data.items()}
                    clips = None
                    if sc.clip_weight:
                        pick = rng.integers(0, len(train.labels), config.batch_size)
                        clips = (train.features[pick].astype(np.float32),
                                 train.labels[pick].astype(np.int32))
                    loss, states = loop.train_chunk(part, states, clips)
                    losses.append(loss)
            logs = {"epoch": epoch + 1, "loss": float(np.mean(losses)),
                    **validate(loop, val_block, chunk)}
            result.history.append(logs)
            if logs["val_loss"] < best_loss:
                best_loss = logs["val_loss"]
                result.best_epoch, result.best_val_accuracy = epoch + 1, logs["val_accuracy"]
                model.sequence.save_weights(ckpt / "best.weights.h5")
            model.sequence.save_weights(ckpt / "last.weights.h5")
            (ckpt / "progress.json").write_text(json.dumps({
                "epoch": epoch + 1, "best_epoch": result.best_epoch, "best_val_loss": best_loss,
                "best_val_accuracy": result.best_val_accuracy, "history": result.history,
                "seconds": earlier_seconds + time.perf_counter() - started},
                indent=1))
            on_epoch(epoch + 1, {**logs, "accuracy": logs["val_keyword_hit"]})
    except KeyboardInterrupt:
        result.interrupted = True
    result.seconds = earlier_seconds + time.perf_counter() - started
    keep = "last" if config.keep == "last" and not result.interrupted else "best"
    if (ckpt / f"{keep}.weights.h5").is_file():
        model.sequence.load_weights(ckpt / f"{keep}.weights.h5")
        result.kept_epoch = len(result.history) if keep == "last" else result.best_epoch
    return result
