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


def fold_task(roots, config, base, fold, folds, threads, seed) -> dict:
    """One Ray task: run_fold with its CPUs as TensorFlow's threads, tagged with its seed."""
    return {**run_fold(roots, config, base, fold, folds, threads), "seed": seed}


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


def run_key(config: TrainConfig, fold: int, folds: int, seed: int) -> str:
    """The name of one fold's training in a results file."""
    from kws.cluster.results import settings_digest

    digest = settings_digest(config.model_copy(update={"seed": seed}))
    return f"cv-{digest}-fold{fold}of{folds}-seed{seed}"


def cross_validate(roots: Sequence[Path], config: TrainConfig, folds: int = 5,
                   log: Callable[[str], None] = lambda _m: None,
                   train_only: Sequence[Path] = (), jobs: int | None = None,
                   only: Sequence[int] | None = None, seeds: Sequence[int] | None = None,
                   address: str | None = None, cpus_per_task: int = 1,
                   results: Path | None = None, resume: bool = False) -> dict:
    """Run every fold (or the folds in `only`), once per training seed in `seeds` (one seed's
    run swings a fold by several points, so comparing two recipes needs more than one).

    Each training is one Ray task (kws.cluster.ray_tasks) of `cpus_per_task` CPUs: on a local
    Ray instance of `jobs` x cpus_per_task cores (default: the machine's), or on the cluster at
    `address`. Rows go to `results` (JSONL) as they arrive; with `resume`, trainings already
    there are not run again. A failed fold is logged with its settings and left out of the
    means; the others still count."""
    from kws.cluster.ray_tasks import Task, run_tasks
    from kws.cluster.results import ResultLog

    wanted = sorted(set(range(folds) if only is None else only))
    if not wanted or not all(0 <= k < folds for k in wanted):
        raise KwsError(f"cross-validation: folds {list(only or [])} must be in 0..{folds - 1}")
    if jobs is not None and jobs < 1:
        raise KwsError(f"cross-validation: jobs must be >= 1, got {jobs}")
    seeds = [config.seed] if seeds is None else list(dict.fromkeys(seeds))
    if not seeds:
        raise KwsError("cross-validation: give at least one seed")
    config_for = {s: config.model_copy(update={"seed": s}) for s in seeds}
    roots = [Path(r) for r in roots]
    store = ResultLog(results)
    store.start(resume)
    done_rows = store.done() if resume else {}
    base = index_folders(roots, config.data, train_only=[Path(p) for p in train_only])

    rows: list[dict] = []
    failures: list[dict] = []

    def finished(task: Task, row: dict | None, error: str | None) -> None:
        store.record(task.key, task.settings, row, error)
        if row is None:
            failures.append({**task.settings, "error": error})
            log(f"cv fold {task.settings['fold']} seed {task.settings['seed']} FAILED: {error}")
            return
        rows.append(row)
        log(f"cv fold {row['fold']} seed {row['seed']}: float {row['float_accuracy']:.4f} int8 "
            f"{row['int8_tflm_accuracy']:.4f} ({row['test_clips']} clips, "
            f"{row['training_seconds']:.0f} s)")

    tasks = []
    for s in seeds:
        for k in wanted:
            key = run_key(config, k, folds, s)
            if key in done_rows:
                rows.append(done_rows[key]["result"])
                log(f"cv fold {k} seed {s}: done before (resumed from {results})")
                continue
            tasks.append(Task(key, {"fold": k, "seed": s}, fold_task,
                              (roots, config_for[s], base, k, folds, cpus_per_task, s)))
    local_cpus = None if jobs is None else jobs * cpus_per_task
    run_tasks(tasks, finished, cpus_per_task=cpus_per_task, address=address, cpus=local_cpus)
    if not rows:
        raise KwsError(f"cross-validation: every training failed (first: {failures[0]['error']})")
    rows.sort(key=lambda r: (r["seed"], r["fold"]))
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    per_seed = [float(np.mean(a)) if (a := [r["int8_tflm_accuracy"] for r in rows
                                           if r["seed"] == s]) else None for s in seeds]
    return {
        "folds": rows,
        "folds_run": wanted,
        "seeds": seeds,
        "mean_int8_tflm_accuracy_per_seed": per_seed,
        "jobs": jobs,
        "address": address,
        "failed": failures,
        "mean_float_accuracy": mean("float_accuracy"),
        "mean_int8_tflm_accuracy": mean("int8_tflm_accuracy"),
        "mean_drop_points": mean("drop_points"),
        "config": config.model_dump(mode="json"),
    }
