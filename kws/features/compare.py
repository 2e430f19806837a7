"""`kws features compare`: the generated C (compiled for the host) against librosa on real clips."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kws.config import DataConfig
from kws.data.dataset import index_folders, load_audio
from kws.features import reference
from kws.features.native import CFeatures
from kws.features.params import FeatureParams


def compare_audio(
    audio: np.ndarray, params: FeatureParams, scale: float, zero_point: int
) -> dict:
    """Parity figures for int16 clips [N, samples]: float log-mel and int8 model input."""
    c = CFeatures(params)
    ref = reference.log_mel(audio, params)
    dev = np.stack([c.log_mel(x) for x in audio]) if len(audio) else ref
    diff = np.abs(ref.astype(np.float64) - dev.astype(np.float64))
    q_ref = reference.quantize(ref, scale, zero_point).astype(np.int16)
    q_dev = c.quantize(dev, scale, zero_point).astype(np.int16)
    qdiff = np.abs(q_ref - q_dev)
    return {
        "clips": int(len(audio)),
        "frames": int(ref.shape[0] * ref.shape[1]) if ref.ndim == 3 else 0,
        "max_abs_log_diff": float(diff.max()) if diff.size else 0.0,
        "int8_exact_fraction": float((qdiff == 0).mean()) if qdiff.size else 1.0,
        "int8_max_diff": int(qdiff.max()) if qdiff.size else 0,
        "input_scale": scale,
        "input_zero_point": zero_point,
    }


def compare_folders(
    roots: Sequence[Path],
    limit: int | None = None,
    params: FeatureParams = FeatureParams(),
    quantization: tuple[float, int] | None = None,
    report: Callable[[str], None] | None = None,
) -> dict:
    """Run both front ends on the clips of `roots` (all, or `limit` spread evenly over them)."""
    dataset = index_folders(roots, DataConfig())
    clips = sorted((c for c in dataset.clips if c.path is not None), key=lambda c: str(c.path))
    if limit is not None and limit < len(clips):
        picks = np.linspace(0, len(clips) - 1, limit).round().astype(int)
        clips = [clips[i] for i in picks]
    loaded = load_audio(clips, dataset.config, report=report)
    scale, zero_point = quantization or reference.range_quantization(
        *reference.full_scale_range(params)
    )
    result = compare_audio(loaded.audio, params, scale, zero_point)
    result["skipped_files"] = len(loaded.problems)
    return result
