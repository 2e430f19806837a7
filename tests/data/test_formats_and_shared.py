"""kws.data.dataset: FLAC next to WAV, speakers of files without speaker ids, the rule that
picks the official split or a re-split, the shared data folders, and `kws data` on them.
Fixtures are tiny tone files in tmp_path; tests marked real_data read ../shared/data and skip
when it is absent."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.config import DataConfig
from kws.data.dataset import (
    AUTO_SALT,
    SHARED_FOLDERS,
    SPLITS,
    default_data_roots,
    index_folders,
    load_audio,
    shared_data,
    shared_speech_commands,
    split_of,
)

SR = 16000
CFG = DataConfig(keywords=("yes", "no"))


def speakers_in(split: str, count: int, start: int = 0) -> list[str]:
    """`count` hex speaker ids whose official (salt "") split is `split`."""
    out, i = [], start
    while len(out) < count:
        spk = hashlib.md5(f"fmt{i}".encode()).hexdigest()[:8]
        if split_of(spk, 10, 10) == split:
            out.append(spk)
        i += 1
    return out


def tone(seconds: float = 0.8, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def write(path: Path, x: np.ndarray, fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, SR, subtype="PCM_16", format=fmt)
    return path


def layout(root: Path, per_word: dict[str, list[str]], ext: str = "wav") -> Path:
    fmt = {"wav": "WAV", "flac": "FLAC"}[ext]
    for w_i, (word, speakers) in enumerate(per_word.items()):
        for s_i, spk in enumerate(speakers):
            write(root / word / f"{spk}_nohash_0.{ext}", tone(0.5, 300 + 50 * w_i + s_i), fmt)
    write(root / "_background_noise_" / f"hiss.{ext}", tone(5.0, 60, seed=1), fmt)
    return root


MIX = speakers_in("train", 14) + speakers_in("validation", 3) + speakers_in("test", 3)


# ---------------------------------------------------------------- FLAC and WAV


def test_flac_and_wav_give_the_same_samples(tmp_path: Path) -> None:
    # the same 16-bit samples in both files, as a FLAC copy of a Speech Commands WAV holds
    x = np.rint(tone(0.9, 523.0) * 32767).astype(np.int16)
    spk = MIX[0]
    write(tmp_path / "w" / "yes" / f"{spk}_nohash_0.wav", x)
    write(tmp_path / "w" / "no" / f"{spk}_nohash_1.wav", x[::-1].copy())
    write(tmp_path / "f" / "yes" / f"{spk}_nohash_0.flac", x, "FLAC")
    write(tmp_path / "f" / "no" / f"{spk}_nohash_1.flac", x[::-1].copy(), "FLAC")
    cfg = CFG.model_copy(update={"split_salt": ""})
    wav, flac = index_folders([tmp_path / "w"], cfg), index_folders([tmp_path / "f"], cfg)
    assert [c.path.suffix for c in flac.clips] == [".flac", ".flac"]
    assert [(c.label, c.split, c.speaker) for c in wav.clips] == \
        [(c.label, c.split, c.speaker) for c in flac.clips]
    a, b = load_audio(wav.clips, cfg), load_audio(flac.clips, cfg)
    assert a.problems == b.problems == []
    assert a.audio.shape == (2, SR) and np.array_equal(a.audio, b.audio)
    assert np.abs(a.audio).max() > 5000  # real samples, not silence


def test_a_flac_only_folder_indexes_with_flac_noise(tmp_path: Path) -> None:
    root = layout(tmp_path / "flac", {"yes": MIX, "no": MIX, "bird": MIX[:5]}, ext="flac")
    d = index_folders([root], CFG)
    assert Counter(c.label for c in d.clips if c.path) == {"yes": 20, "no": 20, "_unknown_": 5}
    assert [p.name for p in d.noise_files] == ["hiss.flac"]
    assert any(c.label == "_silence_" for c in d.clips)  # cut from the FLAC noise
    got = load_audio(d.clips, CFG)
    assert got.problems == [] and len(got.clips) == len(d.clips)


def test_a_broken_flac_is_one_line_and_skipped(tmp_path: Path) -> None:
    root = layout(tmp_path / "flac", {"yes": MIX, "no": MIX}, ext="flac")
    bad = root / "yes" / "deadbeef_nohash_0.flac"
    bad.write_bytes(b"fLaC\x00\x00garbage")
    d = index_folders([root], CFG)
    got = load_audio(d.clips, CFG)
    assert len(got.problems) == 1 and str(bad) in got.problems[0]
    assert "\n" not in got.problems[0]


# ---------------------------------------------------------------- speakers without ids


def test_colliding_stems_are_distinct_speakers(tmp_path: Path) -> None:
    for root in ("a", "b"):
        for word in ("yes", "no"):
            write(tmp_path / root / word / "0001.flac", tone(0.5, 400), "FLAC")
            write(tmp_path / root / word / "0002.wav", tone(0.5, 600))
    d = index_folders([tmp_path / "a", tmp_path / "b"], CFG.model_copy(update={"split_salt": ""}))
    speakers = [c.speaker for c in d.clips if c.path is not None]
    assert len(speakers) == 8 and len(set(speakers)) == 8
    assert "a/yes/0001.flac" in speakers and "b/no/0002.wav" in speakers


# ---------------------------------------------------------------- official split or re-split


def test_a_label_starved_by_the_official_rule_is_resplit_with_a_note(tmp_path: Path) -> None:
    # "no" is mostly official test speakers: 2 training clips of 12 (17% < 40%)
    starved = speakers_in("train", 2, start=5000) + speakers_in("test", 10, start=5000)
    root = layout(tmp_path / "d", {"yes": MIX, "no": starved})
    d = index_folders([root], CFG)
    assert d.config.split_salt == AUTO_SALT
    assert len(d.notes) == 1 and "no 2 of 12" in d.notes[0] and AUTO_SALT in d.notes[0]
    assert "yes" not in d.notes[0].split("to ")[1]
    for c in d.clips:
        if c.path is not None:
            assert c.split == split_of(c.speaker, 10, 10, AUTO_SALT)
    per = defaultdict(set)
    for c in d.clips:
        if c.path is not None:
            per[c.speaker].add(c.split)
    assert all(len(v) == 1 for v in per.values())


def test_a_starved_unknown_label_also_counts(tmp_path: Path) -> None:
    root = layout(tmp_path / "d", {"yes": MIX, "no": MIX, "bird": speakers_in("test", 8)})
    d = index_folders([root], CFG)
    assert d.config.split_salt == AUTO_SALT
    assert "_unknown_ 0 of 8" in d.notes[0]


def test_the_official_rule_is_kept_when_every_label_gets_its_share(tmp_path: Path) -> None:
    # 14 of 20 speakers train (70%, over half of 80%) for both keywords and _unknown_
    root = layout(tmp_path / "d", {"yes": MIX, "no": MIX, "bird": MIX})
    d = index_folders([root], CFG)
    assert d.config.split_salt == "" and d.notes == []
    for c in d.clips:
        if c.path is not None:
            assert c.split == split_of(c.speaker, 10, 10)


def test_an_explicit_salt_is_never_overridden(tmp_path: Path) -> None:
    starved = speakers_in("train", 2, start=5000) + speakers_in("test", 10, start=5000)
    root = layout(tmp_path / "d", {"yes": MIX, "no": starved})
    d = index_folders([root], CFG.model_copy(update={"split_salt": ""}))
    assert d.config.split_salt == "" and d.notes == []


# ---------------------------------------------------------------- the shared data lookup


def test_kws_shared_data_may_name_the_data_folder(tmp_path: Path, monkeypatch) -> None:
    layout(tmp_path / "data" / "speech_commands", {"yes": MIX[:3], "no": MIX[:3]})
    layout(tmp_path / "data" / "negatives", {"zero": MIX[:3]}, ext="flac")
    monkeypatch.setenv("KWS_SHARED_DATA", str(tmp_path / "data"))
    assert shared_data() == [tmp_path / "data" / "speech_commands", tmp_path / "data" / "negatives"]
    assert shared_speech_commands() == tmp_path / "data" / "speech_commands"
    assert default_data_roots() == (shared_data(), "shared")
    assert default_data_roots([tmp_path]) == ([tmp_path], "given")


def test_kws_shared_data_may_name_one_speech_commands_folder(tmp_path: Path, monkeypatch) -> None:
    sc = layout(tmp_path / "my_copy", {"yes": MIX[:3], "no": MIX[:3]})
    monkeypatch.setenv("KWS_SHARED_DATA", str(sc))
    assert shared_data() == [sc] and shared_speech_commands() == sc


def test_kws_shared_data_missing_path_means_none(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KWS_SHARED_DATA", str(tmp_path / "nope"))
    assert shared_data() == [] and shared_speech_commands() is None
    assert default_data_roots() == ([], "none")


def kws_cli(*args: str, env_shared: str | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if env_shared is not None:
        env["KWS_SHARED_DATA"] = env_shared
    return subprocess.run([sys.executable, "-m", "kws", *args], capture_output=True, text=True,
                          env=env)


def test_kws_data_without_data_uses_the_shared_folders(tmp_path: Path) -> None:
    layout(tmp_path / "data" / "speech_commands", {"yes": MIX, "no": MIX})
    layout(tmp_path / "data" / "negatives", {"zero": MIX}, ext="flac")
    proc = kws_cli("data", "--keywords", "yes,no", "--json", env_shared=str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # one JSON object
    assert summary["roots"] == [str(tmp_path / "data" / n) for n in ("speech_commands", "negatives")]
    assert summary["counts"]["yes"] == {"train": 14, "validation": 3, "test": 3}
    assert sum(summary["counts"]["_unknown_"].values()) == 20
    assert set(summary["speakers"]) == set(SPLITS) and summary["seconds"] >= 0
    table = kws_cli("data", "--keywords", "yes,no", env_shared=str(tmp_path / "data"))
    assert table.returncode == 0, table.stderr
    assert "validation" in table.stdout and "total" in table.stdout


# ---------------------------------------------------------------- the real shared data


def real_roots() -> list[Path]:
    roots = shared_data()
    if [r.name for r in roots] != list(SHARED_FOLDERS):
        pytest.skip("the shared data (../shared/data/{speech_commands,speech_commands_extra,"
                    "negatives}) is not all present (set KWS_SHARED_DATA to its folder)")
    return roots


@pytest.mark.real_data
def test_the_default_data_gives_every_label_every_split() -> None:
    roots = real_roots()
    assert default_data_roots() == (roots, "shared")
    d = index_folders(roots, DataConfig())
    assert len(d.clips) == 2440 + 7773 + 2400
    assert len(d.noise_files) == 6
    # the official rule would leave on/off with ~14 training clips each: re-split, said why
    assert d.config.split_salt == AUTO_SALT
    assert len(d.notes) == 1 and "on " in d.notes[0] and "off " in d.notes[0]
    for label, per in d.counts().items():
        total = sum(per.values())
        assert per["train"] >= 0.6 * total, (label, per)
        assert per["validation"] > 0 and per["test"] > 0, (label, per)
    per_speaker = defaultdict(set)
    for c in d.clips:
        if c.label != "_silence_":
            per_speaker[c.speaker].add(c.split)
    assert all(len(v) == 1 for v in per_speaker.values())
