"""Training augmentation: waveform transforms, synthetic noise/RIRs and SpecAugment."""

from __future__ import annotations

import numpy as np
import pytest

from kws.config import AugmentConfig
from kws.data.augment import (
    Augmenter,
    colored_noise,
    room_impulse_response,
    speech_power,
)

SR = 16000
S = 16000
OFF = {"speed_prob": 0, "shift_prob": 0, "gain_prob": 0, "noise_prob": 0, "reverb_prob": 0, "specaug_prob": 0}


def cfg(**overrides) -> AugmentConfig:
    return AugmentConfig(**{**OFF, **overrides})


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture(scope="module")
def noises() -> list[np.ndarray]:
    r = rng(123)
    return [
        (0.05 * r.standard_normal(5 * SR)).astype(np.float32),
        (0.2 * np.sin(2 * np.pi * 50 * np.arange(3 * SR) / SR)).astype(np.float32),
        (0.01 * r.standard_normal(SR // 2)).astype(np.float32),  # shorter than a clip
    ]


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    """A word-like burst in the middle of each clip, some quiet, some loud."""
    r = rng(7)
    n = 16
    t = np.arange(S) / SR
    x = np.zeros((n, S), dtype=np.float32)
    for i in range(n):
        start = int(r.integers(2000, 8000))
        length = int(r.integers(4000, 7000))
        tone = np.sin(2 * np.pi * r.uniform(150, 400) * t[:length]) + 0.3 * r.standard_normal(length)
        x[i, start : start + length] = r.uniform(0.05, 0.5) * tone * np.hanning(length)
    return np.clip(x, -1, 1)


ALL_ON = {"speed_prob": 1, "shift_prob": 1, "gain_prob": 1, "noise_prob": 1, "reverb_prob": 1, "specaug_prob": 1}


# ---------------------------------------------------------------- waveform stage


@pytest.mark.parametrize("overrides", [{}, ALL_ON], ids=["defaults", "all-on"])
def test_audio_shape_dtype_range(clips, noises, overrides):
    aug = Augmenter(AugmentConfig(**overrides), noises)
    out = aug.audio(clips, rng(1))
    assert out.shape == clips.shape
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert not np.array_equal(out, clips)


@pytest.mark.parametrize("with_noises", [True, False])
def test_audio_zero_and_full_scale_clips_stay_finite(noises, with_noises):
    r = rng(3)
    batch = np.stack([
        np.zeros(S, dtype=np.float32),
        np.ones(S, dtype=np.float32),
        -np.ones(S, dtype=np.float32),
        np.sign(r.standard_normal(S)).astype(np.float32),
        np.zeros(S, dtype=np.float32),
    ])
    aug = Augmenter(AugmentConfig(**ALL_ON, gain_db=(6.0, 6.0)), noises if with_noises else [])
    for seed in range(5):
        out = aug.audio(batch, rng(seed))
        assert out.dtype == np.float32 and out.shape == batch.shape
        assert np.all(np.isfinite(out))
        assert out.min() >= -1.0 and out.max() <= 1.0


def test_audio_deterministic_per_seed(clips, noises):
    aug = Augmenter(AugmentConfig(**ALL_ON), noises)
    a = aug.audio(clips, rng(42))
    b = aug.audio(clips, rng(42))
    c = aug.audio(clips, rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_audio_does_not_modify_input(clips, noises):
    before = clips.copy()
    Augmenter(AugmentConfig(**ALL_ON), noises).audio(clips, rng(0))
    np.testing.assert_array_equal(clips, before)


def test_all_probabilities_zero_is_identity(clips, noises):
    aug = Augmenter(cfg(), noises)
    out = aug.audio(clips, rng(0))
    np.testing.assert_array_equal(out, clips)
    assert out.dtype == np.float32
    feats = rng(1).normal(-6, 2, (4, 49, 40)).astype(np.float32)
    np.testing.assert_array_equal(aug.features(feats, rng(0)), feats)


def test_rng_must_be_a_generator(clips):
    with pytest.raises(TypeError):
        Augmenter(cfg()).audio(clips, 0)


def _realized_snr_db(clean: np.ndarray, mixed: np.ndarray) -> np.ndarray:
    noise = mixed.astype(np.float64) - clean
    return 10 * np.log10(speech_power(clean) / np.mean(noise**2, axis=1))


@pytest.mark.parametrize("share", [0.0, 1.0], ids=["recordings", "colored"])
@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_noise_mix_hits_target_snr(noises, share, snr):
    # Full-length signals: every frame is speech, so speech power is the clip power.
    r = rng(5)
    t = np.arange(S) / SR
    batch = np.stack([a * np.sin(2 * np.pi * f * t) for a, f in zip(
        r.uniform(0.02, 0.1, 12), r.uniform(100, 1000, 12))]).astype(np.float32)
    aug = Augmenter(cfg(noise_prob=1, snr_db=(snr, snr), colored_noise_share=share), noises)
    out = aug.audio(batch, rng(9))
    assert np.abs(out).max() < 1.0  # no clipping, so out - batch is exactly the noise
    np.testing.assert_allclose(_realized_snr_db(batch, out), snr, atol=0.5)
    # and against plain whole-clip power too, since these clips are all speech
    whole = 10 * np.log10(np.mean(batch.astype(np.float64) ** 2, axis=1)
                          / np.mean((out.astype(np.float64) - batch) ** 2, axis=1))
    np.testing.assert_allclose(whole, snr, atol=0.5)


def test_snr_is_measured_against_speech_not_padding(clips, noises):
    """A word in a mostly silent clip: SNR refers to the word's power, not the clip average."""
    x = np.zeros((1, S), dtype=np.float32)
    x[0, 6000:10000] = 0.3 * np.sin(2 * np.pi * 300 * np.arange(4000) / SR)
    aug = Augmenter(cfg(noise_prob=1, snr_db=(10, 10)), noises)
    out = aug.audio(x, rng(0))
    noise_power = np.mean((out.astype(np.float64) - x) ** 2)
    word_power = np.mean(x[0, 6000:10000].astype(np.float64) ** 2)
    assert 10 * np.log10(word_power / noise_power) == pytest.approx(10.0, abs=0.5)
    np.testing.assert_allclose(_realized_snr_db(clips, Augmenter(
        cfg(noise_prob=1, snr_db=(10, 10)), noises).audio(clips, rng(1))), 10.0, atol=0.5)


def test_noise_on_silent_clip_is_finite_and_small(noises):
    out = Augmenter(cfg(noise_prob=1, snr_db=(0, 0)), noises).audio(
        np.zeros((3, S), dtype=np.float32), rng(0))
    assert np.all(np.isfinite(out))
    assert 0 < np.sqrt(np.mean(out**2)) < 1e-2


def test_shift_is_bounded_and_zero_filled():
    shift_max_ms = 100.0
    max_samples = int(shift_max_ms * SR / 1000)
    ramp = np.linspace(0.01, 0.99, S, dtype=np.float32)  # distinct, nonzero values
    batch = np.tile(ramp, (64, 1))
    out = Augmenter(cfg(shift_prob=1, shift_max_ms=shift_max_ms)).audio(batch, rng(11))
    shifts = []
    for row in out:
        if row[0] == 0:  # moved right: leading zeros
            d = int(np.flatnonzero(row)[0])
        else:  # moved left (or not at all): row starts inside the ramp
            d = -int(np.searchsorted(ramp, row[0]))
        expected = np.zeros(S, dtype=np.float32)
        if d >= 0:
            expected[d:] = ramp[: S - d]
        else:
            expected[: S + d] = ramp[-d:]
        np.testing.assert_array_equal(row, expected)
        shifts.append(d)
    shifts = np.array(shifts)
    assert np.abs(shifts).max() <= max_samples
    assert shifts.min() < -max_samples // 2 and shifts.max() > max_samples // 2


def _peak_hz(row: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(row * np.hanning(len(row))))
    return float(np.argmax(spectrum) * SR / len(row))


def test_speed_scales_pitch_and_duration_about_the_centre():
    t = np.arange(S) / SR
    burst = np.zeros(S, np.float32)
    burst[6000:10000] = np.sin(2 * np.pi * 500 * t[:4000])  # 250 ms of 500 Hz, centred
    batch = np.tile(burst, (64, 1))
    out = Augmenter(cfg(speed_prob=1, speed_range=(0.8, 1.25))).audio(batch, rng(3))
    rates = []
    for row in out:
        active = np.flatnonzero(np.abs(row) > 1e-3)
        centre = (active[0] + active[-1]) / 2
        assert abs(centre - (S - 1) / 2) < 30  # stays centred
        rate = 4000 / (active[-1] - active[0] + 1)
        np.testing.assert_allclose(_peak_hz(row), 500 * rate, rtol=0.02)  # pitch moves with it
        rates.append(rate)
    assert min(rates) >= 0.8 - 0.01 and max(rates) <= 1.25 + 0.01
    assert max(rates) - min(rates) > 0.25


def test_speed_rate_one_is_identity(clips):
    out = Augmenter(cfg(speed_prob=1, speed_range=(1.0, 1.0))).audio(clips, rng(4))
    np.testing.assert_allclose(out, clips, atol=1e-6)


def test_speed_range_must_be_positive_and_ordered():
    with pytest.raises(ValueError):
        AugmentConfig(speed_range=(0.0, 1.1))
    with pytest.raises(ValueError):
        AugmentConfig(speed_range=(1.2, 0.9))


def test_gain_within_range(clips):
    out = Augmenter(cfg(gain_prob=1, gain_db=(-12, 6))).audio(clips * 0.1, rng(0))
    ratio_db = 20 * np.log10(np.abs(out).max(axis=1) / np.abs(clips * 0.1).max(axis=1))
    assert ratio_db.min() >= -12 - 1e-3 and ratio_db.max() <= 6 + 1e-3
    assert ratio_db.max() - ratio_db.min() > 6


def test_reverb_keeps_length_and_level(clips):
    out = Augmenter(cfg(reverb_prob=1, rt60_s=(0.3, 0.8))).audio(clips, rng(2))
    assert out.shape == clips.shape
    rms_in = np.sqrt(np.mean(clips.astype(np.float64) ** 2, axis=1))
    rms_out = np.sqrt(np.mean(out.astype(np.float64) ** 2, axis=1))
    np.testing.assert_allclose(rms_out, rms_in, rtol=0.05)
    # the tail smears energy into the silence after the word
    assert np.all(np.abs(out[:, -500:]).max(axis=1) >= np.abs(clips[:, -500:]).max(axis=1))


def test_augmenter_rejects_bad_noise():
    from kws.errors import KwsError

    with pytest.raises(KwsError):
        Augmenter(cfg(), [np.zeros((2, 100), dtype=np.float32)])
    with pytest.raises(KwsError):
        Augmenter(cfg(), [np.zeros(0, dtype=np.float32)])


# ---------------------------------------------------------------- synthetic noise / RIR


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_colored_noise_slope(exponent):
    n = 1 << 15
    x = colored_noise(n, exponent, rng(4))
    assert x.dtype == np.float32 and x.shape == (n,)
    assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(n)
    keep = slice(1, None)  # skip DC
    slope = np.polyfit(np.log10(freqs[keep]), np.log10(power[keep] + 1e-30), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.1)


def test_colored_noise_deterministic_and_edge_sizes():
    np.testing.assert_array_equal(colored_noise(1000, 1.0, rng(1)), colored_noise(1000, 1.0, rng(1)))
    assert not np.array_equal(colored_noise(1000, 1.0, rng(1)), colored_noise(1000, 1.0, rng(2)))
    for n in (0, 1, 2, 3):
        x = colored_noise(n, 1.0, rng(0))
        assert x.shape == (n,) and np.all(np.isfinite(x))


def _decay_rt60(h: np.ndarray, block: int = 160) -> float:
    """RT60 from the slope of block energies (in dB) between 20 ms and 80 % of the length."""
    energy = np.add.reduceat(h.astype(np.float64) ** 2, np.arange(0, len(h), block))
    t = np.arange(len(energy)) * block / SR
    keep = (t >= 0.02) & (t <= 0.8 * len(h) / SR)
    slope = np.polyfit(t[keep], 10 * np.log10(energy[keep]), 1)[0]  # dB per second
    return -60.0 / slope


@pytest.mark.parametrize("rt60", [0.2, 0.5, 1.0])
def test_rir_decays_at_rt60(rt60):
    h = room_impulse_response(rt60, rng(6))
    assert h.dtype == np.float32 and h.ndim == 1
    assert len(h) == pytest.approx(rt60 * SR, abs=1)
    assert np.sum(h.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-5)
    assert np.argmax(np.abs(h)) == 0  # direct path first and strongest
    tenth = len(h) // 10
    first, last = np.sum(h[:tenth] ** 2), np.sum(h[-tenth:] ** 2)
    assert last < 1e-4 * first
    assert _decay_rt60(h) == pytest.approx(rt60, rel=0.15)


def test_rir_longer_rt60_holds_more_late_energy():
    late = []
    for rt60 in (0.2, 0.4, 0.8):
        h = room_impulse_response(rt60, rng(0), drr_db=5.0).astype(np.float64)
        late.append(np.sum(h[int(0.05 * SR):] ** 2))
    assert late[0] < late[1] < late[2]


def test_rir_deterministic():
    np.testing.assert_array_equal(room_impulse_response(0.4, rng(1)),
                                  room_impulse_response(0.4, rng(1)))
    assert not np.array_equal(room_impulse_response(0.4, rng(1)),
                              room_impulse_response(0.4, rng(2)))


# ---------------------------------------------------------------- SpecAugment


def _runs(flags: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D bool array."""
    padded = np.concatenate([[False], flags, [False]]).astype(int)
    edges = np.flatnonzero(np.diff(padded))
    return list(edges[1::2] - edges[::2])


def test_specaugment_masks_and_fill():
    c = cfg(specaug_prob=1, time_masks=2, time_mask_max_frames=5, freq_masks=3,
            freq_mask_max_bands=4)
    feats = rng(2).normal(-6, 2, (64, 49, 40)).astype(np.float32)
    out = Augmenter(c).features(feats, rng(3))
    assert out.shape == feats.shape and out.dtype == feats.dtype
    masked_any = 0
    for x, y in zip(feats, out):
        changed = x != y
        rows = changed.all(axis=1)
        cols = changed.all(axis=0)
        # every change belongs to a fully masked frame or a fully masked band
        assert np.array_equal(changed, rows[:, None] | cols[None, :])
        assert rows.sum() <= 2 * 5 and len(_runs(rows)) <= 2
        assert cols.sum() <= 3 * 4 and len(_runs(cols)) <= 3
        mean = np.float32(x.mean(dtype=np.float64))
        np.testing.assert_array_equal(y[changed], mean)
        masked_any += changed.any()
    assert masked_any > 32  # widths may be 0, but most clips get some mask


def test_specaugment_probability_and_determinism():
    feats = rng(2).normal(-6, 2, (200, 49, 40)).astype(np.float32)
    aug = Augmenter(cfg(specaug_prob=0.5, time_mask_max_frames=8, freq_mask_max_bands=8))
    a = aug.features(feats, rng(5))
    np.testing.assert_array_equal(a, aug.features(feats, rng(5)))
    assert not np.array_equal(a, aug.features(feats, rng(6)))
    touched = np.array([not np.array_equal(x, y) for x, y in zip(feats, a)])
    assert 0.3 < touched.mean() < 0.6


def test_specaugment_zero_masks_is_identity():
    feats = rng(2).normal(-6, 2, (8, 49, 40)).astype(np.float32)
    aug = Augmenter(cfg(specaug_prob=1, time_masks=0, freq_masks=0))
    np.testing.assert_array_equal(aug.features(feats, rng(0)), feats)


def test_shift_that_keeps_the_word_never_pushes_it_out():
    """A word near the end may only move left past its own length, never out of the clip;
    one in the middle still moves the full range both ways."""
    shift_max_ms = 400.0
    max_samples = int(shift_max_ms * SR / 1000)
    t = np.arange(S) / SR
    late, mid = np.zeros(S, np.float32), np.zeros(S, np.float32)
    late[12000:15000] = 0.5 * np.sin(2 * np.pi * 700 * t[:3000])  # ends 1000 samples early
    mid[6000:10000] = 0.5 * np.sin(2 * np.pi * 700 * t[:4000])
    batch = np.stack([late] * 64 + [mid] * 64)
    out = Augmenter(cfg(shift_prob=1, shift_max_ms=shift_max_ms, shift_keep_db=20.0)).audio(
        batch, rng(5))
    shifts = []
    for row, src in zip(out, batch):
        active = np.flatnonzero(np.abs(row) > 1e-3)
        shifts.append(active[0] - np.flatnonzero(np.abs(src) > 1e-3)[0])
        assert np.sum(row**2) == pytest.approx(np.sum(src**2), rel=1e-3)  # nothing cut off
    late_shifts, mid_shifts = np.array(shifts[:64]), np.array(shifts[64:])
    assert late_shifts.max() <= 1000 and late_shifts.min() < -max_samples // 2
    assert mid_shifts.min() < -max_samples // 2 and mid_shifts.max() > max_samples // 2
    assert np.abs(mid_shifts).max() <= max_samples


def test_speech_span_finds_the_loud_frames():
    from kws.data.augment import speech_span

    x = np.zeros((2, S), np.float32)
    x[0, 3200:6400] = 0.3
    first, last = speech_span(x, 20.0)
    assert (first[0], last[0]) == (3200, 6400) and (first[1], last[1]) == (0, 0)


def test_speech_span_floor_finds_the_word_in_a_noisy_recording():
    """A word 20 dB above the clip's own noise: within 30 dB of the peak the noise spans the
    whole clip; with floor_db the span is the word (0.4-0.7 s) again."""
    from kws.data.augment import speech_span

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.01, 16000).astype(np.float32)
    x[6400:11200] += 0.1 * np.sin(2 * np.pi * 300 * np.arange(4800) / 16000).astype(np.float32)
    first, last = speech_span(x[None], 30.0)
    assert (first[0], last[0]) == (0, 16000)
    first, last = speech_span(x[None], 30.0, floor_db=6.0)
    assert abs(int(first[0]) - 6400) <= 320 and abs(int(last[0]) - 11200) <= 320
