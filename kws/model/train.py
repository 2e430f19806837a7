"""Training: on-the-fly augmentation, balanced batches, cosine learning rate, early stopping on
the speaker-disjoint validation split, a checkpoint per epoch so Ctrl-C keeps the best model."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from kws.data.augment import Augmenter
from kws.errors import KwsError
from kws.features import reference
from kws.model import gru
from kws.model.config import TrainConfig
from kws.model.prepare import Prepared

import keras  # noqa: E402  (after kws.model.gru set the TF environment)

CHECKPOINT_DIR = "checkpoints"


def draw_probabilities(labels: np.ndarray, train_only: np.ndarray | None, balanced: bool,
                       train_only_share: float | None) -> np.ndarray | None:
    """Probability of each training clip per draw (None = a plain shuffle).

    `balanced`: every class is drawn equally often. `train_only_share`: the --train-only clips
    (synthetic voices) get this share of all draws and the real clips the rest, each group
    balanced on its own, so adding synthetic clips does not crowd out the real ones."""
    n = len(labels)
    split = (train_only_share is not None and train_only is not None
             and 0 < int(train_only.sum()) < n)
    if not balanced and not split:
        return None
    groups = [(~train_only, 1.0 - train_only_share), (train_only, train_only_share)] if split \
        else [(np.ones(n, bool), 1.0)]
    p = np.zeros(n)
    for mask, mass in groups:
        w = np.ones(int(mask.sum()))
        if balanced:
            w = 1.0 / np.bincount(labels[mask])[labels[mask]]
        p[mask] = mass * w / w.sum()
    return p


class AugmentedBatches(keras.utils.PyDataset):
    """Balanced (or plain shuffled) batches, augmented fresh every epoch, deterministic per seed."""

    def __init__(self, prep: Prepared, config: TrainConfig, labels: int, epoch0: int = 0,
                 teacher: keras.Model | None = None):
        super().__init__()
        self.teacher = teacher
        self.train = prep.splits["train"]
        self.config = config
        self.labels = labels
        self.augmenter = Augmenter(config.augment, prep.noise, config.features.sample_rate_hz)
        counts = np.bincount(self.train.labels, minlength=labels).astype(np.float64)
        self.sample_p = draw_probabilities(self.train.labels, self.train.train_only,
                                           config.balance == "sampling", config.train_only_share)
        if config.balance == "weights":
            present = counts > 0
            cw = np.zeros(labels)
            cw[present] = counts[present].sum() / (present.sum() * counts[present])
            self.class_weight = cw
        else:
            self.class_weight = np.ones(labels)
        self.epoch = epoch0
        self._order = self._draw_order()

    def _draw_order(self) -> np.ndarray:
        rng = np.random.default_rng([self.config.seed, self.epoch, 1])
        n = len(self.train.labels)
        if self.sample_p is not None:
            return rng.choice(n, size=n, p=self.sample_p)
        return rng.permutation(n)

    def __len__(self) -> int:
        return math.ceil(len(self.train.labels) / self.config.batch_size)

    def __getitem__(self, index: int):
        bs = self.config.batch_size
        idx = self._order[index * bs:(index + 1) * bs]
        rng = np.random.default_rng([self.config.seed, self.epoch, 2, index])
        audio = self.augmenter.audio(self.train.audio[idx].astype(np.float32) / 32768.0, rng)
        feats = reference.log_mel(audio, self.config.features)
        feats = self.augmenter.features(feats, rng)
        y = keras.utils.to_categorical(self.train.labels[idx], self.labels)
        if self.teacher is not None:
            # the teacher hears the very same augmented audio as the student
            d = self.config.distill
            t = np.asarray(self.teacher.predict_on_batch(feats.astype(np.float32)), np.float64)
            t = np.exp((t - t.max(axis=1, keepdims=True)) / d.temperature)
            y = (1.0 - d.weight) * y + d.weight * t / t.sum(axis=1, keepdims=True)
        w = self.class_weight[self.train.labels[idx]].astype(np.float32)
        return feats.astype(np.float32), y.astype(np.float32), w

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._draw_order()


@dataclass
class TrainResult:
    model: gru.GruModel
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = 0.0
    seconds: float = 0.0
    interrupted: bool = False
    kept_epoch: int = 0  # the epoch whose weights the model holds (and the bundle exports)
    teacher: dict | None = None  # distillation teacher's summary (width, epochs, seconds)
    pretrain: dict | None = None  # clip pretraining of a streaming run (epochs, seconds)


class _Checkpoint(keras.callbacks.Callback):
    """Best weights + progress to RUN/checkpoints after every epoch; early stopping."""

    def __init__(self, folder: Path, patience: int | None, result: TrainResult,
                 on_epoch: Callable[[int, dict], None]):
        super().__init__()
        self.folder = folder
        self.patience = patience  # None: no early stopping
        self.result = result
        self.on_epoch = on_epoch

    def on_epoch_end(self, epoch: int, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        logs["epoch"] = epoch + 1
        self.result.history.append(logs)
        acc = logs.get("val_accuracy", 0.0)
        if acc > self.result.best_val_accuracy or self.result.best_epoch == 0:
            self.result.best_val_accuracy = acc
            self.result.best_epoch = epoch + 1
            self.model.save_weights(self.folder / "best.weights.h5")
        self.model.save_weights(self.folder / "last.weights.h5")
        (self.folder / "progress.json").write_text(json.dumps({
            "epoch": epoch + 1, "best_epoch": self.result.best_epoch,
            "best_val_accuracy": self.result.best_val_accuracy, "history": self.result.history,
        }, indent=1))
        self.on_epoch(epoch + 1, logs)
        if self.patience is not None and epoch + 1 - self.result.best_epoch >= self.patience:
            self.model.stop_training = True


TEACHER_DIR = "teacher"
TEACHER_DONE = "done.json"


def kept_checkpoint(ckpt: Path, config: TrainConfig, interrupted: bool) -> str | None:
    """Which weights file of `ckpt` a run keeps: the last epoch's for a finished `keep=last`
    run, else the best validation epoch's (an interrupted `last` run is mid-schedule)."""
    if config.keep == "last" and not interrupted and (ckpt / "last.weights.h5").is_file():
        return "last.weights.h5"
    return "best.weights.h5" if (ckpt / "best.weights.h5").is_file() else None


