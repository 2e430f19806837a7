"""`kws eval`: score 1 s clips of a folder with one backend of a model bundle.

Clips are sorted by file path so dumps from different backends line up row by row.
keras = the float model; tflite = the int8 step model in the TFLite interpreter (reference
kernels); tflm = the same model in the tflite-micro interpreter, the reference for the device;
native = the generated C of the native backend compiled for the host (bit-identical to tflm).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kws.config import DataConfig
from kws.data.dataset import index_folders, load_audio
from kws.errors import KwsError
from kws.export.manifest import Manifest, read_manifest
from kws.features import reference

BACKENDS = ("keras", "tflite", "tflm", "native", "qemu")
# int8 backends see what the device computes: the C front end on int16 audio (bit-exact on
# host and target), so tflm, native and qemu logits are comparable byte for byte. Keras (float)
# sees the librosa reference it was trained on.
DEVICE_FEATURE_BACKENDS = ("tflite", "tflm", "native")


@dataclass
class Bundle:
    folder: Path
    manifest: Manifest
    tflite: bytes


def load_bundle(folder: Path) -> Bundle:
    folder = Path(folder)
    if not folder.is_dir():
        raise KwsError(f"{folder}: model folder does not exist (train one with `kws train`)")
    manifest = read_manifest(folder / "manifest.json")
    path = folder / "model.tflite"
    try:
        tflite = path.read_bytes()
    except OSError:
        raise KwsError(f"{path}: missing; the bundle is incomplete, re-run `kws train`") from None
    if hashlib.sha256(tflite).hexdigest() != manifest.model_sha256:
        raise KwsError(f"{path}: sha256 differs from manifest.json (file replaced by hand?)")
    return Bundle(folder, manifest, tflite)


def clip_logits(bundle: Bundle, backend: str, features: np.ndarray) -> np.ndarray:
    """Per-clip logits [N, C]: float32 for keras, int8 for the step-model backends."""
    m = bundle.manifest
    if backend == "keras":
        from kws.model import gru  # noqa: F401  (sets the TF environment)
        import keras

        model = keras.models.load_model(bundle.folder / "model.keras", compile=False)
        return np.asarray(model.predict(features, verbose=0, batch_size=256), np.float32)
    q = reference.quantize(features, m.input_quant.scale, m.input_quant.zero_point)
    return int8_clip_logits(bundle, backend, q)


def data_config(bundle: Bundle) -> DataConfig:
    """The training run's data settings (so `--split` means the same speakers), else defaults
    with the model's keywords."""
    import json

    keywords = tuple(label for label in bundle.manifest.labels if not label.startswith("_"))
    saved = bundle.folder / "config.json"
    if saved.is_file():
        try:
            values = json.loads(saved.read_text())["data"]
            config = DataConfig.model_validate(values)
            if config.keywords == keywords:
                return config
        except (ValueError, KeyError, TypeError):
            pass
    return DataConfig(keywords=keywords)


SPLIT_CHOICES = ("all", "train", "validation", "test")


def device_frames(bundle: Bundle, audio_int16: np.ndarray) -> np.ndarray:
    """[N, T, F] int8 model inputs of N clips from the C front end and C quantizer."""
    from kws.features.native import CFeatures

    m = bundle.manifest
    cf = CFeatures(m.features)
    return np.stack([cf.quantize(cf.log_mel(clip), m.input_quant.scale, m.input_quant.zero_point)
                     for clip in audio_int16])


def int8_clip_logits(bundle: Bundle, backend: str, frames: np.ndarray) -> np.ndarray:
    """[N, C] int8 logits of quantized clips [N, T, F] through one step-model backend."""
    if backend == "tflm":
        from kws.export.tflm import TflmStepModel

        return TflmStepModel(bundle.tflite).run_clips(frames)
    if backend == "tflite":
        from kws.export.tflm import TfliteStepModel

        return TfliteStepModel(bundle.tflite).run_clips(frames)
    if backend == "native":
        from kws.native.host import NativeModel

        return NativeModel(bundle.tflite, digest=bundle.manifest.model_sha256).run_clips(frames)
    raise KwsError(f"--backend {backend}: not one of {', '.join(BACKENDS)}")


def evaluate(model_dir: Path, data: Sequence[Path], backend: str, split: str = "all",
             report: Callable[[str], None] = lambda _m: None,
             board: str = "qemu_m4") -> tuple[dict, np.ndarray]:
    from kws.report.metrics import classification_report, dequantize, softmax

    if split not in SPLIT_CHOICES:
        raise KwsError(f"--split {split}: not one of {', '.join(SPLIT_CHOICES)}")
    bundle = load_bundle(model_dir)
    m = bundle.manifest
    dataset = index_folders(data, data_config(bundle))
    clips = sorted((c for c in dataset.clips if split == "all" or c.split == split),
                   key=lambda c: c.name)
    loaded = load_audio(clips, dataset.config, report=report)
    if not loaded.clips:
        raise KwsError(f"{', '.join(map(str, data))}: no clip could be read")
    if backend not in BACKENDS:
        raise KwsError(f"--backend {backend}: not one of {', '.join(BACKENDS)}")
    if backend == "keras":
        logits = clip_logits(bundle, backend, reference.log_mel(loaded.audio, m.features))
    elif backend == "qemu":
        from kws.emulate import firmware

        logits = firmware.clip_logits(firmware.build(bundle.folder, board),
                                      loaded.audio)
    else:
        logits = int8_clip_logits(bundle, backend, device_frames(bundle, loaded.audio))
    if backend == "keras":
        probs = softmax(logits.astype(np.float64))
    else:
        probs = softmax(dequantize(logits, m.logits_quant.scale, m.logits_quant.zero_point))
    y = loaded.labels(m.labels)
    result = classification_report(y, probs.argmax(1), probs, list(m.labels))
    result["backend"] = backend
    result["features"] = "librosa reference" if backend == "keras" else "device C front end"
    if backend == "qemu":
        result["board"] = board
    result["split"] = split
    result["skipped_files"] = len(loaded.problems)
    return result, logits
