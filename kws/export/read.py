"""Reading a model bundle: the one hand-off between training and everything after it.

A bundle is a folder with manifest.json (labels, features, quantization, state, recognizer,
streaming), model.tflite (its sha256 is in the manifest) and, from `kws train`, model.keras
and config.json. Every command that takes `--model` reads it here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from kws.config import DataConfig
from kws.errors import KwsError
from kws.export.manifest import Manifest, read_manifest


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


def data_config(bundle: Bundle) -> DataConfig:
    """The training run's data settings (so `--split` means the same speakers), else defaults
    with the model's keywords."""
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
