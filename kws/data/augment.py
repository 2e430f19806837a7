"""On-the-fly training augmentation for fixed-length keyword clips.

Two stages, both deterministic for a given `np.random.Generator` (no global RNG is touched):

* `Augmenter.audio` works on raw waveforms `[N, S]`: speed, time shift, gain, reverb, background
  noise.
* `Augmenter.features` works on log-mel features `[N, T, F]`: SpecAugment time/frequency masks.

Each transform fires per clip with its probability from `AugmentConfig`; with every
probability at 0 the output equals the input exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.fft
from scipy.signal import fftconvolve

from kws.config import AugmentConfig
from kws.data.audio import SAMPLE_RATE_HZ
from kws.errors import KwsError

# Exponent range of synthetic noise: 0 white, 1 pink, 2 brown (drawn uniformly).
COLORED_EXPONENT_RANGE = (0.0, 2.0)
# Direct-to-reverberant energy ratio of synthetic RIRs when the caller gives none.
DRR_DB_RANGE = (0.0, 12.0)
# Speech power = mean power of the frames within this many dB of the loudest frame, so the
# zero padding / near-silence around a word does not make the noise louder than intended.
SPEECH_FRAME_MS = 20.0
SPEECH_ACTIVE_DB = 30.0
# Power (full scale = 1) assumed for clips that are (nearly) silent, so the SNR formula
# stays finite: an all-zero clip receives noise at -60 dBFS minus the SNR.
SILENT_POWER_FLOOR = 1e-6


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of noise with a 1/f^exponent power spectrum (0 white, 1 pink, 2 brown).

    Gaussian white noise is shaped in the frequency domain; the DC bin is removed, so the
    result has zero mean. Returned as float32 with unit RMS.
    """
    _check_rng(rng)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    return _colored_noise_batch(1, n, np.array([exponent], dtype=np.float64), rng)[0]


def room_impulse_response(
    rt60_s: float,
    rng: np.random.Generator,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    drr_db: float | None = None,
) -> np.ndarray:
    """Synthetic room impulse response, float32 with unit energy (sum of squares 1).

    Direct path at sample 0, then 2-6 sparse early reflections (2-30 ms) and a Gaussian
    noise tail starting 1-5 ms after the direct sound. Reflections and tail follow one
    exponential envelope that falls 60 dB in `rt60_s`; the response is `rt60_s` long.
    `drr_db` is the direct-to-reverberant energy ratio; None draws it from DRR_DB_RANGE.
    Unit energy keeps the level of a convolved (roughly white) signal unchanged.
    """
    _check_rng(rng)
    if not rt60_s > 0:
        raise ValueError(f"rt60_s must be positive, got {rt60_s}")
    length = max(2, int(np.ceil(rt60_s * sample_rate_hz)))
    t = np.arange(length) / sample_rate_hz
    # Amplitude envelope: energy falls 60 dB (amplitude x 1/1000) over rt60.
    envelope = np.exp(-np.log(1000.0) * t / rt60_s)

    reverberant = np.zeros(length)
    onset = min(length - 1, max(1, int(rng.uniform(1e-3, 5e-3) * sample_rate_hz)))
    reverberant[onset:] = rng.standard_normal(length - onset) * envelope[onset:]
    n_reflections = int(rng.integers(2, 7))
    positions = (rng.uniform(2e-3, 30e-3, n_reflections) * sample_rate_hz).astype(int)
    positions = np.clip(positions, 1, length - 1)
    signs = rng.choice(np.array([-1.0, 1.0]), n_reflections)
    strengths = rng.uniform(2.0, 6.0, n_reflections)  # relative to the tail's local std
    np.add.at(reverberant, positions, signs * strengths * envelope[positions])

    if drr_db is None:
        drr_db = rng.uniform(*DRR_DB_RANGE)
    reverberant *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(reverberant**2))
    rir = reverberant
    rir[0] = 1.0
    rir /= np.sqrt(np.sum(rir**2))
    return rir.astype(np.float32)


