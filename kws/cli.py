"""The `kws` command line. One error type, caught once here: a one-line reason and exit 2.

Results go to stdout (one JSON object with --json); progress and logs go to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from kws.boards.cli import boards_app
from kws.data.cli import data_app
from kws.streams.cli import streams_app
from kws.errors import KwsError

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

app = typer.Typer(
    help="Train a GRU keyword spotter, quantize it to int8 and generate Cortex-M firmware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
features_app = typer.Typer(help="Log-mel front end: C on the host vs the librosa reference.",
                           no_args_is_help=True)
app.add_typer(features_app, name="features")
app.add_typer(boards_app, name="boards")
app.add_typer(streams_app, name="streams")
app.add_typer(data_app, name="data")

_state = {"verbose": False}

DataOpt = Annotated[list[Path], typer.Option("--data", help="Speech Commands style folder; repeat to combine.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["verbose"] = verbose


def _int_list(text: str, flag: str) -> list[int]:
    """"0,2" -> [0, 2], or a one-line error naming the flag."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise KwsError(f"{flag} {text}: give whole numbers separated by commas, e.g. 0,1") from None
    if not values:
        raise KwsError(f"{flag}: give at least one number")
    return values


def _emit_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, indent=None, sort_keys=False) + "\n")


def _warn(line: str) -> None:
    err.print(f"[yellow]skipped[/] {line}", highlight=False, markup=True, soft_wrap=True)


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the clips into.")],
    words: Annotated[str, typer.Option(help="Comma-separated keywords.")] = ",".join(
        __import__("kws.config", fromlist=["KEYWORDS"]).KEYWORDS
    ),
    per_word: Annotated[int, typer.Option(min=0, help="Clips per keyword (and for _unknown_).")] = 100,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    unknown_words: Annotated[str, typer.Option(help="_unknown_ vocabulary: 'speech-commands' (its 25 auxiliary words), 'wide' (~200 everyday and near-keyword words) or a comma-separated list.")] = "speech-commands",
    unknown_clips: Annotated[Optional[int], typer.Option(min=0, help="_unknown_ clips to write (default: --per-word).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Synthesize keyword clips with every installed TTS engine (Speech Commands layout)."""
    from rich.progress import Progress

    from kws.data.synth import UNKNOWN_VOCABULARIES, synthesize

    word_list = [w.strip() for w in words.split(",") if w.strip()]
    if not word_list:
        raise KwsError("--words: give at least one word")
    vocabulary = UNKNOWN_VOCABULARIES.get(unknown_words) or [
        w.strip() for w in unknown_words.split(",") if w.strip()]
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("synthesizing", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = synthesize(out_dir, word_list, per_word=per_word, seed=seed, progress=tick,
                            unknown_words=vocabulary, unknown_clips=unknown_clips)
    summary = {
        "out": str(report.out), "clips": report.clips, "per_label": report.per_label,
        "engines": report.engines, "seconds": round(report.seconds, 2), "reused": report.reused,
    }
    if json_out:
        _emit_json(summary)
    else:
        verb = "up to date:" if report.reused else "wrote"
        err.print(f"{verb} {report.clips} clips in {report.out} ({report.seconds:.1f} s) "
                  f"(engines: {', '.join(f'{k} {v}' for k, v in report.engines.items())})")


@features_app.command("compare")
def features_compare(
    data_dirs: DataOpt,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use N clips spread over the folder.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the generated C front end (host build) and librosa on the same clips."""
    from kws.features.compare import compare_folders

    result = compare_folders(data_dirs, limit=limit, report=_warn)
    if json_out:
        _emit_json(result)
    else:
        for key, value in result.items():
            out.print(f"{key:22s} {value}")


@app.command("train")
def train_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder for the model bundle.")],
    data_dirs: Annotated[Optional[list[Path]], typer.Option("--data", help="Speech Commands style folder; repeat to combine (default: the shared data).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML/TOML settings file.")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Override epochs.")] = None,
    units: Annotated[Optional[int], typer.Option(min=8, max=256, help="Override model.units.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override any setting: key=value (e.g. model.layers=2).")] = None,
    train_only: Annotated[Optional[list[Path]], typer.Option("--train-only", help="Extra folder used for training only (e.g. `kws synth` output); repeatable.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from RUN/checkpoints.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing bundle in RUN.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Train the GRU, export the int8 step model and write the bundle to --out."""
    from kws.commands.train import train_run

    report = train_run(out_dir, data_dirs or [], config, epochs, units, set_ or [], resume, force,
                       err, train_only=train_only or [])
    if json_out:
        _emit_json(report)


@app.command("eval")
def eval_cmd(
    model: Annotated[Path, typer.Option("--model", help="Run folder written by `kws train`.")],
    data_dirs: DataOpt,
    backend: Annotated[str, typer.Option(help="keras | tflite | tflm | native (generated C, host build) | qemu (the firmware in QEMU)")] = "tflm",
    board: Annotated[str, typer.Option(help="Emulated board for --backend qemu: qemu_m4 | qemu_m7 | qemu_m55.")] = "qemu_m4",
    split: Annotated[str, typer.Option(help="all | train | validation | test (the training run's speaker split)")] = "all",
    dump: Annotated[Optional[Path], typer.Option(help="Write per-clip logits (int8 for step backends), sorted by file path, to this .npy.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Score the 1 s clips of a folder with one backend of a model bundle."""
    import numpy as np

    from kws.evaluation.evaluate import evaluate

    result, logits = evaluate(model, data_dirs, backend, split=split, report=_warn, board=board)
    if dump is not None:
        dump.parent.mkdir(parents=True, exist_ok=True)
        np.save(dump, logits)
    if json_out:
        _emit_json(result)
    else:
        out.print(f"{backend}: accuracy {result['accuracy']:.4f} on {result['clips']} clips ({split}) "
                  f"(macro recall {result['macro_recall']:.4f}, ECE {result['ece']:.3f})")


@app.command()
def bench(
    cv: Annotated[bool, typer.Option("--cv/--no-cv", help="Also run 5-fold speaker-disjoint cross-validation (trains 5 models).")] = False,
    data_dirs: Annotated[Optional[list[Path]], typer.Option("--data", help="Data for cross-validation (default: the shared data).")] = None,
    model: Annotated[Path, typer.Option(help="Bundle whose model is measured in QEMU.")] = Path("runs/default"),
    train_only: Annotated[Optional[list[Path]], typer.Option("--train-only", help="Extra training-only folder for cross-validation (e.g. `kws synth` output).")] = None,
    table: Annotated[Optional[Path], typer.Option("--table", help="Print the README's markdown tables from a saved `kws bench --json` file and exit.")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", min=1, help="Cross-validation trainings side by side on the local Ray instance (default: one per core).")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Run the cross-validation on the Ray cluster at HOST:PORT (`ray start --head`), or `auto`; default: a local Ray instance.")] = None,
    cpus_per_task: Annotated[int, typer.Option("--cpus-per-task", min=1, help="CPUs each training asks Ray for (TensorFlow threads).")] = 1,
    cv_results: Annotated[Optional[Path], typer.Option("--cv-results", help="JSONL file each cross-validation training is written to as it finishes.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Skip the trainings already in --cv-results.")] = False,
    folds: Annotated[Optional[str], typer.Option("--folds", help="Run only these cross-validation folds, e.g. 0,1.")] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Train every fold once per seed, e.g. 0,1 (default: the config's seed).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="Training config (YAML/TOML) for cross-validation.")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="Override a cross-validation training setting: key=value (dotted), repeatable.")] = None,
    parts: Annotated[Optional[str], typer.Option("--parts", help="Only these parts, comma-separated: host, accuracy, streaming, chip, device (default: all).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Benchmarks as one JSON: accuracy per backend, streaming FRR/FA-h, per-board cost on the
    chip (QEMU guest instructions by part, energy, flash, RAM, stack), host speed; with --cv,
    cross-validated int8 accuracy. --table prints the README tables from a saved JSON."""
    if table is not None:
        from kws.report.bench_table import markdown

        try:
            saved = json.loads(table.read_text())
        except (OSError, ValueError) as exc:
            raise KwsError(f"{table}: not a readable `kws bench --json` file ({exc})") from None
        sys.stdout.write(markdown(saved))
        return
    from kws.commands.bench import PARTS, run_all
    from kws.model.config import load_train_config, parse_set

    chosen = None
    if parts:
        chosen = {p.strip() for p in parts.split(",") if p.strip()}
        unknown = sorted(chosen - set(PARTS))
        if unknown:
            raise KwsError(f"--parts: unknown part(s) {', '.join(unknown)} (known: {', '.join(PARTS)})")

    cv_config = load_train_config(str(config) if config else None, parse_set(overrides or []))
    cv_folds = _int_list(folds, "--folds") if folds else None
    cv_seeds = _int_list(seeds, "--seeds") if seeds else None
    if resume and cv_results is None:
        raise KwsError("--resume needs --cv-results FILE (the trainings to skip are read from it)")
    if cv and address and address != "auto":
        from kws.cluster.ray_tasks import check_address

        check_address(address)  # before the other parts spend minutes
    cv_options = {"jobs": jobs, "only": cv_folds, "seeds": cv_seeds, "address": address,
                  "cpus_per_task": cpus_per_task, "results": cv_results, "resume": resume}
    result = run_all(cv=cv, data=data_dirs or [], model=str(model), train_only=train_only or [],
                     progress=lambda msg: err.print(msg), cv_config=cv_config,
                     cv_options=cv_options, parts=chosen)
    if json_out:
        _emit_json(result)
    else:
        out.print_json(data=result)


@app.command()
def generate(
    model: Annotated[Path, typer.Option("--model", help="Run folder written by `kws train`.")],
    board: Annotated[str, typer.Option("--board", help="Board id from boards/ (see `kws boards list`) or a board YAML file.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Project folder to write (PlatformIO layout).")],
    backend: Annotated[str, typer.Option(help="native (generated C, default) | tflm (TFLite Micro library)")] = "native",
    force: Annotated[bool, typer.Option(help="Write into a non-empty folder kws did not generate.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Render a complete PlatformIO project for a board from a model bundle."""
    from kws.codegen.project import generate as generate_project

    project = generate_project(model, board, out_dir, backend, force)
    summary = project.summary()
    if json_out:
        _emit_json(summary)
        return
    out.print(f"{project.out_dir}: {len(project.files)} files for {project.board_id} "
              f"({backend}), {len(project.written)} written, {len(project.removed)} removed")
    out.print(f"kws firmware part: {summary['flash_bytes']:,} B flash of "
              f"{summary['flash_budget_bytes']:,} budget, {summary['ram_bytes']:,} B RAM of "
              f"{summary['ram_budget_bytes']:,} budget")
    out.print(f"build: cd {project.out_dir} && pio run    flash: pio run -t upload")


@app.command()
def emulate(
    model: Annotated[Path, typer.Option("--model", help="Run folder written by `kws train`.")],
    wavs: Annotated[list[Path], typer.Option("--wav", help="WAV file to play to the emulated board; repeat for several (each is its own stream).")],
    board: Annotated[str, typer.Option("--board", help="Emulated board: qemu_m4 | qemu_m7 | qemu_m55.")] = "qemu_m4",
    json_out: JsonOpt = False,
) -> None:
    """Run the generated firmware in QEMU on WAV files: detections, times, scores, instructions."""
    from kws.emulate import firmware

    fw = firmware.build(model, board)
    runs = firmware.run(fw, list(wavs))
    if json_out:
        _emit_json({"board": fw.board.id, "files": [r.as_dict() for r in runs]})
        return
    for r in runs:
        out.print(f"[bold]{r.path}[/]", highlight=False)
        for d in r.detections:
            out.print(f"  heard {d['label']} ({d['score']:.2f}) at {d['t_s']:.2f} s", highlight=False)
        c = r.counters
        seconds = c.get("samples", 0) / fw.sample_rate_hz
        rate = c.get("instructions", 0) / seconds if seconds else 0.0
        out.print(f"  {len(r.detections)} detections, {c.get('decisions', 0)} decisions, "
                  f"{c.get('overruns', 0)} overruns; {c.get('instructions', 0):,} guest "
                  f"instructions = {rate / 1e6:.2f} M per second of audio", highlight=False)


@app.command("demo-wav")
def demo_wav(
    out_file: Annotated[Path, typer.Option("--out", help="WAV file to write.")],
    data_dirs: Annotated[Optional[list[Path]], typer.Option("--data", help="Data folder (default: the shared data, else synthetic clips).")] = None,
    words: Annotated[str, typer.Option(help="Comma-separated words, in order.")] = "yes,no,up,down,left,right,stop,go",
) -> None:
    """Write a test recording: keyword clips of held-out speakers with quiet gaps."""
    from kws.emulate import demo_wav as dw

    roots = dw.default_roots(data_dirs or [], Path("build/demo_wav_synth"))
    index = dw.build(out_file, roots, [w for w in words.split(",") if w])
    err.print(f"{out_file}: " + ", ".join(f"{i['word']} at {i['start_s']:.2f} s" for i in index))


@app.command()
def stream(
    port: Annotated[str, typer.Option("--port", help="Serial port of the board (e.g. /dev/ttyACM0).")],
    wav: Annotated[Path, typer.Argument(help="WAV file to send.")],
    board: Annotated[str, typer.Option("--board", help="Board whose audio.source is serial.")] = "serial_m4",
    model: Annotated[Path, typer.Option("--model", help="Bundle (for the sample rate).")] = Path("runs/default"),
) -> None:
    """Send a WAV as framed PCM to a board with serial audio; print what the board hears."""
    from kws.codegen.project import resolve_board
    from kws.commands.serial_send import stream_wav

    b = resolve_board(board)
    if b.audio.source != "serial":
        raise KwsError(f"{b.id}: audio.source is {b.audio.source}, not serial")
    sent = stream_wav(port, wav, b.audio.block_samples, b.audio.sample_rate_hz,
                      b.platformio.monitor_speed, lambda line: out.print(line, highlight=False))
    err.print(f"sent {sent} frames")


@app.command()
def demo(
    data_dirs: Annotated[Optional[list[Path]], typer.Option("--data", help="Data folder (default: shared data or synthetic).")] = None,
) -> None:
    """End to end: data -> features -> training -> int8 model -> firmware built by PlatformIO and
    run in QEMU on a recording, with a short summary."""
    from kws.commands.demo import run_demo

    run_demo(data_dirs or [], out, err)


@app.command()
def sweep(
    spec_file: Annotated[Path, typer.Argument(help="Sweep file (YAML): params to try, score, boards (see kws/sweep/spec.py).")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for results.jsonl, sweep.json, sweep.md, sweep.png (default: build/sweep/<file name>).")] = None,
    data_dirs: Annotated[Optional[list[Path]], typer.Option("--data", help="Speech Commands style folder; repeat to combine (default: the shared data).")] = None,
    train_only: Annotated[Optional[list[Path]], typer.Option("--train-only", help="Extra training-only folder (e.g. `kws synth` output).")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster HOST:PORT (`ray start --head`) or `auto`; default: a local Ray instance with this machine's cores.")] = None,
    cpus_per_task: Annotated[int, typer.Option("--cpus-per-task", min=1, help="CPUs each training asks Ray for (TensorFlow threads).")] = 1,
    jobs: Annotated[Optional[int], typer.Option("--jobs", min=1, help="Trainings side by side on the local Ray instance (default: one per core).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Keep OUT/results.jsonl and skip the trainings it holds.")] = False,
    recost: Annotated[bool, typer.Option("--recost", help="No training: measure the chip costs of the points in OUT/results.jsonl again (e.g. after an update of kws's generated C).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Train every point of a grid or random search over settings as Ray tasks; write a table,
    JSON and a PNG of accuracy against cost on each board's chip, naming the best per board."""
    from kws.data.dataset import default_data_roots
    from kws.commands.train import NO_DATA
    from kws.sweep.run import run_sweep
    from kws.sweep.spec import load_spec

    spec, base = load_spec(spec_file)
    if address and address != "auto":
        from kws.cluster.ray_tasks import check_address

        check_address(address)  # before a results file is started
    roots, source = default_data_roots(data_dirs or [])
    if not roots:
        raise KwsError(NO_DATA)
    out_path = out_dir or Path("build/sweep") / spec_file.stem
    err.print(f"sweep: data ({source}) {', '.join(map(str, roots))}; results in {out_path}")
    report = run_sweep(spec, base, roots, train_only or [], out_path, resume=resume,
                       address=address, cpus_per_task=cpus_per_task, jobs=jobs,
                       log=lambda m: err.print(m, highlight=False), source=str(spec_file),
                       recost=recost)
    if json_out:
        _emit_json(report)
        return
    out.print((out_path / "sweep.md").read_text(), highlight=False)
    out.print(f"table {out_path / 'sweep.md'}, JSON {out_path / 'sweep.json'}, "
              f"plot {out_path / 'sweep.png'}", highlight=False)


def main() -> None:
    """Entry point: typer handles usage errors itself (exit 2); KwsError is caught here once."""
    try:
        app()
    except KwsError as exc:
        if _state["verbose"]:
            err.print_exception()
        err.print(f"[red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(2)
