"""Data for one training run: audio per split, features, noise for augmentation, statistics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kws.data.dataset import Dataset, index_folders, load_audio, load_noise, noise_region
from kws.errors import KwsError
from kws.features import reference
from kws.model.config import TrainConfig


@dataclass
class Split:
    audio: np.ndarray  # int16 [N, samples]
    labels: np.ndarray  # int64 [N]
    features: np.ndarray  # float32 [N, T, F], unaugmented
    names: list[str]
    train_only: np.ndarray | None = None  # bool [N]: clip from a --train-only folder


@dataclass
class Prepared:
    dataset: Dataset
    splits: dict[str, Split]
    noise: list[np.ndarray]  # training part of each background recording, float32
    mean: np.ndarray
    std: np.ndarray
    problems: list[str]


def prepare(roots: Sequence[Path], config: TrainConfig,
            report: Callable[[str], None] = lambda _m: None,
            dataset: Dataset | None = None, train_only: Sequence[Path] = ()) -> Prepared:
    """Read and featurize every split; `dataset` replaces indexing `roots` (cross-validation
    passes its own speaker folds)."""
    if dataset is None:
        dataset = index_folders(roots, config.data, train_only=train_only)
        for note in dataset.notes:
            report(f"note: {note}")
    dataset = dataset.thin_training(config.data.train_speaker_percent)
    splits, problems = {}, []
    for split in ("train", "validation", "test"):
        loaded = load_audio(dataset.subset(split), config.data, report=report)
        problems += loaded.problems
        feats = reference.log_mel(loaded.audio, config.features)
        splits[split] = Split(loaded.audio, loaded.labels(dataset.labels), feats,
                              [c.name for c in loaded.clips],
                              np.array([c.train_only for c in loaded.clips], dtype=bool))
    if len(splits["train"].labels) == 0:
        raise KwsError(f"{', '.join(map(str, roots))}: no training clips could be read")
    if len(np.unique(splits["train"].labels)) < 2:
        raise KwsError(f"{', '.join(map(str, roots))}: training data has fewer than two labels")
    if len(splits["validation"].labels) == 0:
        raise KwsError(f"{', '.join(map(str, roots))}: no validation clips (too few speakers?)")
    noise = []
    for rec in load_noise(dataset.noise_files, report=report):
        start, end = noise_region(len(rec), "train", config.data)
        noise.append(rec[start:end])
    train = splits["train"].features
    mean = train.mean(axis=(0, 1)).astype(np.float32)
    std = np.maximum(train.std(axis=(0, 1)), 1e-3).astype(np.float32)
    return Prepared(dataset, splits, noise, mean, std, problems)
