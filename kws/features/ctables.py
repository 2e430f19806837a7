"""Everything the C front end needs, computed from FeatureParams, and its rendered sources."""

from __future__ import annotations

import numpy as np

from kws.codegen.carrays import c_float, float_rows, int_rows
from kws.codegen.render import render
from kws.features import reference
from kws.features.params import FeatureParams

TEMPLATES = {
    "kws_features.h": "features/kws_features.h.j2",
    "kws_feature_tables.h": "features/kws_feature_tables.h.j2",
    "kws_features.c": "features/kws_features.c.j2",
}


def sparse_mel(params: FeatureParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first_bin, bin_count, offset, weights) holding only each triangle's non-zero span."""
    mel = reference.mel_matrix(params).astype(np.float32)
    first, count, offset, weights = [], [], [], []
    for band in mel:
        nz = np.flatnonzero(band)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, 0)
        first.append(lo)
        count.append(hi - lo)
        offset.append(sum(count[:-1]))
        weights.extend(band[lo:hi])
    return (np.array(first), np.array(count), np.array(offset), np.array(weights, np.float32))


def bit_reverse(n: int) -> np.ndarray:
    bits = n.bit_length() - 1
    return np.array([int(f"{i:0{bits}b}"[::-1], 2) if bits else 0 for i in range(n)])


def context(params: FeatureParams) -> dict:
    half = params.fft_size // 2
    k_half = np.arange(half // 2)
    k_split = np.arange(half + 1)
    first, count, offset, weights = sparse_mel(params)
    return {
        "sample_rate_hz": params.sample_rate_hz,
        "window_samples": params.window_samples,
        "hop_samples": params.hop_samples,
        "fft_size": params.fft_size,
        "fft_bins": params.fft_bins,
        "mel_bands": params.mel_bands,
        "log_floor": c_float(params.log_floor),
        "half_fft": half,
        "mel_weight_count": len(weights),
        "window_rows": float_rows(reference.window(params)),
        "fft_cos_rows": float_rows(np.cos(2 * np.pi * k_half / half)),
        "fft_sin_rows": float_rows(np.sin(2 * np.pi * k_half / half)),
        "bitrev_rows": int_rows(bit_reverse(half)),
        "split_cos_rows": float_rows(np.cos(2 * np.pi * k_split / params.fft_size)),
        "split_sin_rows": float_rows(np.sin(2 * np.pi * k_split / params.fft_size)),
        "mel_first_rows": int_rows(first),
        "mel_count_rows": int_rows(count),
        "mel_offset_rows": int_rows(offset),
        "mel_weight_rows": float_rows(weights),
    }


def sources(params: FeatureParams, digest: str | None = None) -> dict[str, str]:
    """{file name: text} of the C front end for these parameters."""
    ctx = context(params)
    digest = digest or params.digest()
    return {name: render(tpl, ctx, digest) for name, tpl in TEMPLATES.items()}
