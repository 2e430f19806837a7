"""`kws train` end to end: settings, data, training with a progress bar, export, summary."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kws.data.dataset import default_data_roots
from kws.errors import KwsError
from kws.model.config import TrainConfig, load_train_config, parse_set

NO_DATA = ("no data: pass --data DIR (a Speech Commands style folder), or make one with "
           "`kws synth --out data/synth` (synthetic voices transfer poorly to real ones; "
           "`kws data get speech-commands --out data/speech_commands` downloads the full set)")


def settings(config: Path | None, epochs: int | None, units: int | None, sets: list[str]) -> TrainConfig:
    overrides = parse_set(sets)
    if epochs is not None:
        overrides["epochs"] = epochs
    if units is not None:
        overrides["model.units"] = units
    return load_train_config(str(config) if config else None, overrides)


def check_out_dir(out: Path, resume: bool, force: bool) -> None:
    """Never overwrite a bundle or user files by accident."""
    if out.exists() and not out.is_dir():
        raise KwsError(f"{out}: exists and is not a folder")
    if not out.exists() or resume or force:
        return
    entries = [p.name for p in out.iterdir()]
    if entries:
        what = "a model bundle" if "manifest.json" in entries else "files"
        raise KwsError(f"{out}: already holds {what}; use --force to replace it, --resume to "
                       "continue training, or another --out")


def train_run(out: Path, data: list[Path], config: Path | None, epochs: int | None,
              units: int | None, sets: list[str], resume: bool, force: bool,
              err: Console, train_only: list[Path] | None = None) -> dict:
    from kws.export.bundle import export_bundle
    from kws.model.prepare import prepare
    from kws.model.fit import fit

    cfg = settings(config, epochs, units, sets)
    roots, source = default_data_roots(data)
    if not roots:
        raise KwsError(NO_DATA)
    check_out_dir(out, resume, force)
    err.print(f"train: data ({source}) {', '.join(map(str, roots))}")
    prep = prepare(roots, cfg, report=lambda line: err.print(line, highlight=False),
                   train_only=train_only or [])
    counts = {s: len(v.labels) for s, v in prep.splits.items()}
    mode = "streams (one carried state)" if cfg.streaming.enabled else "clips"
    err.print(f"train: clips {counts}; GRU {cfg.model.units} x {cfg.model.layers} on {mode}, "
              f"up to {cfg.epochs} epochs")
    out.mkdir(parents=True, exist_ok=True)
    from kws.model import gru

    # Keras numbers unnamed layers per process ("lambda_3" after two earlier models) and those
    # names reach the .tflite's tensor names; start each training from a clean slate so the
    # same settings give the same bytes whatever ran before in this process.
    gru.keras.utils.clear_session()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err, transient=False) as bar:
        task = bar.add_task("epoch", total=cfg.epochs)

        def on_epoch(epoch: int, logs: dict) -> None:
            phase = f"{logs['phase']} " if logs.get("phase") else ""
            if "val_keyword_hit" in logs:  # streaming training: frame loss, keyword windows heard
                bar.update(task, completed=epoch, description=(
                    f"epoch {epoch}: loss {logs['loss']:.3f} val loss {logs['val_loss']:.3f} "
                    f"frames {logs['val_accuracy']:.3f} keywords heard {logs['val_keyword_hit']:.3f}"))
                return
            bar.update(task, completed=epoch, description=(
                f"{phase}epoch {epoch}: loss {logs.get('loss', 0):.3f} acc {logs.get('accuracy', 0):.3f} "
                f"val {logs.get('val_accuracy', 0):.3f}"))

        result = fit(prep, cfg, out, resume=resume, on_epoch=on_epoch)
    if result.interrupted:
        err.print("[yellow]interrupted: exporting the best model so far "
                  f"(epoch {result.best_epoch}); `--resume` continues training[/]")
    manifest, report = export_bundle(out, prep, cfg, result, log=lambda m: err.print(m))
    summary = {
        "out": str(out),
        "split": report["split"],
        "float_accuracy": report["float"]["accuracy"],
        "int8_accuracy": report["int8"]["accuracy"],
        "baseline_accuracy": report["baseline"]["accuracy"],
        "step_agreement": report["step_agreement"],
        "tflite_bytes": manifest.tflite_bytes,
        "arena_bytes": manifest.arena_bytes,
        "training_seconds": report["training_seconds"],
        "best_epoch": report["best_epoch"],
    }
    err.print(f"train: {out}: float {summary['float_accuracy']:.3f}, int8 (tflite-micro) "
              f"{summary['int8_accuracy']:.3f}, baseline {summary['baseline_accuracy']:.3f} on the "
              f"{summary['split']} split; .tflite {manifest.tflite_bytes} B, arena "
              f"{manifest.arena_bytes} B; trained {summary['training_seconds']:.0f} s")
    return summary