class Augmenter:
    """Applies `AugmentConfig` to batches; all randomness comes from the `rng` argument."""

    def __init__(
        self,
        config: AugmentConfig,
        noises: Sequence[np.ndarray] = (),
        sample_rate_hz: int = SAMPLE_RATE_HZ,
    ) -> None:
        """`noises`: long background recordings (float32 at `sample_rate_hz`, e.g. Speech
        Commands' _background_noise_). Empty -> only synthetic colored noise is used.
        Recordings shorter than a clip are repeated to fill it."""
        self.config = config
        self.sample_rate_hz = sample_rate_hz
        self.noises: list[np.ndarray] = []
        for i, noise in enumerate(noises):
            arr = np.asarray(noise, dtype=np.float32)
            if arr.ndim != 1 or arr.size == 0:
                raise KwsError(f"background noise {i}: need a non-empty 1-D array, "
                               f"got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise KwsError(f"background noise {i}: holds NaN or Inf samples")
            self.noises.append(arr)

    # ------------------------------------------------------------------ waveform stage

    def audio(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """[N, S] waveforms -> [N, S] float32 in [-1, 1].

        Per clip, in this order and each with its probability: speed change (resampled about
        the centre, rate from speed_range), time shift (zero filled, up
        to shift_max_ms either way; with shift_keep_db never so far that the word leaves the
        clip), gain, reverb (level matched to the dry clip), and
        background noise at an SNR drawn from snr_db relative to the clip's speech power.
        """
        _check_rng(rng)
        x = np.array(batch, dtype=np.float32, copy=True)
        if x.ndim != 2:
            raise ValueError(f"audio batch must be [N, S], got shape {x.shape}")
        n, s = x.shape
        if n == 0 or s == 0:
            return x
        cfg = self.config

        speed_on = rng.random(n) < cfg.speed_prob
        if speed_on.any():
            idx = np.flatnonzero(speed_on)
            x[idx] = _change_speed(x[idx], rng.uniform(*cfg.speed_range, len(idx)))

        shift_on = rng.random(n) < cfg.shift_prob
        if shift_on.any():
            max_shift = min(s, round(cfg.shift_max_ms * self.sample_rate_hz / 1000.0))
            if cfg.shift_keep_db is None:
                shifts = rng.integers(-max_shift, max_shift + 1, n)
            else:  # uniform over the shifts that keep the word inside (0 if none do)
                first, last = speech_span(x, cfg.shift_keep_db, self.sample_rate_hz)
                low = np.minimum(np.maximum(-max_shift, -first), 0)
                high = np.maximum(np.minimum(max_shift, s - last), 0)
                shifts = rng.integers(low, high + 1)
            shifts = shifts * shift_on
            x = _shift(x, shifts)

        gain_on = rng.random(n) < cfg.gain_prob
        if gain_on.any():
            gain_db = rng.uniform(*cfg.gain_db, n)
            x[gain_on] *= (10.0 ** (gain_db[gain_on] / 20.0)).astype(np.float32)[:, None]

        reverb_on = rng.random(n) < cfg.reverb_prob
        if reverb_on.any():
            idx = np.flatnonzero(reverb_on)
            x[idx] = self._reverb(x[idx], rng)

        noise_on = rng.random(n) < cfg.noise_prob
        if noise_on.any():
            idx = np.flatnonzero(noise_on)
            x[idx] = self._add_noise(x[idx], rng)

        np.clip(x, -1.0, 1.0, out=x)
        return x

    def _reverb(self, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Convolve each clip with its own RIR, keep the first S samples, match the RMS."""
        k, s = clips.shape
        rt60 = rng.uniform(*self.config.rt60_s, k)
        rirs = [room_impulse_response(r, rng, self.sample_rate_hz) for r in rt60]
        bank = np.zeros((k, max(len(h) for h in rirs)), dtype=np.float32)
        for row, h in zip(bank, rirs):
            row[: len(h)] = h
        wet = fftconvolve(clips, bank, axes=1)[:, :s].astype(np.float32)
        dry_rms = np.sqrt(np.mean(clips.astype(np.float64) ** 2, axis=1))
        wet_rms = np.sqrt(np.mean(wet.astype(np.float64) ** 2, axis=1))
        scale = np.divide(dry_rms, wet_rms, out=np.ones_like(dry_rms), where=wet_rms > 0)
        return wet * scale.astype(np.float32)[:, None]

    def _add_noise(self, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Mix one noise segment into each clip at an SNR drawn from snr_db."""
        k, s = clips.shape
        cfg = self.config
        snr_db = rng.uniform(*cfg.snr_db, k)
        colored = rng.random(k) < cfg.colored_noise_share
        if not self.noises:
            colored[:] = True
        noise = np.zeros((k, s), dtype=np.float32)
        for i in np.flatnonzero(~colored):
            noise[i] = self._recording_segment(s, rng)
        noise_power = np.mean(noise.astype(np.float64) ** 2, axis=1)
        # A silent stretch of a recording cannot set an SNR; use synthetic noise instead.
        colored |= noise_power <= 0
        if colored.any():
            exponents = rng.uniform(*COLORED_EXPONENT_RANGE, int(colored.sum()))
            noise[colored] = _colored_noise_batch(len(exponents), s, exponents, rng)
            noise_power[colored] = np.mean(noise[colored].astype(np.float64) ** 2, axis=1)
        target = np.maximum(speech_power(clips, self.sample_rate_hz), SILENT_POWER_FLOOR)
        scale = np.sqrt(target / (noise_power * 10.0 ** (snr_db / 10.0)))
        return clips + noise * scale.astype(np.float32)[:, None]

    def _recording_segment(self, s: int, rng: np.random.Generator) -> np.ndarray:
        """A random `s`-sample stretch of a random background recording."""
        rec = self.noises[int(rng.integers(len(self.noises)))]
        if len(rec) < s:
            rec = np.resize(rec, s + len(rec))  # repeat the recording to cover a clip
        start = int(rng.integers(0, len(rec) - s + 1))
        return rec[start : start + s]

    # ------------------------------------------------------------------ feature stage

    def features(self, feats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """SpecAugment on [N, T, F] log-mel features; same shape and dtype.

        With specaug_prob per clip: `time_masks` masks of 0..time_mask_max_frames frames and
        `freq_masks` masks of 0..freq_mask_max_bands bands, filled with the clip's mean value
        (log-mel values are mostly negative, so 0 would be a loud, unnatural fill).
        """
        _check_rng(rng)
        out = np.array(feats, copy=True)
        if out.ndim != 3:
            raise ValueError(f"feature batch must be [N, T, F], got shape {out.shape}")
        n, t, f = out.shape
        cfg = self.config
        on = rng.random(n) < cfg.specaug_prob
        if n == 0 or t == 0 or f == 0 or not on.any():
            return out
        idx = np.flatnonzero(on)
        k = len(idx)
        time_mask = _interval_masks(k, t, cfg.time_masks, cfg.time_mask_max_frames, rng)
        freq_mask = _interval_masks(k, f, cfg.freq_masks, cfg.freq_mask_max_bands, rng)
        mask = time_mask[:, :, None] | freq_mask[:, None, :]
        sel = out[idx]
        mean = sel.mean(axis=(1, 2), dtype=np.float64).astype(out.dtype)
        out[idx] = np.where(mask, mean[:, None, None], sel)
        return out


# ---------------------------------------------------------------------- helpers


def _change_speed(clips: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Play each clip `rates[i]` times faster (tempo and pitch together, like a tape), about
    the clip's centre so a centred word stays centred; zero outside the source.

    Linear interpolation: cheap, and its small aliasing above 16 kHz / (2 * rate) lies in the
    top mel band or beyond it for the rates used in training.
    """
    k, s = clips.shape
    centre = (s - 1) / 2.0
    out = np.zeros_like(clips)
    positions = np.arange(s, dtype=np.float64)
    for i in range(k):
        src = centre + (positions - centre) * rates[i]
        out[i] = np.interp(src, positions, clips[i], left=0.0, right=0.0)
    return out


def _active_frames(clips: np.ndarray, active_db: float,
                   sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(power [N, F], active [N, F], frame length): mean power of each whole SPEECH_FRAME_MS
    frame, and which frames are within `active_db` of their clip's loudest (and not silent)."""
    clips = np.asarray(clips)
    k, s = clips.shape
    frame = max(1, min(s, round(SPEECH_FRAME_MS * sample_rate_hz / 1000.0)))
    n_frames = s // frame
    frames = clips[:, : n_frames * frame].astype(np.float64).reshape(k, n_frames, frame)
    power = np.mean(frames**2, axis=2)
    active = power >= power.max(axis=1, keepdims=True) * 10.0 ** (-active_db / 10.0)
    active &= power > 0
    return power, active, frame


def speech_power(clips: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Mean power of each clip's active frames ([N, S] -> [N], float64).

    Frames of SPEECH_FRAME_MS count as active when within SPEECH_ACTIVE_DB of the clip's
    loudest frame; a trailing partial frame is ignored. All-zero clips give 0.
    """
    power, active, _ = _active_frames(clips, SPEECH_ACTIVE_DB, sample_rate_hz)
    count = active.sum(axis=1)
    total = np.where(active, power, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.zeros(len(power)), where=count > 0)


def speech_span(clips: np.ndarray, active_db: float,
                sample_rate_hz: int = SAMPLE_RATE_HZ,
                floor_db: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per clip, [first, last) sample of the frames within `active_db` of its loudest
    SPEECH_FRAME_MS frame (the word, for a keyword clip). All-zero clips: (0, 0).
    floor_db: frames must also be this far above the clip's noise floor (its 10th-percentile
    frame power). Why: a recording whose own noise is within `active_db` of the word would
    otherwise span the whole clip, and its "end of speech" would be the end of the file."""
    power, active, frame = _active_frames(clips, active_db, sample_rate_hz)
    if floor_db is not None and power.shape[1]:
        floor = np.percentile(power, 10, axis=1, keepdims=True)
        active &= power >= floor * 10.0 ** (floor_db / 10.0)
    any_active = active.any(axis=1)
    first = np.where(any_active, active.argmax(axis=1) * frame, 0)
    last = np.where(any_active, (active.shape[1] - active[:, ::-1].argmax(axis=1)) * frame, 0)
    return first, last


def _colored_noise_batch(
    k: int, n: int, exponents: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """[k, n] float32 rows of unit-RMS noise, row i with power spectrum 1/f^exponents[i]."""
    if n == 0:
        return np.zeros((k, 0), dtype=np.float32)
    white = rng.standard_normal((k, n), dtype=np.float32)
    if n < 3:  # no frequency axis to shape; plain white noise
        shaped = white
    else:
        # Single precision FFTs: plenty for noise and about 3x faster than numpy's float64.
        spectrum = scipy.fft.rfft(white, axis=1)
        freqs = scipy.fft.rfftfreq(n)
        gain = np.zeros((k, len(freqs)), dtype=np.float32)
        gain[:, 1:] = freqs[1:][None, :] ** (-np.asarray(exponents)[:, None] / 2.0)
        shaped = scipy.fft.irfft(spectrum * gain, n=n, axis=1)
    rms = np.sqrt(np.mean(shaped.astype(np.float64) ** 2, axis=1, keepdims=True))
    rms = rms.astype(np.float32)
    shaped = np.divide(shaped, rms, out=np.zeros_like(shaped), where=rms > 0)
    return shaped.astype(np.float32, copy=False)


def _shift(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Row i moved right by shifts[i] samples (left when negative), zero filled.

    A slice copy per row: several times faster than a vectorized gather at these sizes.
    """
    s = x.shape[1]
    out = x.copy()
    for i in np.flatnonzero(shifts):
        d = int(shifts[i])
        out[i] = 0.0
        if d > 0:
            out[i, d:] = x[i, : s - d]
        else:
            out[i, : s + d] = x[i, -d:]
    return out


def _interval_masks(
    k: int, length: int, count: int, max_width: int, rng: np.random.Generator
) -> np.ndarray:
    """[k, length] bool: union of `count` intervals per row, each 0..max_width long."""
    if count == 0:
        return np.zeros((k, length), dtype=bool)
    widths = rng.integers(0, min(max_width, length) + 1, (k, count))
    starts = rng.integers(0, length - widths + 1)
    pos = np.arange(length)[None, None, :]
    inside = (pos >= starts[:, :, None]) & (pos < (starts + widths)[:, :, None])
    return inside.any(axis=1)


def _check_rng(rng: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
