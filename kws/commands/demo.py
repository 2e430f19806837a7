"""`make demo`: the main job on whatever data is at hand, as far as it is built.

data -> features (C proven equal to librosa) -> GRU training -> int8 step model -> bundle ->
evaluation under tflite-micro (and the native C model, identical) -> the PlatformIO project for
the emulated Cortex-M4 board, built by PlatformIO and run in QEMU on a recording of held-out
speakers -> a short summary with the numbers and how to flash a real board.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from kws.data.dataset import default_data_roots
from kws.features.compare import compare_folders

DEMO_SYNTH_DIR = Path("build/demo_synth")
TRAIN_SYNTH_DIR = Path("build/synth")  # same folder and settings as `make train`
DEFAULT_RUN = Path("runs/default")
# The default model as `make train` makes it (clip pretraining, then streaming training on the
# shared data; ~50 min here), shipped so that `make demo` on the shared data needs no training.
SHIPPED_BUNDLE = Path(__file__).resolve().parent.parent / "bundles" / "default"
# Without real speech the demo trains a clip model on synthetic voices: minutes, not an hour.
SYNTH_ONLY_SETTINGS = ["streaming.enabled=false", "model.units=64", "model.layers=1"]
FULL_DATA_HINT = (
    "get the full Speech Commands set (105k clips, 2.4 GB; resumable, SHA-256 checked) with "
    "`make data DATA=data/speech_commands`, then `make demo DATA=data/speech_commands`"
)


def _trained_on(run_dir: Path) -> list[str] | None:
    """Data folders the bundle in run_dir was trained on (None when there is no bundle)."""
    import json

    try:
        if not (run_dir / "manifest.json").is_file():
            return None
        return json.loads((run_dir / "report.json").read_text())["data"]["roots"]
    except (OSError, ValueError, KeyError):
        return None


def _m4_cost(run_dir: Path, err: Console) -> dict | None:
    """Guest instructions on an emulated Cortex-M4, or None (with a reason) when the cross
    toolchain or QEMU is missing."""
    from kws.emulate.cost import part_costs
    from kws.errors import KwsError
    from kws.export.read import load_bundle

    try:
        # features per frame + K model steps per frame + recognizer, at the bundle's frame rate
        c = part_costs(load_bundle(run_dir), "cortex-m4f")
    except KwsError as exc:
        err.print(f"skipped the Cortex-M4 cost: {exc}")
        return None
    return {"frame": c["instructions_per_frame"], "step": c["instructions_per_step"],
            "per_second": c["per_second_total"], "text": c["model_text_bytes"],
            "bss": c["model_bss_bytes"]}


def run_demo(given: list[Path], out: Console, err: Console, run_dir: Path = DEFAULT_RUN) -> dict:
    from kws.evaluation.evaluate import evaluate
    from kws.commands.train import train_run

    roots, source = default_data_roots(given)
    if source == "none":
        from kws.data.synth import synthesize

        err.print("[bold yellow]No real speech found: training on synthetic TTS clips. A model "
                  "trained only on synthetic voices transfers poorly to real voices;[/] " + FULL_DATA_HINT)
        report = synthesize(DEMO_SYNTH_DIR, per_word=100, seed=0)
        err.print(f"synthesized {report.clips} clips into {DEMO_SYNTH_DIR} in {report.seconds:.1f} s")
        roots = [DEMO_SYNTH_DIR]
    out.print(f"[bold]1. data[/] ({source}): {', '.join(str(r) for r in roots)}")

    parity = compare_folders(roots, limit=200)
    out.print(f"[bold]2. features[/]: generated C vs librosa on 200 clips: max |log diff| "
              f"{parity['max_abs_log_diff']:.2e}, int8 exact {parity['int8_exact_fraction']:.5f}")

    extra = [TRAIN_SYNTH_DIR] if source != "none" else []

    def synthesize_extra() -> None:
        from kws.data.synth import synthesize

        report = synthesize(TRAIN_SYNTH_DIR, per_word=200, seed=1)
        err.print(f"synthetic training-only clips: {report.clips} in {TRAIN_SYNTH_DIR} "
                  f"({'reused' if report.reused else f'{report.seconds:.0f} s'})")

    if _trained_on(run_dir) == [str(r) for r in [*roots, *extra]]:
        out.print(f"[bold]3. model[/]: reusing {run_dir} (delete it or `make train` to retrain)")
    elif source == "shared" and (SHIPPED_BUNDLE / "manifest.json").is_file():
        run_dir = SHIPPED_BUNDLE
        out.print(f"[bold]3. model[/]: the shipped default bundle {run_dir} (made by `make train` "
                  "on the shared data, about 50 min here; `make train` retrains it into runs/default)")
    elif source == "none":
        out.print(f"[bold]3. model[/]: training a clip GRU on synthetic voices into {run_dir} "
                  "(a few minutes)")
        train_run(run_dir, roots, None, None, None, SYNTH_ONLY_SETTINGS, resume=False,
                  force=True, err=err, train_only=extra)
    else:
        synthesize_extra()
        out.print(f"[bold]3. model[/]: training the default GRU into {run_dir} (clip pretraining "
                  "then streaming training: about an hour on 2 cores)")
        train_run(run_dir, roots, None, None, None, [], resume=False, force=True, err=err,
                  train_only=extra)
    import json

    report = json.loads((run_dir / "report.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    result, tflm_logits = evaluate(run_dir, roots, "tflm")
    _, native_logits = evaluate(run_dir, roots, "native")
    same = native_logits.tobytes() == tflm_logits.tobytes()
    out.print("[bold]4. summary[/]")
    out.print(f"   held-out {report['split']} split ({report['int8']['clips']} clips): float "
              f"{report['float']['accuracy']:.3f}, int8 on tflite-micro {report['int8']['accuracy']:.3f}, "
              f"baseline {report['baseline']['accuracy']:.3f}")
    out.print(f"   all {result['clips']} clips of the data (training clips included): int8 "
              f"{result['accuracy']:.3f}")
    out.print(f"   model.tflite {manifest['tflite_bytes']} bytes, tflite-micro arena "
              f"{manifest['arena_bytes']} bytes, {manifest['macs_per_step']} MACs per "
              f"{manifest['features']['hop_ms']:g} ms step")
    out.print(f"   native C model vs tflite-micro on those {result['clips']} clips: "
              + ("byte-identical int8 logits" if same else "[red]DIFFERENT int8 logits[/]"))
    cost = _m4_cost(run_dir, err)
    if cost:
        out.print(f"   Cortex-M4 (QEMU): features {cost['frame']:,.0f} instructions per frame, model "
                  f"{cost['step']:,.0f} per step ({cost['per_second'] / 1e6:.2f} M per second of "
                  f"audio with the manifest's streaming schedule); model code {cost['text']:,} B flash, "
                  f"{cost['bss']} B scratch RAM")
    out.print(f"   bundle: {run_dir}/ (MODEL_CARD.md, confusion.png, report.json)")
    fw = _firmware(run_dir, roots, out, err)
    out.print("[bold]6. next[/]")
    if fw:
        out.print(f"   firmware project: {fw['project']}/ (PlatformIO); run it again on your own "
                  "recording: make flash BOARD=qemu_m4 WAV=your.wav")
    out.print("   real board: make flash BOARD=nano33 (Arduino Nano 33 BLE Sense on USB; needs "
              "internet once for the PlatformIO platform), then make monitor BOARD=nano33; "
              "other boards: kws boards list")
    return {"data": source, "features": parity, "report": report["int8"]["accuracy"],
            "firmware": fw}


def heard_words(said: list[dict], detections: list[dict], within_s: float = 1.5) -> tuple[int, int]:
    """(words heard as said, other detections): a word counts when a detection of its label
    falls within `within_s` after its start; each detection counts once."""
    free = list(detections)
    hits = 0
    for word in said:
        match = next((d for d in free if d["label"] == word["word"]
                      and 0 <= d["t_s"] - word["start_s"] <= within_s), None)
        if match is not None:
            free.remove(match)
            hits += 1
    return hits, len(free)


def _firmware(run_dir: Path, roots: list[Path], out: Console, err: Console) -> dict | None:
    """Generate the qemu_m4 project, build and run it through PlatformIO in QEMU on a test
    recording; print what it heard and what it cost. None (with the reason) when a tool is
    missing."""
    from kws.codegen.project import generate
    from kws.emulate import demo_wav, firmware
    from kws.errors import KwsError
    from kws.pio.run import pio_env, run

    project_dir = Path("build/firmware/qemu_m4")
    wav = Path("build/demo.wav")
    try:
        proj = generate(run_dir, "qemu_m4", project_dir, force=True)
        index = demo_wav.build(wav, roots)
        proc = run(project_dir, ["run", "-e", "qemu_m4", "-t", "upload"], timeout=600,
                   env={**pio_env(), "KWS_WAV": str(wav.resolve())})
        if proc.returncode != 0:
            raise KwsError(f"pio run -t upload failed: {(proc.stdout + proc.stderr).strip()[-300:]}")
        (result,) = firmware.parse(proc.stdout)
    except KwsError as exc:
        err.print(f"skipped the firmware step: {exc}")
        return None
    said = ", ".join(f"{i['word']} at {i['start_s']:.1f} s" for i in index)
    hits, others = heard_words(index, result.detections)
    heard = ", ".join(f"{d['label']} ({d['score']:.2f}) at {d['t_s']:.1f} s"
                      for d in result.detections) or "nothing"
    c = result.counters
    seconds = c["samples"] / 16000
    out.print(f"[bold]5. firmware[/]: {project_dir}/ built by PlatformIO, run in QEMU (Cortex-M4, "
              f"mps2-an386) on {wav} ({seconds:.1f} s)")
    out.print(f"   said:  {said}")
    out.print(f"   heard: {heard}")
    out.print(f"   {hits} of {len(index)} words heard as said, {others} other detection(s)")
    out.print(f"   cost: {c['instructions'] / seconds / 1e6:.2f} M guest instructions per second "
              f"of audio (features + model + recognizer; {c['instructions'] / seconds / 64e6:.1%} "
              f"of a 64 MHz Cortex-M4 at 1 instruction per cycle); kws part "
              f"{proj.budget.flash_bytes:,} B flash, {proj.budget.ram_bytes:,} B RAM")
    return {"project": str(project_dir), "detections": result.detections,
            "words_heard": hits, "words_said": len(index), "other_detections": others,
            "instructions_per_second": c["instructions"] / seconds}
