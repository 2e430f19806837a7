"""Synthetic Speech Commands clips: format, layout, naming, determinism and failures."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.config import KEYWORDS, NOISE_FOLDER, UNKNOWN_LABEL
from kws.data import synth
from kws.errors import KwsError

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (sudo apt-get install espeak-ng)",
)

WORDS = ("yes", "no")
PER_WORD = 5
HEX_SPEAKER = r"[0-9a-f]{8}"


def _run(root: Path, seed: int, workers: int | None = None, progress=None) -> synth.SynthReport:
    return synth.synthesize(
        root, words=WORDS, per_word=PER_WORD, seed=seed, workers=workers, progress=progress
    )


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.wav"))
    }


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """seed 0 with the default thread pool; also records the progress calls."""
    calls = []
    root = tmp_path_factory.mktemp("synth_a")
    report = _run(root, seed=0, progress=lambda done, total: calls.append((done, total)))
    return root, report, calls


@pytest.fixture(scope="module")
def run_b(tmp_path_factory):
    """seed 0 again, one worker: a different completion order must not change any byte."""
    root = tmp_path_factory.mktemp("synth_b")
    return root, _run(root, seed=0, workers=1)


@pytest.fixture(scope="module")
def run_c(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_c")
    return root, _run(root, seed=1)


def _clips(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.wav") if p.parent.name != NOISE_FOLDER)


@needs_espeak
def test_clip_format(run_a):
    root, report, _ = run_a
    clips = _clips(root)
    assert len(clips) == report.clips == PER_WORD * (len(WORDS) + 1)
    for path in clips:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (
            16000, 1, "PCM_16", 16000
        ), path
        x, _ = sf.read(str(path), dtype="int16")
        peak_dbfs = 20 * np.log10(np.abs(x.astype(np.int32)).max() / 32768)
        assert -30.5 <= peak_dbfs <= -0.9, (path, peak_dbfs)
        assert np.count_nonzero(x) > 1600, f"{path}: nearly silent"


@needs_espeak
def test_layout_and_names(run_a):
    root, report, _ = run_a
    folders = {p.name for p in root.iterdir() if p.is_dir()}
    assert folders == {*WORDS, UNKNOWN_LABEL, NOISE_FOLDER}
    assert {p.name for p in root.iterdir() if p.is_file()} == {synth.RECORD_NAME}
    for word in WORDS:
        names = [p.name for p in (root / word).iterdir()]
        assert len(names) == PER_WORD
        for name in names:
            assert re.fullmatch(rf"{HEX_SPEAKER}_nohash_\d+\.wav", name), name
    unknown = [p.name for p in (root / UNKNOWN_LABEL).iterdir()]
    assert len(unknown) == PER_WORD
    for name in unknown:
        match = re.fullmatch(rf"([a-z' -]+)_({HEX_SPEAKER})_nohash_\d+\.wav", name)
        assert match, name
        assert match.group(1) in synth.UNKNOWN_WORDS and match.group(1) not in WORDS
    assert report.per_label == {"yes": PER_WORD, "no": PER_WORD, UNKNOWN_LABEL: PER_WORD}
    assert sum(report.engines.values()) == report.clips
    assert report.out == root and report.seconds > 0


@needs_espeak
def test_dataset_reads_the_synthetic_speaker(run_a):
    """The loader's speaker parser must find the hex id in both file name forms."""
    from kws.data.dataset import speaker_of

    root, _, _ = run_a
    for path in _clips(root):
        assert re.fullmatch(HEX_SPEAKER, speaker_of(path)), path


@needs_espeak
def test_same_seed_same_bytes_whatever_the_worker_count(run_a, run_b):
    a, b = _digests(run_a[0]), _digests(run_b[0])
    assert len(a) == PER_WORD * (len(WORDS) + 1) + len(synth.NOISE_COLORS)
    assert a == b


@needs_espeak
def test_other_seed_other_files(run_a, run_c):
    a, c = _digests(run_a[0]), _digests(run_c[0])
    assert not set(a.values()) & set(c.values()), "a file is identical across seeds"


@needs_espeak
def test_noise_files(run_a):
    folder = run_a[0] / NOISE_FOLDER
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(f"{c}_noise.wav" for c in synth.NOISE_COLORS)
    for name in names:
        x, rate = sf.read(str(folder / name), dtype="float32")
        assert rate == 16000 and x.ndim == 1 and len(x) >= 10 * 16000
        assert 0.01 < np.sqrt(np.mean(x**2)) and np.abs(x).max() < 1.0


@needs_espeak
def test_progress_counts_every_clip(run_a):
    _, report, calls = run_a
    assert calls == [(i, report.clips) for i in range(1, report.clips + 1)]


@needs_espeak
def test_several_engines_are_used(run_a):
    engines = synth.available_voices()
    if len(engines) < 2:
        pytest.skip(f"only {', '.join(engines)} installed")
    assert len(run_a[1].engines) > 1, run_a[1].engines


def test_unknown_words_exclude_keywords():
    assert not set(synth.UNKNOWN_WORDS) & set(KEYWORDS)
    assert synth._unknown_vocabulary(("dog", "yes"), None) == tuple(
        w for w in synth.UNKNOWN_WORDS if w != "dog"
    )
    assert synth._unknown_vocabulary(("yes",), ["cat", "yes", "bed"]) == ("cat", "bed")


@needs_espeak
def test_voice_discovery():
    voices = synth.available_voices()
    espeak = voices["espeak-ng"]
    assert all(v.name.startswith("gmw/") for v in espeak)
    assert list(espeak) == sorted(espeak, key=lambda v: (v.name, v.variant))
    assert len({v.variant for v in espeak}) > 10  # base voice plus variants (m1.., f1.., ...)
    for engine_voices in voices.values():
        for v in engine_voices:
            assert re.fullmatch(HEX_SPEAKER, v.speaker)


