"""`kws features compare`: the generated C (compiled for the host) against librosa on real clips."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kws.config import NOISE_FOLDER, DataConfig
from kws.data.dataset import Clip, load_audio
from kws.errors import KwsError
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
    """Run both front ends on every WAV under `roots` but the background-noise recordings
    (all, or `limit` spread evenly over them); labels do not matter here."""
    paths = sorted(
        p for root in map(Path, roots) for p in _wavs(root) if NOISE_FOLDER not in p.parts
    )
    if not paths:
        raise KwsError(f"{', '.join(map(str, roots))}: no WAV files found")
    if limit is not None and limit < len(paths):
        picks = np.linspace(0, len(paths) - 1, limit).round().astype(int)
        paths = [paths[i] for i in picks]
    clips = [Clip("", "test", "", path=p) for p in paths]
    loaded = load_audio(clips, DataConfig(), report=report)
    scale, zero_point = quantization or reference.range_quantization(
        *reference.full_scale_range(params)
    )
    result = compare_audio(loaded.audio, params, scale, zero_point)
    result["skipped_files"] = len(loaded.problems)
    return result


def _wavs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise KwsError(f"{root}: data folder does not exist")
    return [p for p in root.rglob("*") if p.suffix.lower() == ".wav" and p.is_file()]
