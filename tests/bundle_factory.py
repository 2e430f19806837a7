"""Model bundles for tests without training: a random-weight step model from
tests/native/native_models.py plus a manifest made from its tensors, written as a run folder
(manifest.json + model.tflite) that `kws generate`, `kws eval` and `kws emulate` accept."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kws.export.manifest import (Manifest, Quant, RecognizerParams, StateSpec, StreamingSpec,
                                 write_manifest)
from kws.export.state_quant import find_io, op_names, read_model
from kws.features.params import FeatureParams
from tests.native.native_models import build_step_model

LABELS10 = ("_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off")
LABELS12 = LABELS10 + ("stop", "go")
# random-weight models give flat posteriors: a low threshold makes detections happen
EAGER = RecognizerParams(average_window_ms=600, threshold=0.12, suppression_ms=500,
                         minimum_count=2)


def make_manifest(tflite: bytes, resets: int, clip_frames: int = 49,
                  recognizer: RecognizerParams = EAGER, labels=LABELS10,
                  features: FeatureParams = FeatureParams(), arena_bytes: int = 4096) -> Manifest:
    io = find_io(read_model(tflite))

    def quant(role):
        return Quant(scale=io[role].scale, zero_point=io[role].zero_point)

    return Manifest(generator="test", labels=labels, features=features,
                    input_quant=quant("frame"),
                    state=StateSpec(size=io["state"].width, layers=1, units=io["state"].width,
                                    quant=quant("state")),
                    logits_quant=quant("logits"), recognizer=recognizer,
                    streaming=StreamingSpec(clip_frames=clip_frames, resets=resets),
                    ops=tuple(op_names(read_model(tflite))), arena_bytes=arena_bytes,
                    tflite_bytes=len(tflite), model_sha256=hashlib.sha256(tflite).hexdigest(),
                    params=1, macs_per_step=1)


def write_bundle(folder: Path, units: int = 16, labels=LABELS12, resets: int = 1,
                 per_channel: bool = True, **manifest_args) -> Path:
    """per_channel=False: one weight scale per tensor, the only kind of FULLY_CONNECTED that
    `kws generate --backend tflm` accepts (the pinned Arduino TFLM library gets the other wrong)."""
    tflite = build_step_model(units, len(labels), 1, per_channel)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.tflite").write_bytes(tflite)
    write_manifest(make_manifest(tflite, resets, labels=labels, **manifest_args),
                   folder / "manifest.json")
    return folder
