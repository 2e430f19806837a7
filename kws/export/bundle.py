"""Write the model bundle (RUN/): model.keras, model.tflite, manifest.json, report.json,
confusion.png, MODEL_CARD.md. Files are built in a temporary folder inside RUN and moved into
place at the end, manifest last, so a failed export never leaves a half-written bundle."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from kws import __version__
from kws.export import convert
from kws.export.manifest import (Manifest, Quant, RecognizerParams, StateSpec, StreamingSpec,
                                 write_manifest)
from kws.features import reference
from kws.model import gru
from kws.model.config import TrainConfig
from kws.model.prepare import Prepared
from kws.model.train import TrainResult

BUNDLE_FILES = ("model.keras", "model.tflite", "report.json", "confusion.png", "MODEL_CARD.md",
                "config.json", "manifest.json")


def int8_logits(tflm, features: np.ndarray, input_quant: Quant) -> np.ndarray:
    """Clip logits of the int8 step model: quantize each frame like the device, run the steps."""
    q = reference.quantize(features, input_quant.scale, input_quant.zero_point)
    return tflm.run_clips(q)


def quantize_model(gm: gru.GruModel, prep: Prepared, config: TrainConfig,
                   log: Callable[[str], None] = lambda _m: None):
    """(tflite bytes, io description, tflite-micro runner) of the int8 step model."""
    from kws.export.tflm import TflmStepModel

    state_size = config.model.units * config.model.layers
    step = gru.step_model(gm)
    log("export: calibrating on real training frames and states")
    train = prep.splits["train"]
    pick = np.random.default_rng(config.seed).permutation(len(train.labels))[: config.calibration_clips]
    frames, states = convert.calibration_pairs(step, train.features[np.sort(pick)], state_size, config.seed)
    log("export: converting the step model to int8")
    tflite, io = convert.share_state(
        convert.to_int8_tflite(step, frames, states, per_channel=config.per_channel))
    return tflite, io, TflmStepModel(tflite)


# Per-frame decisions: a short average (the keyword's target lasts ~400 ms after its end);
# `kws streams tune --apply` replaces these with settings measured on validation streams.
CONTINUOUS_RECOGNIZER = RecognizerParams(average_window_ms=200, threshold=0.6,
                                         suppression_ms=1000, minimum_count=3)


def _continuous(config: TrainConfig) -> dict:
    """A streaming-trained model runs one state that is never reset, deciding every frame."""
    return {"mode": "continuous", "decision_frames": 1} if config.streaming.enabled else {}


def export_bundle(run_dir: Path, prep: Prepared, config: TrainConfig, result: TrainResult,
                  log: Callable[[str], None] = lambda _m: None) -> tuple[Manifest, dict]:
    from kws.model.baseline import mean_logmel_baseline
    from kws.report.metrics import classification_report, dequantize, softmax

    gm = result.model
    labels = list(prep.dataset.labels)
    state_size = config.model.units * config.model.layers
    train = prep.splits["train"]
    tflite, io, tflm = quantize_model(gm, prep, config, log)

    eval_split = "test" if len(prep.splits["test"].labels) else "validation"
    ev = prep.splits[eval_split]
    log(f"export: scoring float and int8 models on the {eval_split} split ({len(ev.labels)} clips)")
    float_logits = np.asarray(gm.model.predict(ev.features, verbose=0, batch_size=256))
    input_quant = Quant(scale=io["frame"].scale, zero_point=io["frame"].zero_point)
    logits_quant = Quant(scale=io["logits"].scale, zero_point=io["logits"].zero_point)
    q_logits = int8_logits(tflm, ev.features, input_quant)
    int8_probs = softmax(dequantize(q_logits, logits_quant.scale, logits_quant.zero_point))
    float_probs = softmax(float_logits.astype(np.float64))
    float_rep = classification_report(ev.labels, float_probs.argmax(1), float_probs, labels)
    int8_rep = classification_report(ev.labels, int8_probs.argmax(1), int8_probs, labels)
    agreement = float((float_probs.argmax(1) == int8_probs.argmax(1)).mean())
    baseline = mean_logmel_baseline(train.features, train.labels, ev.features, ev.labels, labels,
                                    seed=config.seed)

    sha = hashlib.sha256(tflite).hexdigest()
    manifest = Manifest(
        generator=f"kws {__version__}",
        labels=tuple(labels),
        features=config.features,
        input_quant=input_quant,
        state=StateSpec(size=state_size, layers=config.model.layers, units=config.model.units,
                        quant=Quant(scale=io["state"].scale, zero_point=io["state"].zero_point)),
        logits_quant=logits_quant,
        recognizer=CONTINUOUS_RECOGNIZER if config.streaming.enabled else RecognizerParams(),
        streaming=StreamingSpec(clip_frames=int(train.features.shape[1]), resets=1,
                                **_continuous(config)),
        ops=tuple(tflm.op_names),
        arena_bytes=int(tflm.arena_min_bytes),
        tflite_bytes=len(tflite),
        model_sha256=sha,
        params=int(gm.model.count_params()),
        macs_per_step=gru.macs_per_step(config.model, train.features.shape[2], len(labels)),
    )
    report = {
        "split": eval_split,
        "float": float_rep,
        "int8": int8_rep,
        "int8_backend": "tflm",
        "step_agreement": agreement,
        "baseline": baseline,
        "params": manifest.params,
        "tflite_bytes": manifest.tflite_bytes,
        "arena_bytes": manifest.arena_bytes,
        "arena_used_bytes": int(tflm.arena_used_bytes),
        "macs_per_step": manifest.macs_per_step,
        "training_seconds": round(result.seconds, 1),
        "best_epoch": result.best_epoch,
        "kept_epoch": result.kept_epoch,
        "teacher": result.teacher,
        "pretrain": result.pretrain,
        "best_val_accuracy": result.best_val_accuracy,
        "interrupted": result.interrupted,
        "history": result.history,
        "data": prep.dataset.summary(),
    }
    _write(run_dir, gm, tflite, manifest, report, config, prep)
    return manifest, report


def _write(run_dir: Path, gm, tflite: bytes, manifest: Manifest, report: dict,
           config: TrainConfig, prep: Prepared) -> None:
    from kws.report.model_card import render_model_card
    from kws.report.plots import confusion_png

    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=run_dir))
    try:
        gm.model.save(tmp / "model.keras")
        (tmp / "model.tflite").write_bytes(tflite)
        (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (tmp / "config.json").write_text(config.model_dump_json(indent=1) + "\n")
        confusion_png(report["int8"]["confusion"], list(manifest.labels), tmp / "confusion.png",
                      f"int8 step model (tflite-micro), {report['split']} split")
        (tmp / "MODEL_CARD.md").write_text(render_model_card(_card_info(run_dir, manifest, report, prep)))
        write_manifest(manifest, tmp / "manifest.json")
        old_manifest = run_dir / "manifest.json"
        if old_manifest.exists():
            old_manifest.unlink()  # the bundle is invalid until the new manifest lands
        for name in BUNDLE_FILES:
            dest = run_dir / name
            if dest.is_dir():
                shutil.rmtree(dest)
            (tmp / name).replace(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _card_info(run_dir: Path, manifest: Manifest, report: dict, prep: Prepared) -> dict:
    data = report["data"]
    synthetic = sum(1 for c in prep.dataset.subset("train")
                    if c.path is not None and (c.path.parents[1] / ".kws-synth.json").is_file())
    n_train = max(len(prep.dataset.subset("train")), 1)
    feats = manifest.features
    return {
        "name": run_dir.name,
        "model": {
            "architecture": f"log-mel {feats.mel_bands} -> GRU {manifest.state.units} x "
                            f"{manifest.state.layers} (reset_after) -> dense {len(manifest.labels)}; "
                            "int8 one-step model",
            "params": manifest.params, "tflite_bytes": manifest.tflite_bytes,
            "arena_bytes": manifest.arena_bytes, "macs_per_step": manifest.macs_per_step,
            "ops": list(manifest.ops),
        },
        "data": {
            "folders": data["roots"], "labels": list(manifest.labels), "clips": data["counts"],
            "speakers": data["speakers"], "synthetic_share": synthetic / n_train, "language": "English",
        },
        "metrics": {
            "split": report["split"], "float": report["float"], "int8": report["int8"],
            "baseline": report["baseline"], "step_agreement": report["step_agreement"],
        },
        "constraints": {
            "sample_rate_hz": feats.sample_rate_hz, "clip_seconds": prep.dataset.config.clip_seconds,
            "window_ms": feats.window_ms, "hop_ms": feats.hop_ms, "mel_bands": feats.mel_bands,
            "input_scale": manifest.input_quant.scale,
            "input_zero_point": manifest.input_quant.zero_point,
        },
    }
