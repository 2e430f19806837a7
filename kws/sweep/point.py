"""One sweep training (a Ray task): train, export, score, and cost the model on each board."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.model.config import TrainConfig


def board_costs(run_dir: Path, boards: Sequence[str]) -> dict:
    """Per board: whole-firmware guest instructions per second of audio by part (the board's
    core in QEMU, its real float flags), share of its clock, and the kws part's flash and RAM
    next to the board's budget."""
    from kws.codegen.project import generate
    from kws.emulate.cost import board_cost

    out = {}
    for board in boards:
        cost = board_cost(run_dir, board, None)
        project = generate(run_dir, board, run_dir / "firmware" / board, force=True)
        out[board] = {"core": cost["core"], "clock_hz": cost.get("clock_hz"),
                      "instructions_per_second": cost.get("per_second_total"),
                      "per_second": cost.get("per_second"),
                      "load_fraction": cost.get("energy", {}).get("load_fraction"),
                      "mj_per_second_of_audio": cost.get("energy", {}).get("mj_per_second_of_audio"),
                      "flash_bytes": project.budget.flash_bytes,
                      "ram_bytes": project.budget.ram_bytes,
                      "skipped": cost.get("skipped")}
    return out


def _threads(n: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)


def train_point(roots: Sequence[Path], train_only: Sequence[Path], config: TrainConfig,
                boards: Sequence[str], run_dir: Path, threads: int = 1) -> dict:
    """Train on the training speakers, keep the best epoch on the validation speakers, export
    the int8 bundle into `run_dir` (kept: it can be evaluated, flashed or re-costed), and
    report int8 (tflite-micro) accuracy on the validation speakers (the test speakers are never
    looked at while choosing a setting) with the board costs."""
    # kws.model first: it sets TensorFlow's environment (oneDNN off) before TF loads
    from kws.export.bundle import export_bundle, int8_logits
    from kws.evaluation import backends
    from kws.export.read import load_bundle
    from kws.model.fit import fit
    from kws.model.prepare import prepare

    _threads(threads)
    prep = prepare(list(roots), config, train_only=list(train_only))
    val = prep.splits["validation"]
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    result = fit(prep, config, run_dir)
    manifest, _ = export_bundle(run_dir, prep, config, result)
    q = int8_logits(backends.get("tflm", load_bundle(run_dir)).step_model(), val.features,
                    manifest.input_quant)
    float_pred = np.asarray(result.model.model.predict(val.features, verbose=0)).argmax(1)
    costs = board_costs(run_dir, boards)
    return {"bundle": str(run_dir),"validation_clips": int(len(val.labels)),
            "validation_float_accuracy": float(np.mean(float_pred == val.labels)),
            "validation_int8_tflm_accuracy": float(np.mean(q.argmax(1) == val.labels)),
            "best_epoch": result.best_epoch, "training_seconds": round(result.seconds, 1),
            "tflite_bytes": manifest.tflite_bytes, "boards": costs}


def cost_only(roots: Sequence[Path], config: TrainConfig, boards: Sequence[str],
              threads: int = 1) -> dict:
    """Board costs of the point's shape for a cross-validated sweep (instruction counts do
    not depend on the weights): one epoch on the data, exported and measured."""
    from kws.export.bundle import export_bundle
    from kws.model.fit import fit
    from kws.model.prepare import prepare

    _threads(threads)
    quick = config.model_copy(update={"epochs": 1, "streaming": config.streaming.model_copy(
        update={"enabled": False})})
    prep = prepare(list(roots), quick)
    with tempfile.TemporaryDirectory(prefix="kws-sweep-cost-") as tmp:
        result = fit(prep, quick, Path(tmp))
        manifest, _ = export_bundle(Path(tmp), prep, quick, result)
        return {"tflite_bytes": manifest.tflite_bytes, "boards": board_costs(Path(tmp), boards)}


def recost_point(result: dict, roots: Sequence[Path], config: TrainConfig,
                 boards: Sequence[str], threads: int = 1) -> dict:
    """`result` with its board costs measured again by today's generator: on its kept bundle,
    or (a result without one) on a one-epoch model of the same shape."""
    bundle = result.get("bundle")
    if bundle and (Path(bundle) / "manifest.json").is_file():
        fresh = {"boards": board_costs(Path(bundle), boards)}
    else:
        fresh = cost_only(roots, config, boards, threads)
    return {**result, **fresh, "recosted": True}
