"""Speaker-disjoint k-fold cross-validation of the whole recipe (train -> int8 -> tflite-micro).

Each fold tests on one fifth of the speakers; of the other speakers one in eight is held out
for early stopping and the rest train (70% of all speakers at 5 folds). Reported per fold: float accuracy, int8 accuracy under the tflite-micro interpreter (the
reference for the device), the drop between them, and training time. Lives in `make bench`,
never in the test suite: it trains `folds` models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kws.data.dataset import Dataset, clip_identity, index_folders
from kws.errors import KwsError
from kws.model.config import TrainConfig


def fold_of(speaker: str, folds: int, salt: str = "cv") -> int:
    return int(hashlib.sha1((salt + speaker).encode()).hexdigest(), 16) % folds


VALIDATION_SHARE = 8  # one in this many non-test speakers stops training early


def fold_dataset(dataset: Dataset, fold: int, folds: int) -> Dataset:
    """Clips of speaker fold `fold` -> test; of the others, 1 in VALIDATION_SHARE speakers ->
    validation, the rest -> train."""
    clips = []
    for c in dataset.clips:
        if c.train_only:
            clips.append(c)
            continue
        who = clip_identity(c)
        if fold_of(who, folds) == fold:
            split = "test"
        elif fold_of(who, VALIDATION_SHARE, salt="cv-validation") == 0:
            split = "validation"
        else:
            split = "train"
        clips.append(dataclasses.replace(c, split=split))
    return Dataset(dataset.config, dataset.roots, clips, dataset.noise_files, list(dataset.problems))


def run_fold(roots: Sequence[Path], config: TrainConfig, base: Dataset, fold: int, folds: int,
             threads: int = 0) -> dict:
    """Train fold `fold` of `folds` of the indexed clips `base` and score its test speakers:
    float and int8 (tflite-micro).

    threads > 0 caps TensorFlow's thread pools (parallel folds on a small machine)."""
    # kws.model first: it sets TensorFlow's environment (oneDNN off) before TF loads
    from kws.export.bundle import int8_logits, quantize_model
    from kws.export.manifest import Quant
    from kws.model.prepare import prepare
    from kws.model.fit import fit

    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    prep = prepare(roots, config, dataset=fold_dataset(base, fold, folds))
    with tempfile.TemporaryDirectory(prefix="kws-cv-") as tmp:
        result = fit(prep, config, Path(tmp))
    test = prep.splits["test"]
    float_pred = np.asarray(result.model.model.predict(test.features, verbose=0)).argmax(1)
    _, io, tflm = quantize_model(result.model, prep, config)
    q = int8_logits(tflm, test.features, Quant(scale=io["frame"].scale,
                                                zero_point=io["frame"].zero_point))
    row = {
        "fold": fold,
        "test_clips": int(len(test.labels)),
        "float_accuracy": float(np.mean(float_pred == test.labels)),
        "int8_tflm_accuracy": float(np.mean(q.argmax(1) == test.labels)),
        "best_epoch": result.best_epoch,
        "kept_epoch": result.kept_epoch,
        "training_seconds": round(result.seconds, 1),
    }
    row["drop_points"] = 100 * (row["float_accuracy"] - row["int8_tflm_accuracy"])
    return row


def _die_with_parent() -> None:
    """Fold workers get SIGTERM when the process that started them dies (Linux), so a killed
    `kws bench` does not leave trainings running on the cores."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux: workers finish their fold, then exit
        pass


def cross_validate(roots: Sequence[Path], config: TrainConfig, folds: int = 5,
                   log: Callable[[str], None] = lambda _m: None,
                   train_only: Sequence[Path] = (), jobs: int = 1,
                   only: Sequence[int] | None = None, seeds: Sequence[int] | None = None) -> dict:
    """Run every fold (or the folds in `only`), `jobs` at a time in separate processes; with
    `seeds`, every fold once per training seed (one seed's run swings a fold by several points,
    so comparing two recipes needs more than one).

    Why processes: one training uses ~1.2 of 2 cores (a 64-unit GRU step is too small to
    spread over threads), so two folds side by side finish sooner than one after the other."""
    wanted = sorted(set(range(folds) if only is None else only))
    if not wanted or not all(0 <= k < folds for k in wanted):
        raise KwsError(f"cross-validation: folds {list(only or [])} must be in 0..{folds - 1}")
    if jobs < 1:
        raise KwsError(f"cross-validation: jobs must be >= 1, got {jobs}")
    seeds = [config.seed] if seeds is None else list(dict.fromkeys(seeds))
    if not seeds:
        raise KwsError("cross-validation: give at least one seed")
    runs = [(k, s) for s in seeds for k in wanted]
    config_for = {s: config.model_copy(update={"seed": s}) for s in seeds}
    roots = [Path(r) for r in roots]
    base = index_folders(roots, config.data, train_only=[Path(p) for p in train_only])

    def done(row: dict, seed: int) -> dict:
        row["seed"] = seed
        log(f"cv fold {row['fold']} seed {seed}: float {row['float_accuracy']:.4f} int8 "
            f"{row['int8_tflm_accuracy']:.4f} ({row['test_clips']} clips, "
            f"{row['training_seconds']:.0f} s)")
        return row

    if jobs == 1 or len(runs) == 1:
        rows = [done(run_fold(roots, config_for[s], base, k, folds), s) for k, s in runs]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: a forked TensorFlow runtime is not safe to use in the child
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_die_with_parent) as pool:
            futures = {pool.submit(run_fold, roots, config_for[s], base, k, folds, 1): s
                       for k, s in runs}
            rows = [done(f.result(), futures[f]) for f in as_completed(futures)]
    rows.sort(key=lambda r: (r["seed"], r["fold"]))
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    per_seed = [float(np.mean([r["int8_tflm_accuracy"] for r in rows if r["seed"] == s]))
                for s in seeds]
    return {
        "folds": rows,
        "folds_run": wanted,
        "seeds": seeds,
        "mean_int8_tflm_accuracy_per_seed": per_seed,
        "jobs": jobs,
        "mean_float_accuracy": mean("float_accuracy"),
        "mean_int8_tflm_accuracy": mean("int8_tflm_accuracy"),
        "mean_drop_points": mean("drop_points"),
        "config": config.model_dump(mode="json"),
    }
