"""The librosa reference front end (what training sees) and the int8 input quantizer.

Computed in float64 from int16 samples: it is the ground truth the float32 C code is measured
against, not a model of it.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np

from kws.features.params import FeatureParams


@lru_cache(maxsize=8)
def window(params: FeatureParams) -> np.ndarray:
    return librosa.filters.get_window(params.window, params.window_samples, fftbins=True).astype(
        np.float64
    )


@lru_cache(maxsize=8)
def mel_matrix(params: FeatureParams) -> np.ndarray:
    """[mel_bands, fft_bins] triangular filters, librosa's slaney scale and normalization."""
    return librosa.filters.mel(
        sr=params.sample_rate_hz,
        n_fft=params.fft_size,
        n_mels=params.mel_bands,
        fmin=params.fmin_hz,
        fmax=params.fmax_hz,
        htk=False,
        norm="slaney",
        dtype=np.float64,
    )


def log_mel(audio: np.ndarray, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """Log-mel frames of int16 (or float in [-1, 1]) audio.

    audio: [..., samples]; returns float32 [..., frames, mel_bands] with frame i built from
    samples [i*hop, i*hop + window), window zero-padded at its end to the FFT size.
    """
    x = np.asarray(audio)
    x = x.astype(np.float64) / 32768.0 if x.dtype == np.int16 else x.astype(np.float64)
    n_frames = params.frames_for(x.shape[-1])
    if n_frames == 0:
        return np.zeros((*x.shape[:-1], 0, params.mel_bands), np.float32)
    frames = librosa.util.frame(
        x[..., : (n_frames - 1) * params.hop_samples + params.window_samples],
        frame_length=params.window_samples,
        hop_length=params.hop_samples,
        axis=-1,
    ).swapaxes(-1, -2)
    spectrum = np.fft.rfft(frames * window(params), n=params.fft_size, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = power @ mel_matrix(params).T
    return np.log(np.maximum(mel, params.log_floor)).astype(np.float32)


@lru_cache(maxsize=8)
def full_scale_range(params: FeatureParams) -> tuple[float, float]:
    """(lowest, highest) log-mel value these parameters can produce: the floor, and the peak of
    full-scale tones and a full-scale square wave. The int8 input range used when no model's
    calibrated quantization is at hand."""
    t = np.arange(params.sample_rate_hz) / params.sample_rate_hz
    signals = [np.sin(2 * np.pi * f * t) for f in (100, 300, 1000, 3000)]
    signals.append(np.sign(np.sin(2 * np.pi * 300 * t)))
    peak = max(float(log_mel(np.float32(s) * 0.99997, params).max()) for s in signals)
    return float(np.log(params.log_floor)), peak


def range_quantization(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero_point) mapping [lo, hi] onto the int8 range [-128, 127]."""
    scale = (hi - lo) / 255.0
    zero_point = int(np.clip(round(-128 - lo / scale), -128, 127))
    return float(np.float32(scale)), zero_point


def quantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 exactly as the C `kws_features_quantize` does it.

    q = clamp(round_half_away(x / scale) + zero_point, -128, 127), the division done in
    float32 (IEEE, so bit-identical to C), the rounding in float64 where it is exact.
    """
    if not scale > 0 or not np.isfinite(scale):
        raise ValueError(f"quantization scale must be a positive number, got {scale}")
    v = (np.asarray(values, np.float32) / np.float32(scale)).astype(np.float64)
    v = np.clip(v, -1000.0, 1000.0)  # C clamps here too, so a wild value cannot overflow int32
    r = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return np.clip(r + zero_point, -128, 127).astype(np.int8)
