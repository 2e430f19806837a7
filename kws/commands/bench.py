"""`kws bench`: measured speed figures as one JSON object (never asserted in unit tests)."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from kws.features import reference
from kws.features.native import CFeatures
from kws.features.params import FeatureParams


def _best_of(fn: Callable[[], object], repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def features_host(params: FeatureParams = FeatureParams(), clips: int = 100) -> dict:
    """Host ns per frame of the generated C front end (-O2, the device's numerics flags) and of
    the librosa reference, on deterministic noise-like audio."""
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((clips, params.sample_rate_hz)) * 3000).astype(np.int16)
    frames = clips * params.frames_for(params.sample_rate_hz)
    c = CFeatures(params)
    c_seconds = _best_of(lambda: [c.log_mel(x) for x in audio])
    ref_seconds = _best_of(lambda: reference.log_mel(audio, params), repeats=2)
    return {
        "frames": frames,
        "c_host_ns_per_frame": round(c_seconds / frames * 1e9, 1),
        "librosa_ns_per_frame": round(ref_seconds / frames * 1e9, 1),
        "c_host_x_realtime": round(clips / c_seconds, 1),
    }


def native_host(bundle, clips: int = 100) -> dict:
    """Host µs per step of the generated model C (-O2, the device's numerics flags), through
    one kws_model_run_clips call per repetition, on deterministic random int8 frames."""
    from kws.evaluation import backends

    model = backends.get("native", bundle).step_model()
    frames = np.random.default_rng(0).integers(-128, 128, (clips, 49, model.frame_size),
                                               dtype=np.int8)
    seconds = _best_of(lambda: model.run_clips(frames))
    return {"steps": clips * 49, "host_us_per_step": round(seconds / (clips * 49) * 1e6, 2)}


def device_costs(model_dir, progress: Callable[[str], None]) -> dict:
    """Guest instructions in QEMU (-icount, deterministic) per emulated core: the front end per
    frame, the model per step and per MAC, the firmware per second of audio, and the reference
    GRU-64 step against TFLM + CMSIS-NN (kws.emulate.cost.core_report)."""
    from kws.emulate.cost import core_report
    from kws.csource.machines import MACHINES
    from kws.emulate.reference_model import gru_step_tflite
    from kws.export.read import load_bundle

    bundle = load_bundle(model_dir) if model_dir is not None else None
    reference = gru_step_tflite(64, 12)
    out: dict = {}
    for core in MACHINES:
        progress(f"bench: {core} in QEMU")
        out[core] = core_report(core, bundle, reference)
    return out


# What `kws bench --parts` can choose (all by default; cross-validation is --cv).
PARTS = ("host", "accuracy", "streaming", "chip", "device")
BOARDS = ("qemu_m4", "qemu_m7", "qemu_m55", "nano33", "portenta_h7", "nano_rp2040")
INT8_BACKENDS = ("tflm", "native", "qemu")


def accuracy(model_dir, data: list, progress: Callable[[str], None]) -> dict:
    """Test-split accuracy per backend: float Keras and int8 tflite-micro / native C / the
    firmware in QEMU (the three int8 dumps must be byte-identical)."""
    from kws.evaluation.evaluate import evaluate

    out: dict = {}
    logits = {}
    for backend in ("keras", *INT8_BACKENDS):
        progress(f"bench: test-split accuracy, {backend}")
        t0 = time.perf_counter()
        result, logits[backend] = evaluate(model_dir, data, backend, split="test")
        out[backend] = {"accuracy": round(result["accuracy"], 4), "clips": result["clips"],
                        "seconds": round(time.perf_counter() - t0, 1)}
    out["int8_identical"] = all(logits[b].tobytes() == logits["tflm"].tobytes()
                                for b in INT8_BACKENDS)
    return out


def streaming(model_dir, data: list, progress: Callable[[str], None],
              minutes: float = 60.0) -> dict:
    """FRR / FA-per-hour on test-speaker streams at the manifest's recognizer settings, clean
    and with 1 % of audio blocks dropped and a 1000 ppm mic clock error."""
    from kws.data.dataset import index_folders
    from kws.export.read import data_config, load_bundle
    from kws.recognize.recognizer import RecognizerConfig
    from kws.streams.build import SuiteSpec
    from kws.streams.impair import Impairment
    from kws.streams.score import false_accept_causes, tally
    from kws.streams.tune import collect

    bundle = load_bundle(model_dir)
    dataset = index_folders(data, data_config(bundle))
    k = bundle.manifest.streaming.resets
    config = RecognizerConfig.from_manifest(bundle.manifest)
    spec = SuiteSpec(negative_minutes=minutes)
    out: dict = {"split": "test", "resets": k, "recognizer": bundle.manifest.recognizer.model_dump()}
    for name, imp in (("clean", None), ("impaired", Impairment(0.01, drift_ppm=1000))):
        progress(f"bench: streams ({name})")
        runs = collect(bundle, dataset, "test", (k,), spec, impairment=imp)
        out[name] = {**tally(runs.runs[k], config).as_dict(),
                     "false_accept_causes": false_accept_causes(runs.runs[k], config)}
        if imp is not None:
            out[name]["impairment"] = imp.describe()
        else:
            out["audio"] = runs.info
    return out


def chip(model_dir, progress: Callable[[str], None]) -> dict:
    """Per board: instructions per second of audio by part, energy, and for emulated boards the
    firmware's own run on build/demo.wav (totals, stack, ELF sizes, emulation speed)."""
    from pathlib import Path

    from kws.codegen.project import generate
    from kws.emulate import demo_wav
    from kws.emulate.cost import board_cost

    wav = Path("build/demo.wav")
    if not wav.is_file():
        demo_wav.build(wav, demo_wav.default_roots([], Path("build/demo_wav_synth")))
    out = {}
    for board in BOARDS:
        progress(f"bench: {board} costs")
        entry = board_cost(Path(model_dir), board, wav)
        proj = generate(Path(model_dir), board, Path("build/bench_firmware") / board, force=True)
        entry["kws_flash_bytes"] = proj.budget.flash_bytes
        entry["kws_ram_bytes"] = proj.budget.ram_bytes
        out[board] = entry
    return out


def run_all(cv: bool = False, data: list | None = None, model: str | None = "runs/default",
            train_only: list | None = None,
            progress: Callable[[str], None] = lambda _msg: None,
            cv_config=None, cv_options: dict | None = None,
            parts: set[str] | None = None) -> dict:
    """Every part of the benchmark, or only those in `parts` (of PARTS); `cv_options` go to
    kws.evaluation.crossval.cross_validate (jobs, only, seeds, address, cpus_per_task, results, resume)."""
    import json
    from pathlib import Path

    from kws.data.dataset import default_data_roots

    want = set(PARTS) if parts is None else set(parts)
    result: dict = {}
    if "host" in want:
        progress("bench: features on the host")
        result["features"] = features_host()
    tflite_path = Path(model) / "model.tflite" if model else None
    tflite = tflite_path.read_bytes() if tflite_path and tflite_path.is_file() else None
    if tflite is None:
        progress(f"bench: no {tflite_path}; model costs skipped (run `make train` first)")
    roots, _ = default_data_roots(data or [])
    if tflite is not None:
        if "host" in want:
            progress("bench: native model C on the host")
            from kws.export.read import load_bundle

            result["native_host"] = native_host(load_bundle(Path(model)))
        report = json.loads((Path(model) / "report.json").read_text())
        result["training"] = {"seconds": report.get("training_seconds"),
                              "tflite_bytes": len(tflite),
                              "test_float": report["float"]["accuracy"],
                              "test_int8_tflm": report["int8"]["accuracy"]}
        if roots and "accuracy" in want:
            result["accuracy"] = accuracy(Path(model), roots, progress)
        if roots and "streaming" in want:
            result["streaming"] = streaming(Path(model), roots, progress)
        if "chip" in want:
            result["chip"] = chip(model, progress)
    if "device" in want:
        result["device"] = device_costs(Path(model) if tflite else None, progress)
        result["device"]["model"] = str(tflite_path) if tflite else None
    if cv:
        from kws.evaluation.crossval import cross_validate
        from kws.errors import KwsError
        from kws.model.config import TrainConfig

        if not roots:
            raise KwsError("bench --cv: no data (pass --data DIR)")
        opts = dict(cv_options or {})
        where = opts.get("address") or f"a local Ray instance ({opts.get('jobs') or 'all'} cores)"
        progress(f"bench: 5-fold cross-validation on {', '.join(map(str, roots))} on {where}")
        result["cross_validation"] = cross_validate(roots, cv_config or TrainConfig(), folds=5,
                                                    log=progress, train_only=train_only or [],
                                                    **opts)
        result["cross_validation"]["train_only"] = [str(p) for p in train_only or []]
    return result
