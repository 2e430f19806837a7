"""`kws sweep`: every point of a SweepSpec as Ray tasks, results kept as they arrive.

score: validation -> one task per point (train, export, int8 accuracy on the validation
speakers, board costs). score: cv -> one task per fold of every point (kws.evaluation.crossval) and one
cost task per point. Rows go to OUT/results.jsonl the moment a task ends; the table, JSON and
PNG (kws.sweep.report) are written from whatever finished, also after a failure or Ctrl-C.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from kws.cluster.ray_tasks import Task, run_tasks
from kws.cluster.results import ResultLog
from kws.errors import KwsError
from kws.sweep.spec import SweepSpec, point_config, point_key, points


def plan(spec: SweepSpec, base: Path | None, roots: Sequence[Path], train_only: Sequence[Path],
         threads: int, source: str, out: Path) -> list[Task]:
    """The tasks of every point (a point's settings are checked here, before anything runs)."""
    from kws.evaluation.crossval import fold_task
    from kws.data.dataset import index_folders
    from kws.sweep.point import cost_only, train_point

    boards = list(spec.boards)
    tasks: list[Task] = []
    indexed = {}
    for point in points(spec):
        config = point_config(spec, base, point, source)
        if spec.score == "validation":
            key = point_key(config)
            tasks.append(Task(key, {"point": point, "part": "train"}, train_point,
                              (list(roots), list(train_only), config, boards,
                               (out / "runs" / key).resolve(), threads)))
            continue
        data_key = json.dumps(config.data.model_dump(mode="json"), sort_keys=True)
        if data_key not in indexed:
            indexed[data_key] = index_folders(list(roots), config.data, train_only=list(train_only))
        for fold in range(spec.folds):
            tasks.append(Task(point_key(config, f"-fold{fold}of{spec.folds}"),
                              {"point": point, "part": f"fold {fold}"}, fold_task,
                              (list(roots), config, indexed[data_key], fold, spec.folds, threads,
                               config.seed)))
        tasks.append(Task(point_key(config, "-cost"), {"point": point, "part": "cost"}, cost_only,
                          (list(roots), config, boards, threads)))
    return tasks


def _recost_task(task: Task, result: dict, roots: Sequence[Path], spec: SweepSpec,
                 base: Path | None, threads: int) -> Task:
    from kws.sweep.point import recost_point

    config = point_config(spec, base, task.settings["point"])
    return Task(task.key, task.settings, recost_point,
                (result, list(roots), config, list(spec.boards), threads))


def run_sweep(spec: SweepSpec, base: Path | None, roots: Sequence[Path],
              train_only: Sequence[Path], out: Path, resume: bool = False,
              address: str | None = None, cpus_per_task: int = 1, jobs: int | None = None,
              log: Callable[[str], None] = lambda _m: None, source: str = "sweep",
              recost: bool = False) -> dict:
    """Run (or finish, with `resume`) the sweep into `out`; returns the report dict. With
    `recost`, no training: the board costs of the points already done are measured again
    (after kws's generated C got faster, say) and replace the old ones."""
    from kws.sweep.report import write_report

    tasks = plan(spec, base, roots, train_only, cpus_per_task, source, out)
    store = ResultLog(out / "results.jsonl")
    store.start(resume or recost)
    done = store.done() if resume or recost else {}
    todo = [t for t in tasks if t.key not in done]
    if recost:
        todo = [_recost_task(t, done[t.key]["result"], roots, spec, base, cpus_per_task)
                for t in tasks
                if t.key in done and t.settings["part"] in ("train", "cost")]
        done = {k: r for k, r in done.items() if k not in {t.key for t in todo}}
    if done:
        log(f"sweep: {len(tasks) - len(todo)} of {len(tasks)} trainings done before "
            f"(resumed from {store.path})")
    rows = [done[t.key] for t in tasks if t.key in done]
    if recost:
        log(f"sweep: measuring the costs of {len(todo)} points again (no training)")

    def finished(task: Task, result: dict | None, error: str | None) -> None:
        rows.append(store.record(task.key, task.settings, result, error))
        what = f"{json.dumps(task.settings['point'])} {task.settings['part']}"
        log(f"sweep: {what}: " + (f"FAILED: {error}" if error else "done"))
        write_report(spec, rows, out)

    what = "cost measurements" if recost else "trainings"
    log(f"sweep: {len(todo)} {what} of {len(points(spec))} points on "
        f"{address or 'a local Ray instance'} ({cpus_per_task} CPU each)")
    try:
        run_tasks(todo, finished, cpus_per_task=cpus_per_task, address=address,
                  cpus=None if jobs is None else jobs * cpus_per_task)
    finally:
        report = write_report(spec, rows, out)
    if not any("result" in r for r in rows):
        raise KwsError(f"sweep: every training failed; see {store.path}")
    return report
