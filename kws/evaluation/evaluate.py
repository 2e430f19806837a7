"""`kws eval`: score 1 s clips of a folder with one backend of a model bundle.

Clips are sorted by file path so dumps from different backends line up row by row. The
backends (keras, tflite, tflm, native, qemu) are described in kws.evaluation.backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kws.data.dataset import index_folders, load_audio
from kws.errors import KwsError
from kws.evaluation import backends
from kws.export.read import data_config, load_bundle

SPLIT_CHOICES = ("all", "train", "validation", "test")


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
    runner = backends.get(backend, bundle, board)
    logits = runner.run_clips(loaded.audio)
    if runner.int8:
        probs = softmax(dequantize(logits, m.logits_quant.scale, m.logits_quant.zero_point))
    else:
        probs = softmax(logits.astype(np.float64))
    y = loaded.labels(m.labels)
    result = classification_report(y, probs.argmax(1), probs, list(m.labels))
    result.update(runner.describe())
    result["split"] = split
    result["skipped_files"] = len(loaded.problems)
    return result, logits
