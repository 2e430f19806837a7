"""`make demo`: the main job, as far as it is built.

Today (issues 2-3 landed): pick the data, index and read it, and prove the device's log-mel
front end equals the training one. Training, export, firmware and QEMU emulation are not built
yet (issues 4-7); the demo says so instead of pretending.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from kws.config import DataConfig
from kws.data.dataset import default_data_roots, index_folders, load_audio
from kws.features.compare import compare_folders

DEMO_SYNTH_DIR = Path("build/demo_synth")
FULL_DATA_HINT = (
    "get the full Speech Commands set (85k clips) with: curl -LO "
    "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz && mkdir speech_commands "
    "&& tar -xzf speech_commands_v0.02.tar.gz -C speech_commands, then `make demo DATA=speech_commands`"
)


def run_demo(given: list[Path], out: Console, err: Console) -> dict:
    roots, source = default_data_roots(given)
    if source == "none":
        from kws.data.synth import synthesize

        err.print("[bold yellow]No real speech found: using synthetic TTS clips. A model trained "
                  "only on synthetic voices transfers poorly to real voices;[/] " + FULL_DATA_HINT)
        report = synthesize(DEMO_SYNTH_DIR, per_word=20, seed=0)
        err.print(f"synthesized {report.clips} clips into {DEMO_SYNTH_DIR} in {report.seconds:.1f} s")
        roots = [DEMO_SYNTH_DIR]
    out.print(f"[bold]1. data[/] ({source}): {', '.join(str(r) for r in roots)}")
    dataset = index_folders(roots, DataConfig())
    for note in dataset.notes:
        err.print(f"note: {note}")
    loaded = load_audio(dataset.clips, dataset.config,
                        report=lambda line: err.print(f"skipped {line}"))
    counts = dataset.counts()
    out.print(f"   {len(loaded.clips)} clips read ({len(loaded.problems)} skipped), "
              f"{len(counts)} labels: " + ", ".join(
                  f"{lab} {sum(v.values())}" for lab, v in counts.items()))
    out.print(f"   speakers per split: {dataset.speakers()}; "
              f"{len(dataset.noise_files)} background-noise files")
    out.print("[bold]2. features[/]: generated C (host build) vs librosa on 200 clips")
    parity = compare_folders(roots, limit=200)
    out.print(f"   max |log diff| {parity['max_abs_log_diff']:.2e}, int8 exact "
              f"{parity['int8_exact_fraction']:.5f}, int8 max diff {parity['int8_max_diff']}")
    out.print("[bold]3. not built yet[/]: training, int8 export, firmware generation and QEMU "
              "emulation arrive with issues 4-7; `make demo` will run them when they land.")
    return {"data": source, "clips": len(loaded.clips), "features": parity}
