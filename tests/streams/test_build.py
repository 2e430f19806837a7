"""Stream construction on a tiny synthetic data set (tones, hiss, marked noise regions)."""

import numpy as np
import pytest
import soundfile as sf

from kws.config import DataConfig
from kws.data.dataset import index_folders, noise_region
from kws.streams.build import (
    NEGATIVE, StreamConfig, SuiteSpec, active_rms, build_negative_stream, build_stream,
    split_word_clips, stream_suite,
)

SR = 16000
WORDS = ("yes", "no")
CONFIG = DataConfig(keywords=WORDS, validation_percent=30, testing_percent=30, split_salt="t")
MARK_HZ = {"validation": 1000.0, "test": 3000.0}
NOISE_S = 40


def _tone_data(root):
    """Per word a tone burst in its own band (a pitch per speaker), hiss as unknown words, and
    one noise recording whose validation part is a 1 kHz tone and test part a 3 kHz tone (the
    training part white noise), so the background's spectrum says where it was cut from."""
    rng = np.random.default_rng(0)
    t = np.arange(8000) / SR
    for w, word in enumerate(WORDS):
        (root / word).mkdir(parents=True)
        for s in range(12):
            for k in range(2):
                f0 = (400 if w == 0 else 2200) * (1 + 0.03 * s)
                x = 0.002 * rng.standard_normal(SR)
                start = int(rng.integers(0, 8000))
                x[start:start + 8000] += 0.4 * np.sin(2 * np.pi * f0 * t) * np.hanning(8000)
                sf.write(root / word / f"{s:04x}{w:04x}_nohash_{k}.wav", x, SR, subtype="PCM_16")
    (root / "_unknown_").mkdir()
    for s in range(12):
        x = 0.2 * rng.standard_normal(SR) * np.hanning(SR)
        sf.write(root / "_unknown_" / f"hiss_{s:04x}ffff_nohash_0.wav", x, SR, subtype="PCM_16")
    (root / "_background_noise_").mkdir()
    n = NOISE_S * SR
    noise = 0.1 * rng.standard_normal(n)
    for split, hz in MARK_HZ.items():
        a, b = noise_region(n, split, CONFIG)
        noise[a:b] = 0.1 * np.sin(2 * np.pi * hz * np.arange(b - a) / SR)
    sf.write(root / "_background_noise_" / "marked.wav", noise, SR, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = _tone_data(tmp_path_factory.mktemp("streams") / "data")
    ds = index_folders([root], CONFIG)
    for split in ("validation", "test"):
        kw, unk = split_word_clips(ds, split)
        assert kw and unk, f"the synthetic {split} split needs keyword and unknown clips"
    return ds


def test_events_inside_audio_disjoint_and_from_the_split(dataset):
    cfg = StreamConfig()
    s = build_stream(dataset, "validation", 120, seed=3, snr_db=10, config=cfg)
    assert s.audio.dtype == np.int16 and len(s.audio) == 120 * SR
    assert len(s.events) > 10 and s.fillers
    words = sorted(s.events + s.fillers, key=lambda e: e[1])
    for label, start, end in words:
        assert 0 <= start < end <= s.seconds - cfg.tail_s
        assert end - start <= 1.0 + 1e-9 or label == "_unknown_"
    for (_, s0, e0), (_, s1, _) in zip(words, words[1:]):
        assert e0 < s1, "words overlap"
        assert s1 - s0 >= cfg.gap_s[0] - 1e-3
    assert {e[0] for e in s.events} <= set(WORDS)
    split_paths = {str(c.path) for c in dataset.subset("validation") if c.path is not None}
    assert s.clips and s.clips <= split_paths


def test_deterministic_per_seed(dataset):
    a = build_stream(dataset, "test", 60, seed=7, snr_db=10)
    b = build_stream(dataset, "test", 60, seed=7, snr_db=10)
    c = build_stream(dataset, "test", 60, seed=8, snr_db=10)
    assert np.array_equal(a.audio, b.audio) and a.events == b.events
    assert not np.array_equal(a.audio, c.audio)


@pytest.mark.parametrize("snr", [20.0, 5.0])
def test_snr_is_what_was_asked(dataset, snr):
    cfg = StreamConfig(level_jitter_db=0.0)
    s = build_stream(dataset, "validation", 90, seed=1, snr_db=snr, config=cfg, keep_tracks=True)
    noise_db = 10 * np.log10(np.mean(s.background ** 2))
    levels = []
    for _, start, end in s.events + s.fillers:
        a, b = int(round(start * SR)), int(round(end * SR))
        levels.append(20 * np.log10(active_rms(s.speech[a:b])))
    assert np.allclose(levels, cfg.speech_dbfs, atol=0.2)
    assert np.mean(levels) - noise_db == pytest.approx(snr, abs=0.5)
    # the int16 audio is that mix
    mix = np.clip(np.rint((s.speech + s.background) * 32768), -32768, 32767)
    assert np.array_equal(s.audio, mix.astype(np.int16))


@pytest.mark.parametrize("split", ["validation", "test"])
def test_background_comes_from_the_splits_noise_region(dataset, split):
    quiet = StreamConfig(keyword_share=0.0, unknown_share=0.0)
    s = build_negative_stream(dataset, split, 30, seed=2, snr_db=0, config=quiet,
                              keep_tracks=True)
    n = NOISE_S * SR
    a, b = noise_region(n, split, CONFIG)
    assert s.noise_segments and all(a <= lo < hi <= b for _, lo, hi in s.noise_segments)
    spectrum = np.abs(np.fft.rfft(s.background)) ** 2
    freqs = np.fft.rfftfreq(len(s.background), 1 / SR)
    near = np.abs(freqs - MARK_HZ[split]) < 50
    assert spectrum[near].sum() / spectrum.sum() > 0.95  # the marker tone, not training noise


def test_negative_stream_has_no_keyword(dataset):
    s = build_negative_stream(dataset, "validation", 120, seed=4, snr_db=10)
    assert s.events == [] and s.kind == "negative"
    assert len(s.fillers) > 10 and {f[0] for f in s.fillers} == {"_unknown_"}
    unknown = {str(c.path) for c in split_word_clips(dataset, "validation")[1]}
    assert s.clips <= unknown
    with pytest.raises(Exception):
        build_negative_stream(dataset, "validation", 10, 0, 10, config=StreamConfig())
    assert NEGATIVE.keyword_share == 0


def test_suite_covers_snrs_and_negative_minutes(dataset):
    spec = SuiteSpec(snrs_db=(20.0, 5.0), keyword_seconds=30, negative_minutes=2.5,
                     chunk_minutes=1.0)
    streams = list(stream_suite(dataset, "test", spec))
    kinds = [(s.kind, s.snr_db) for s in streams]
    assert kinds[:2] == [("keywords", 20.0), ("keywords", 5.0)]
    neg = [s for s in streams if s.kind == "negative"]
    assert sum(s.seconds for s in neg) == pytest.approx(150)
    assert len({s.seed for s in streams}) == len(streams)