def test_speaker_ids():
    slt = synth.Voice("festival", "cmu_us_slt_arctic_hts")
    assert synth.Voice("flite", "slt").speaker == slt.speaker  # one person, one split
    ids = {synth.Voice("espeak-ng", "gmw/en", var).speaker for var in ("", "m1", "f2", "klatt")}
    assert len(ids) == 4


@needs_espeak
def test_long_utterance_is_compressed_not_cut(tmp_path):
    voice = synth.Voice("espeak-ng", "gmw/en-US")
    plan = synth.ClipPlan(
        label="long", index=0, word="supercalifragilisticexpialidocious", voice=voice,
        tempo=0.8, pitch=0.0, amplitude=100, shift=0.85, place=0.5, peak_dbfs=-3.0,
    )
    out = tmp_path / "long.wav"
    synth._make_clip(plan, out, tmp_path)
    x, rate = sf.read(str(out), dtype="int16")
    assert rate == 16000 and len(x) == 16000
    sounding = np.flatnonzero(x)
    assert sounding[-1] - sounding[0] < synth.MAX_WORD_SAMPLES


def test_fit_word_keeps_short_and_shrinks_long():
    short = np.ones(1000, dtype=np.float32)
    assert synth._fit_word(short) is short
    t = np.arange(24000) / 16000
    long = np.sin(2 * np.pi * 220 * t).astype(np.float32)
    assert len(synth._fit_word(long)) == synth.MAX_WORD_SAMPLES


@needs_espeak
def test_tts_failure_names_engine_voice_and_word(tmp_path):
    bad = {"espeak-ng": (synth.Voice("espeak-ng", "gmw/nope"),)}
    plan = synth._plan_clip("yes", 0, "yes", 0, bad)
    with pytest.raises(KwsError, match=r"espeak-ng voice gmw/nope failed on word 'yes'"):
        synth._make_clip(plan, tmp_path / "x.wav", tmp_path)


@pytest.mark.skipif(shutil.which("text2wave") is None, reason="festival is not installed")
def test_festival_failure_is_not_silent(tmp_path):
    """text2wave exits 0 after a Scheme error; the missing file must still be an error."""
    plan = synth._plan_clip("no", 0, "no", 0, {"festival": (synth.Voice("festival", "nope"),)})
    with pytest.raises(KwsError, match=r"festival voice nope failed on word 'no'"):
        synth._make_clip(plan, tmp_path / "x.wav", tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_word": 0}, "per_word"),
        ({"words": ["Yes"]}, "not a lowercase word"),
        ({"words": ["on_off"]}, "not a lowercase word"),
        ({"words": "yes"}, "list of words"),
        ({"words": ["yes", "yes"]}, "unique"),
        ({"words": []}, "at least one"),
        ({"words": ["cat"], "unknown_words": ["cat"]}, "no word is left"),
        ({"workers": 0}, "workers"),
        ({"per_word": 0, "unknown_clips": 0}, "nothing to synthesize"),
        ({"per_word": -1}, "non-negative"),
        ({"unknown_clips": -2}, "non-negative"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(KwsError, match=message):
        synth.synthesize(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(KwsError, match="not a folder"):
        synth.synthesize(tmp_path / "file", per_word=1)


def test_no_engine_installed_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(KwsError, match="apt-get install"):
        synth.synthesize(tmp_path / "out", per_word=1)


@needs_espeak
def test_rerun_replaces_its_own_clips_and_keeps_user_files(tmp_path):
    out = tmp_path / "s"
    synth.synthesize(out, words=["yes", "no"], per_word=4, seed=1)
    (out / "yes" / "my_recording.wav").write_bytes(b"user data")
    synth.synthesize(out, words=["yes"], per_word=2, seed=2)
    wavs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav") if NOISE_FOLDER not in p.parts)
    assert len([w for w in wavs if w.startswith("yes/") and "nohash" in w]) == 2
    assert not any(w.startswith("no/") for w in wavs)
    assert (out / "yes" / "my_recording.wav").read_bytes() == b"user data"


@needs_espeak
def test_identical_rerun_reuses_the_clips(tmp_path):
    out = tmp_path / "s"
    first = synth.synthesize(out, words=["yes"], per_word=3, seed=4)
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    again = synth.synthesize(out, words=["yes"], per_word=3, seed=4)
    assert not first.reused and again.reused
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == stamp
    other = synth.synthesize(out, words=["yes"], per_word=3, seed=5)
    assert not other.reused


def test_wide_vocabulary_has_no_keyword_nor_a_word_a_keyword_starts():
    from kws.config import KEYWORDS

    assert len(set(synth.WIDE_UNKNOWN_WORDS)) == len(synth.WIDE_UNKNOWN_WORDS) >= 200
    for word in synth.WIDE_UNKNOWN_WORDS:
        assert word not in KEYWORDS
        assert not any(word.startswith(k) and len(word) > len(k) + 1 for k in ("yes", "stop",
                                                                             "left", "right", "down"))


@needs_espeak
def test_unknown_only_folder_cycles_through_the_vocabulary(tmp_path):
    out = tmp_path / "unk"
    report = synth.synthesize(out, words=["yes"], per_word=0, unknown_clips=6, seed=3,
                              unknown_words=["cat", "lamp", "yes"])
    assert report.per_label == {"_unknown_": 6}
    names = sorted(p.name.split("_")[0] for p in (out / "_unknown_").glob("*.wav"))
    assert names == ["cat"] * 3 + ["lamp"] * 3  # "yes" is a keyword here: dropped
    assert not (out / "yes").exists()
