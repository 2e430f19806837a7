"""kws.data.audio: reading any reasonable WAV as 16 kHz mono float32, int16 conversion and
fitting to a clip length. Fixtures are written to tmp_path with soundfile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.data.audio import SAMPLE_RATE_HZ, fit_to_length, read_wav, to_int16
from kws.errors import AudioError, KwsError

SR = SAMPLE_RATE_HZ


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def peak_hz(x: np.ndarray, rate: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)])


# ---------------------------------------------------------------- formats


def test_pcm16_16k_mono_passes_through_exactly(tmp_path: Path) -> None:
    pcm = rng(1).integers(-32768, 32768, 4000).astype(np.int16)
    pcm[:3] = (-32768, 32767, 0)
    path = tmp_path / "a.wav"
    sf.write(path, pcm, SR, subtype="PCM_16")
    x = read_wav(path)
    assert x.dtype == np.float32
    assert x.shape == (4000,)
    np.testing.assert_array_equal(x, pcm.astype(np.float32) / 32768.0)
    # and back to int16 without any change
    np.testing.assert_array_equal(to_int16(x), pcm)


def test_pcm_u8_reads_with_8_bit_precision(tmp_path: Path) -> None:
    # multiples of 256 are exactly representable in unsigned 8-bit (value/256 + 128)
    pcm = (rng(2).integers(-128, 128, 2000) * 256).astype(np.int16)
    pcm[:2] = (-32768, 32512)
    path = tmp_path / "u8.wav"
    sf.write(path, pcm, SR, subtype="PCM_U8")
    assert sf.info(str(path)).subtype == "PCM_U8"
    x = read_wav(path)
    assert x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    np.testing.assert_allclose(x, pcm / 32768.0, atol=1 / 256)
    np.testing.assert_array_equal(x, (pcm / 32768.0).astype(np.float32))  # exact for these
    # arbitrary float content is kept within 8-bit quantisation
    y = tone(300, 0.25, SR, amp=0.9)
    sf.write(path, y, SR, subtype="PCM_U8")
    np.testing.assert_allclose(read_wav(path), y, atol=1.01 / 128)


def test_pcm_24_reads_with_24_bit_precision(tmp_path: Path) -> None:
    v = (rng(3).integers(-(2**23), 2**23, 3000) * 256).astype(np.int32)  # 24-bit values
    v[:2] = (-(2**31), (2**23 - 1) * 256)
    path = tmp_path / "p24.wav"
    sf.write(path, v, SR, subtype="PCM_24")
    x = read_wav(path)
    assert x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert x[0] == -1.0
    np.testing.assert_allclose(x, v / 2.0**31, rtol=0, atol=2.0**-23)


def test_pcm_32_reads_to_float_in_range(tmp_path: Path) -> None:
    v = rng(4).integers(-(2**31), 2**31, 3000, dtype=np.int64).astype(np.int32)
    v[:3] = (-(2**31), 2**31 - 1, 0)
    path = tmp_path / "p32.wav"
    sf.write(path, v, SR, subtype="PCM_32")
    x = read_wav(path)
    assert x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert x[0] == -1.0 and x[1] == pytest.approx(1.0, abs=1e-7) and x[2] == 0.0
    # float32 keeps ~24 bits of a 32-bit sample
    np.testing.assert_allclose(x, v / 2.0**31, rtol=0, atol=1e-7)


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_wav_reads_exactly(tmp_path: Path, subtype: str) -> None:
    y = rng(5).uniform(-1, 1, 3000).astype(np.float32)
    y[:2] = (-1.0, 1.0)
    path = tmp_path / "f.wav"
    sf.write(path, y, SR, subtype=subtype)
    x = read_wav(path)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, y)


def test_float_wav_above_full_scale_is_clipped(tmp_path: Path) -> None:
    y = np.array([2.0, -3.0, 0.5, 1.0000001, -1.5, 0.0, 1.0], dtype=np.float32)
    path = tmp_path / "loud.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    x = read_wav(path)
    np.testing.assert_array_equal(x, np.array([1, -1, 0.5, 1, -1, 0, 1], dtype=np.float32))
    assert x.dtype == np.float32


@pytest.mark.parametrize("rate", [44100, 8000])
def test_other_rates_are_resampled_to_16k(tmp_path: Path, rate: int) -> None:
    seconds = 1.25
    path = tmp_path / f"r{rate}.wav"
    sf.write(path, tone(440, seconds, rate), rate, subtype="PCM_16")
    x = read_wav(path)
    assert x.dtype == np.float32
    assert abs(len(x) - seconds * SR) <= 2
    assert peak_hz(x) == pytest.approx(440, abs=SR / len(x) + 0.5)
    # the level survives resampling (band-limited, no big gain change)
    mid = x[len(x) // 4 : -len(x) // 4]
    assert np.abs(mid).max() == pytest.approx(0.5, abs=0.01)
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_explicit_target_rate(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, tone(440, 1.0, SR), SR, subtype="PCM_16")
    x = read_wav(path, sample_rate_hz=8000)
    assert abs(len(x) - 8000) <= 1
    assert peak_hz(x, 8000) == pytest.approx(440, abs=1.5)


def test_stereo_is_downmixed_to_channel_mean(tmp_path: Path) -> None:
    r = rng(6)
    left = (r.integers(-16384, 16384, 2000) * 2).astype(np.int16)
    right = (r.integers(-16384, 16384, 2000) * 2).astype(np.int16)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="PCM_16")
    x = read_wav(path)
    assert x.shape == (2000,)
    expected = (left.astype(np.float64) + right) / 2 / 32768.0
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-7)


def test_stereo_opposite_channels_cancel(tmp_path: Path) -> None:
    y = tone(440, 0.2, SR)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([y, -y], axis=1), SR, subtype="FLOAT")
    assert np.abs(read_wav(path)).max() < 1e-6


def test_multichannel_and_resampled_together(tmp_path: Path) -> None:
    y = tone(440, 1.0, 44100)
    path = tmp_path / "st44.wav"
    sf.write(path, np.stack([y, 0.5 * y, 0 * y], axis=1), 44100, subtype="PCM_24")
    x = read_wav(path)
    assert abs(len(x) - SR) <= 2
    assert peak_hz(x) == pytest.approx(440, abs=1.5)
    assert np.abs(x[4000:-4000]).max() == pytest.approx(0.25, abs=0.01)


# ---------------------------------------------------------------- errors


def _write_good(path: Path) -> None:
    sf.write(path, tone(440, 0.1, SR), SR, subtype="PCM_16")


def _corrupt(path: Path) -> None:
    path.write_bytes(rng(7).integers(0, 256, 4000, dtype=np.uint8).tobytes())


def _truncated(path: Path) -> None:
    good = path.with_name("good_source.wav")
    _write_good(good)
    path.write_bytes(good.read_bytes()[:20])


def _cut_in_the_data(path: Path) -> None:
    """The first 100 bytes of a clip: a whole header, a data chunk that stops after 28
    samples (libsndfile alone would read those 28 samples without complaint)."""
    good = path.with_name("good_source.wav")
    _write_good(good)
    path.write_bytes(good.read_bytes()[:100])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _zero_frames(path: Path) -> None:
    sf.write(path, np.zeros(0, np.float32), SR, subtype="PCM_16")


def _with(value: float, subtype: str = "FLOAT"):
    def make(path: Path) -> None:
        y = np.zeros(200, np.float32)
        y[17] = value
        sf.write(path, y, SR, subtype=subtype)

    return make


ERROR_CASES = {
    # name: (maker, words of which at least one must appear in the reason)
    "corrupt": (_corrupt, ("unreadable", "format", "not recognised", "not recognized")),
    "truncated": (_truncated, ("unreadable", "malformed", "truncated")),
    "cut-in-the-data": (_cut_in_the_data, ("truncated: the data chunk declares 3200 bytes but "
                                           "the file holds 56",)),
    "empty-file": (_empty, ("unreadable", "empty", "0 bytes", "format")),
    "zero-frames": (_zero_frames, ("empty", "0 samples", "no samples")),
    "nan": (_with(np.nan), ("nan",)),
    "inf": (_with(np.inf), ("inf",)),
    "minus-inf-double": (_with(-np.inf, "DOUBLE"), ("inf",)),
}


@pytest.mark.parametrize("case", list(ERROR_CASES), ids=list(ERROR_CASES))
def test_bad_files_raise_one_line_audio_error(tmp_path: Path, case: str) -> None:
    maker, words = ERROR_CASES[case]
    path = tmp_path / f"{case}.wav"
    maker(path)
    with pytest.raises(AudioError) as info:
        read_wav(path)
    err = info.value
    msg = str(err)
    assert isinstance(err, KwsError)
    assert msg.startswith(f"{path}: "), msg
    assert "\n" not in msg and "\r" not in msg
    assert err.path == str(path)
    reason = msg[len(f"{path}: "):]
    assert reason.strip() and reason == err.reason
    assert any(w in reason.lower() for w in words), reason


def test_accepts_str_path(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    _write_good(path)
    assert len(read_wav(str(path))) == 1600
    bad = tmp_path / "bad.wav"
    _corrupt(bad)
    with pytest.raises(AudioError, match=r"bad\.wav: "):
        read_wav(str(bad))


def test_missing_file_raises_one_line_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.wav"
    with pytest.raises(AudioError) as info:
        read_wav(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ")
    assert "\n" not in msg


def test_missing_file_message_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "missing.wav"
    with pytest.raises(AudioError) as info:
        read_wav(path)
    reason = info.value.reason.lower()
    assert any(w in reason for w in ("no such file", "not found", "does not exist", "missing",
                                      "cannot open")), reason


# ---------------------------------------------------------------- to_int16


def test_to_int16_full_scale_edges() -> None:
    out = to_int16(np.array([1.0, -1.0, 0.0, 2.0, -2.0, 1e9, -1e9]))
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, [32767, -32768, 0, 32767, -32768, 32767, -32768])


def test_to_int16_rounds_to_nearest() -> None:
    q = 1 / 32768
    x = np.array([1e-6, -1e-6, 0.4 * q, -0.4 * q, 0.6 * q, -0.6 * q, 1.4 * q, 1.6 * q,
                  -1.6 * q, 100.49 * q, 100.51 * q, 32766.6 * q, 32767.4 * q, -32767.6 * q])
    np.testing.assert_array_equal(
        to_int16(x), [0, 0, 0, 0, 1, -1, 1, 2, -2, 100, 101, 32767, 32767, -32768]
    )


def test_to_int16_accepts_float32_and_lists() -> None:
    np.testing.assert_array_equal(to_int16(np.float32([0.5, -0.5])), [16384, -16384])
    np.testing.assert_array_equal(to_int16([0.25]), [8192])


def test_to_int16_roundtrips_int16_grid() -> None:
    pcm = np.arange(-32768, 32768, 7, dtype=np.int16)
    np.testing.assert_array_equal(to_int16(pcm.astype(np.float32) / 32768), pcm)


# ---------------------------------------------------------------- fit_to_length


def test_fit_to_length_pads_zeros_at_end() -> None:
    x = np.arange(1, 11, dtype=np.float32)
    y = fit_to_length(x, 16)
    assert y.dtype == np.float32 and y.shape == (16,)
    np.testing.assert_array_equal(y[:10], x)
    np.testing.assert_array_equal(y[10:], 0)


def test_fit_to_length_keeps_int16_dtype_and_exact_length() -> None:
    x = np.ones(5, np.int16)
    assert fit_to_length(x, 8).dtype == np.int16
    np.testing.assert_array_equal(fit_to_length(x, 5), x)


@pytest.mark.parametrize("burst_at", [0, 3000, 12345, 40000 - 2000])
def test_fit_to_length_keeps_loudest_window(burst_at: int) -> None:
    n = 16000
    x = (0.01 * rng(8).standard_normal(40000)).astype(np.float32)
    # never zero, so its first and last samples count too
    burst = (0.5 + 0.3 * np.sin(2 * np.pi * 300 * np.arange(2000) / SR)).astype(np.float32)
    x[burst_at : burst_at + 2000] += burst
    y = fit_to_length(x, n)
    assert y.shape == (n,) and y.dtype == np.float32
    # the whole burst is inside the kept window
    assert np.sum(y.astype(np.float64) ** 2) >= np.sum(burst.astype(np.float64) ** 2)
    starts = [i for i in range(len(x) - n + 1)
              if x[i] == y[0] and np.array_equal(x[i : i + n], y)]
    assert len(starts) == 1
    start = starts[0]
    assert start <= burst_at and burst_at + 2000 <= start + n


def test_fit_to_length_window_is_the_argmax_of_energy() -> None:
    n = 100
    x = np.zeros(1000, np.float32)
    x[700:720] = 1.0  # only one window position range contains it all
    x[100] = 0.5
    y = fit_to_length(x, n)
    assert len(y) == n
    assert np.sum(y**2) == pytest.approx(20.0)