def train_stage(prep: Prepared, stage_config: TrainConfig, folder: Path, phase: str, what: str,
                resume: bool, on_epoch: Callable[[int, dict], None]) -> tuple[keras.Model, dict]:
    """A clip model trained before the run's own training (the distillation teacher, the clip
    pretraining of a streaming run) in `folder`, or on resume reloaded from there once finished;
    its summary for the report. Ctrl-C here keeps its checkpoints for `--resume`."""
    done = folder / TEACHER_DONE
    if resume and done.is_file():
        labels = len(prep.dataset.labels)
        frames, bands = prep.splits["train"].features.shape[1:]
        model = gru.build(stage_config.model, frames, bands, labels, prep.mean, prep.std)
        ckpt = folder / CHECKPOINT_DIR
        model.model.load_weights(ckpt / kept_checkpoint(ckpt, stage_config, interrupted=False))
        return model.model, json.loads(done.read_text())
    result = train(prep, stage_config, folder, resume=resume,
                   on_epoch=lambda e, logs: on_epoch(e, {**logs, "phase": phase}))
    if result.interrupted:
        raise KwsError(f"{folder.parent.parent}: interrupted while training the {what} "
                       f"(epoch {len(result.history)}); `--resume` continues it")
    summary = {"units": stage_config.model.units, "epochs": stage_config.epochs,
               "best_epoch": result.best_epoch, "kept_epoch": result.kept_epoch,
               "best_val_accuracy": result.best_val_accuracy, "seconds": round(result.seconds, 1)}
    done.write_text(json.dumps(summary))
    return result.model.model, summary


def train_teacher(prep: Prepared, config: TrainConfig, run_dir: Path, resume: bool,
                  on_epoch: Callable[[int, dict], None]) -> tuple[keras.Model, dict]:
    """The wider teacher of `config.distill`, trained in RUN/checkpoints/teacher."""
    teacher_config = config.model_copy(update={
        "model": config.model.model_copy(update={"units": config.distill.teacher_units}),
        "distill": config.distill.model_copy(update={"teacher_units": None}),
    })
    return train_stage(prep, teacher_config, run_dir / CHECKPOINT_DIR / TEACHER_DIR, "teacher",
                       "distillation teacher", resume, on_epoch)


def train(prep: Prepared, config: TrainConfig, run_dir: Path, resume: bool = False,
          on_epoch: Callable[[int, dict], None] = lambda _e, _l: None) -> TrainResult:
    started = time.perf_counter()  # training seconds include the teacher's
    teacher, teacher_summary = (train_teacher(prep, config, run_dir, resume, on_epoch)
                                if config.distill.teacher_units else (None, None))
    keras.utils.set_random_seed(config.seed)
    labels = len(prep.dataset.labels)
    frames, bands = prep.splits["train"].features.shape[1:]
    model = gru.build(config.model, frames, bands, labels, prep.mean, prep.std)
    result = TrainResult(model, teacher=teacher_summary)
    ckpt = run_dir / CHECKPOINT_DIR
    ckpt.mkdir(parents=True, exist_ok=True)
    start_epoch = 0
    if resume and (ckpt / "progress.json").is_file():
        progress = json.loads((ckpt / "progress.json").read_text())
        model.model.load_weights(ckpt / "last.weights.h5")
        start_epoch = progress["epoch"]
        result.history = progress["history"]
        result.best_epoch = progress["best_epoch"]
        result.best_val_accuracy = progress["best_val_accuracy"]
    batches = AugmentedBatches(prep, config, labels, epoch0=start_epoch, teacher=teacher)
    steps = len(batches)
    warmup = config.warmup_epochs * steps
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * (0.1 if warmup else 1.0),
        decay_steps=max(config.epochs * steps - warmup, 1),
        alpha=config.final_learning_rate / config.learning_rate,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    model.model.compile(
        optimizer=keras.optimizers.Adam(schedule, global_clipnorm=config.clip_global_norm,
                                        use_ema=config.ema_momentum > 0,
                                        ema_momentum=config.ema_momentum or 0.99),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                  label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    if start_epoch:
        model.model.optimizer.iterations.assign(start_epoch * steps)
    val = prep.splits["validation"]
    val_y = keras.utils.to_categorical(val.labels, labels).astype(np.float32)
    patience = None if config.keep == "last" else config.patience  # "last": no early stop
    callbacks = [_Checkpoint(ckpt, patience, result, on_epoch)]
    if config.ema_momentum > 0:
        # Swapped in before validation and before the checkpoint sees the epoch's end, so the
        # averaged weights are what is scored, kept and exported.
        callbacks.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    try:
        if start_epoch < config.epochs:
            model.model.fit(batches, epochs=config.epochs, initial_epoch=start_epoch,
                            validation_data=(val.features, val_y), verbose=0,
                            callbacks=callbacks)
    except KeyboardInterrupt:
        result.interrupted = True
    result.seconds = time.perf_counter() - started
    kept = kept_checkpoint(ckpt, config, result.interrupted)
    if kept is not None:
        model.model.load_weights(ckpt / kept)
        result.kept_epoch = len(result.history) if kept.startswith("last") else result.best_epoch
    return result
