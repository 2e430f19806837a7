"""kws.data.dataset: Speech Commands folders -> labelled, speaker-disjoint clips; silence cut
from background noise; audio loading that skips bad files. Fixture folders are tiny tone
WAVs written to tmp_path; one test (marker real_data) reads the shared Speech Commands copy."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.config import DataConfig
from kws.data.audio import read_wav
from kws.data.dataset import (
    AUTO_SALT,
    SPLITS,
    Clip,
    clip_identity,
    index_folders,
    load_audio,
    shared_speech_commands,
    speaker_of,
    split_of,
)
from kws.errors import KwsError

SR = 16000
CFG = DataConfig(keywords=("yes", "no"))


# ---------------------------------------------------------------- reference split rule


def official_split(speaker: str, validation_percent: float, testing_percent: float) -> str:
    """The rule as the Speech Commands README states it, written out independently:
    sha1 of the speaker id (the name before `_nohash_`), as an int, modulo 2**27, scaled
    by 100 / (2**27 - 1) to a percentage; below validation% -> validation, below
    validation% + testing% -> testing, else training."""
    max_per_class = 2**27 - 1
    h = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    pct = (h % (max_per_class + 1)) * (100.0 / max_per_class)
    if pct < validation_percent:
        return "validation"
    if pct < testing_percent + validation_percent:
        return "test"
    return "train"


def hex_speakers(count: int, want: str, start: int = 0, vp: float = 10, tp: float = 10):
    """`count` 8-hex-digit speaker ids whose official split is `want`."""
    out = []
    i = start
    while len(out) < count:
        spk = hashlib.md5(f"spk{i}".encode()).hexdigest()[:8]
        if official_split(spk, vp, tp) == want:
            out.append(spk)
        i += 1
    return out


# ---------------------------------------------------------------- fixture folders


def write_tone(path: Path, seconds: float, freq: float, amp: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, amp * np.sin(2 * np.pi * freq * t), SR, subtype="PCM_16")


def write_noise(path: Path, seconds: float, amp: float, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.clip(amp * np.random.default_rng(seed).standard_normal(int(seconds * SR)), -1, 1)
    sf.write(path, x, SR, subtype="PCM_16")


# 20 speakers with a known official mix: 14 train, 3 validation, 3 test
SPEAKERS = hex_speakers(14, "train") + hex_speakers(3, "validation") + hex_speakers(3, "test")


def make_root(root: Path, speakers=SPEAKERS, clips_per_speaker: int = 2, noise: bool = True,
              extra_words: bool = True, seed: int = 0) -> Path:
    r = np.random.default_rng(seed)
    for w, base in (("yes", 300.0), ("no", 500.0)):
        for spk in speakers:
            for n in range(clips_per_speaker):
                write_tone(root / w / f"{spk}_nohash_{n}.wav", r.uniform(0.5, 1.0),
                           base + 10 * n)
    if extra_words:
        for spk in speakers[:6]:
            write_tone(root / "_unknown_" / f"cat_{spk}_nohash_0.wav", 0.6, 700)
        for spk in speakers[6:10]:
            write_tone(root / "bird" / f"{spk}_nohash_0.wav", 0.7, 800)
    if noise:
        write_noise(root / "_background_noise_" / "hiss.wav", 5.0, 0.1, seed=1)
        write_noise(root / "_background_noise_" / "rumble.wav", 5.0, 0.3, seed=2)
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_root(tmp_path_factory.mktemp("sc") / "speech")


@pytest.fixture(scope="module")
def ds(root: Path):
    return index_folders([root], CFG)


def by_path(dataset) -> dict[Path, Clip]:
    return {c.path: c for c in dataset.clips if c.path is not None}


# ---------------------------------------------------------------- labels and speakers


def test_labels_order(ds) -> None:
    assert CFG.labels == ("_silence_", "_unknown_", "yes", "no")
    assert ds.labels == ("_silence_", "_unknown_", "yes", "no")
    assert list(ds.counts()) == ["_silence_", "_unknown_", "yes", "no"]


def test_label_mapping(ds, root: Path) -> None:
    clips = by_path(ds)
    assert len(clips) == 20 * 2 * 2 + 6 + 4
    for path, clip in clips.items():
        folder = path.parent.name
        expected = folder if folder in ("yes", "no") else "_unknown_"
        assert clip.label == expected, path
        assert clip.path.is_relative_to(root)
    assert Counter(c.label for c in ds.clips if c.path) == {"yes": 40, "no": 40, "_unknown_": 10}
    # bird/ is not a keyword, so its clips are _unknown_
    assert {c.label for c in ds.clips if c.path and c.path.parent.name == "bird"} == {"_unknown_"}
    # no clip from the noise folder is an example
    assert not any(c.path and c.path.parent.name == "_background_noise_" for c in ds.clips)
    assert [p.name for p in ds.noise_files] == ["hiss.wav", "rumble.wav"]
    assert ds.roots == (root,)


def test_other_words_are_unknown_and_keywords_configurable(root: Path) -> None:
    d = index_folders([root], DataConfig(keywords=("no",)))
    labels = {c.path.parent.name: c.label for c in d.clips if c.path}
    assert labels == {"yes": "_unknown_", "no": "no", "bird": "_unknown_",
                      "_unknown_": "_unknown_"}
    assert d.labels == ("_silence_", "_unknown_", "no")


@pytest.mark.parametrize(
    "name, speaker",
    [
        ("0a7c2a8d_nohash_0.wav", "0a7c2a8d"),
        ("0a7c2a8d_nohash_12.wav", "0a7c2a8d"),
        ("cat_0a7c2a8d_nohash_0.wav", "0a7c2a8d"),
        ("backward_ffd2ba2f_nohash_3.wav", "ffd2ba2f"),
    ],
)
def test_speaker_of(name: str, speaker: str) -> None:
    assert speaker_of(Path("root") / "yes" / name) == speaker
    assert speaker_of(Path(name)) == speaker
    assert speaker_of(Path("root") / "yes" / name, Path("root")) == speaker


@pytest.mark.parametrize("name", ["1024.wav", "some_recording.flac"])
def test_a_file_without_speaker_id_is_its_own_speaker_named_by_place(name: str) -> None:
    assert speaker_of(Path("root") / "yes" / name) == f"yes/{name}"
    assert speaker_of(Path(name)) == name
    assert speaker_of(Path("data") / "yes" / name, Path("data")) == f"data/yes/{name}"


def test_clip_speakers_come_from_file_names(ds) -> None:
    for c in ds.clips:
        if c.path is not None:
            assert c.speaker == speaker_of(c.path)
            assert c.speaker in SPEAKERS


# ---------------------------------------------------------------- splits


def test_no_speaker_in_two_splits(ds) -> None:
    splits_of = defaultdict(set)
    for c in ds.clips:
        if c.label != "_silence_":
            splits_of[c.speaker].add(c.split)
    assert splits_of and all(len(s) == 1 for s in splits_of.values()), splits_of


def test_mixed_folder_keeps_official_split(ds) -> None:
    assert ds.notes == []
    assert ds.config.split_salt == ""
    for c in ds.clips:
        if c.path is not None:
            assert c.split == official_split(c.speaker, 10, 10), c.path
    sizes = Counter(c.split for c in ds.clips if c.label in ("yes", "no"))
    assert sizes == {"train": 56, "validation": 12, "test": 12}
    assert ds.speakers() == {"train": 14, "validation": 3, "test": 3}


def test_split_of_matches_official_rule() -> None:
    names = [f"{i:08x}" for i in range(0, 4000, 7)] + SPEAKERS + ["", "speaker", "ffd2ba2f"]
    for spk in names:
        for vp, tp in ((10, 10), (20, 5), (0, 0), (0, 30), (49.5, 50)):
            assert split_of(spk, vp, tp) == official_split(spk, vp, tp), (spk, vp, tp)
    counts = Counter(split_of(f"{i:08x}", 10, 10) for i in range(3000))
    assert all(abs(counts[s] / 3000 - p) < 0.03 for s, p in
               (("train", 0.8), ("validation", 0.1), ("test", 0.1))), counts


def test_split_of_known_values() -> None:
    # percentages worked out by hand from the definition, not from split_of
    for spk in SPEAKERS[:14]:
        assert split_of(spk, 10, 10) == "train"
    for spk in SPEAKERS[14:17]:
        assert split_of(spk, 10, 10) == "validation"
    for spk in SPEAKERS[17:]:
        assert split_of(spk, 10, 10) == "test"
    spk = SPEAKERS[0]
    pct = (int(hashlib.sha1(spk.encode()).hexdigest(), 16) % 2**27) * 100 / (2**27 - 1)
    assert split_of(spk, pct, 0) == "train"  # boundary: '<' not '<='
    assert split_of(spk, pct + 1e-9, 0) == "validation"
    assert split_of(spk, 0, pct + 1e-9) == "test"
    assert split_of(spk, 0, 0) == "train"


def test_salt_changes_the_split_deterministically() -> None:
    names = [f"{i:08x}" for i in range(500)]
    plain = [split_of(n, 10, 10) for n in names]
    salted = [split_of(n, 10, 10, "kws") for n in names]
    assert salted == [official_split("kws" + n, 10, 10) for n in names]
    assert plain != salted


def test_splits_are_stable(ds, root: Path, tmp_path: Path) -> None:
    before = {c.path: c.split for c in ds.clips if c.path}
    again = index_folders([root], CFG)
    assert {c.path: c.split for c in again.clips if c.path} == before
    assert again.clips == ds.clips  # silence cuts included

    # a second root with other speakers leaves every existing clip where it was
    other = make_root(tmp_path / "other", speakers=hex_speakers(5, "train", start=5000)
                      + hex_speakers(2, "validation", start=5000), noise=False)
    both = index_folders([root, other], CFG)
    assert both.notes == []
    split2 = {c.path: c.split for c in both.clips if c.path}
    assert {p: split2[p] for p in before} == before

    # and so does another word folder in a copy of the root
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    for spk in hex_speakers(4, "train", start=9000) + SPEAKERS[:3]:
        write_tone(copy / "bed" / f"{spk}_nohash_0.wav", 0.5, 900)
    grown = index_folders([copy], CFG)
    split3 = {c.path.relative_to(copy): c.split for c in grown.clips if c.path}
    assert {p.relative_to(root): s for p, s in before.items()} == {
        p: split3[p] for p in (q.relative_to(root) for q in before)
    }


def test_combining_two_roots(root: Path, tmp_path: Path) -> None:
    other_spk = hex_speakers(3, "train", start=7000)
    other = make_root(tmp_path / "more", speakers=other_spk, clips_per_speaker=1,
                      noise=False, extra_words=False)
    write_noise(other / "_background_noise_" / "tap.wav", 3.0, 0.05, seed=3)
    d = index_folders([root, other], CFG)
    assert d.roots == (root, other)
    paths = [c.path for c in d.clips if c.path]
    assert sum(p.is_relative_to(root) for p in paths) == 90
    assert sum(p.is_relative_to(other) for p in paths) == 6
    assert sorted(p.name for p in d.noise_files) == ["hiss.wav", "rumble.wav", "tap.wav"]
    # silence count follows the combined keyword average ((43 + 43) / 2)
    assert sum(d.counts()["_silence_"].values()) == 43
    assert sum(d.counts()["yes"].values()) == 43


def test_split_lists_decide_when_present(tmp_path: Path) -> None:
    root = make_root(tmp_path / "lists", extra_words=True)
    # put an official-train speaker in validation and an official-validation one in test
    val = [f"yes/{SPEAKERS[0]}_nohash_0.wav", f"no/{SPEAKERS[1]}_nohash_1.wav",
           f"bird/{SPEAKERS[6]}_nohash_0.wav"]
    test = [f"yes/{SPEAKERS[14]}_nohash_0.wav", f"no/{SPEAKERS[2]}_nohash_0.wav"]
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    d = index_folders([root], CFG)
    assert d.notes == []
    for c in d.clips:
        if c.path is None:
            continue
        rel = c.path.relative_to(root).as_posix()
        expected = "validation" if rel in val else "test" if rel in test else "train"
        assert c.split == expected, rel
    # a listed file that does not exist is simply ignored
    (root / "testing_list.txt").write_text("\n".join(test + ["yes/gone_nohash_0.wav"]) + "\n")
    assert Counter(c.split for c in index_folders([root], CFG).clips if c.path) == {
        "train": 85, "validation": 3, "test": 2}


def test_split_lists_without_validation_do_not_claim_a_resplit(tmp_path: Path) -> None:
    root = make_root(tmp_path / "onlytest", extra_words=False, noise=False)
    (root / "testing_list.txt").write_text(f"yes/{SPEAKERS[0]}_nohash_0.wav\n")
    d = index_folders([root], CFG)
    assert Counter(c.split for c in d.clips) == {"train": 79, "test": 1}
    assert d.notes == []


# ---------------------------------------------------------------- auto re-split


def test_one_official_split_folder_is_resplit_with_salt(tmp_path: Path) -> None:
    test_only = hex_speakers(20, "test")
    assert all(split_of(s, 10, 10) == "test" for s in test_only)
    root = make_root(tmp_path / "testset", speakers=test_only, clips_per_speaker=1)
    d = index_folders([root], CFG)
    assert len(d.notes) == 1
    assert AUTO_SALT in d.notes[0] and "re-split" in d.notes[0]
    assert d.config.split_salt == AUTO_SALT == "kws"
    assert d.summary()["split_salt"] == "kws" and d.summary()["notes"] == d.notes
    for c in d.clips:
        if c.path is not None:
            assert c.split == official_split("kws" + c.speaker, 10, 10)
    sizes = Counter(c.split for c in d.clips if c.label in ("yes", "no"))
    assert sizes["train"] > 0 and sizes["validation"] > 0
    # still speaker-disjoint
    per = defaultdict(set)
    for c in d.clips:
        if c.label != "_silence_":
            per[c.speaker].add(c.split)
    assert all(len(v) == 1 for v in per.values())


def test_explicit_salt_is_used_without_note(tmp_path: Path) -> None:
    test_only = hex_speakers(10, "test")
    root = make_root(tmp_path / "salted", speakers=test_only, clips_per_speaker=1,
                     extra_words=False, noise=False)
    d = index_folders([root], DataConfig(keywords=("yes", "no"), split_salt="abc"))
    assert d.notes == []
    assert all(c.split == official_split("abc" + c.speaker, 10, 10) for c in d.clips)
    # the empty salt forces the official rule even when it leaves training empty
    d = index_folders([root], DataConfig(keywords=("yes", "no"), split_salt=""))
    assert d.notes == []
    assert {c.split for c in d.clips} == {"test"}


# ---------------------------------------------------------------- silence from noise


def test_silence_generated_from_noise(ds, root: Path) -> None:
    sil = [c for c in ds.clips if c.label == "_silence_"]
    assert len(sil) == 40  # average keyword count: (40 + 40) / 2
    noise_dir = root / "_background_noise_"
    for c in sil:
        assert c.path is None and c.noise is not None
        assert c.noise.parent == noise_dir
        assert 0 <= c.offset <= 5 * SR - SR
        assert 0 < c.gain <= 1.0
        assert c.split in SPLITS
        assert c.name == f"{c.noise}@{c.offset}"
    assert {c.noise.name for c in sil} == {"hiss.wav", "rumble.wav"}
    assert len({(c.noise, c.offset) for c in sil}) > 30
    # silence has no speaker in the speaker counts
    assert sum(ds.speakers().values()) == 20


def test_silence_clip_count_setting(root: Path) -> None:
    for n in (0, 1, 7):
        d = index_folders([root], DataConfig(keywords=("yes", "no"), silence_clips=n))
        assert sum(1 for c in d.clips if c.label == "_silence_") == n


def test_silence_average_follows_keyword_counts(tmp_path: Path) -> None:
    root = make_root(tmp_path / "uneven", speakers=SPEAKERS[:5], clips_per_speaker=1,
                     extra_words=False)
    for spk in SPEAKERS[5:12]:
        write_tone(root / "yes" / f"{spk}_nohash_0.wav", 0.5, 300)
    d = index_folders([root], CFG)
    # yes 12, no 5 -> round(8.5) (banker's or not, 8 or 9)
    assert sum(1 for c in d.clips if c.label == "_silence_") in (8, 9)


def test_silence_is_deterministic_for_the_seed(root: Path) -> None:
    def cuts(seed: int):
        d = index_folders([root], DataConfig(keywords=("yes", "no"), seed=seed))
        return [(c.noise, c.offset, c.gain, c.split) for c in d.clips if c.label == "_silence_"]

    assert cuts(3) == cuts(3)
    assert cuts(0) == cuts(0)
    assert cuts(0) != cuts(3)


def test_no_noise_folder_no_silence(tmp_path: Path) -> None:
    root = make_root(tmp_path / "quiet", noise=False, extra_words=False)
    d = index_folders([root], CFG)
    assert d.noise_files == []
    assert d.counts()["_silence_"] == {"train": 0, "validation": 0, "test": 0}


def test_existing_silence_folder_is_used_instead_of_noise(tmp_path: Path) -> None:
    root = make_root(tmp_path / "withsil", extra_words=False)
    for i in range(3):
        write_noise(root / "_silence_" / f"{1000 + i}.wav", 1.0, 0.01, seed=10 + i)
    d = index_folders([root], CFG)
    sil = [c for c in d.clips if c.label == "_silence_"]
    assert len(sil) == 3 and all(c.path is not None and c.noise is None for c in sil)
    assert sorted(c.speaker for c in sil) == [f"withsil/_silence_/{1000 + i}.wav" for i in range(3)]


def test_silence_audio_length_and_level(root: Path) -> None:
    for seconds in (1.0, 0.5):
        cfg = DataConfig(keywords=("yes", "no"), clip_seconds=seconds, silence_clips=12)
        d = index_folders([root], cfg)
        sil = [c for c in d.clips if c.label == "_silence_"]
        got = load_audio(sil, cfg)
        n = int(seconds * SR)
        assert got.problems == []
        assert got.audio.dtype == np.int16 and got.audio.shape == (12, n)
        noise = {p: read_wav(p) for p in d.noise_files}
        for clip, row in zip(got.clips, got.audio):
            seg = noise[clip.noise][clip.offset : clip.offset + n]
            assert len(seg) == n
            peak = np.abs(np.rint(seg * 32768)).max()
            assert np.abs(row.astype(np.int64)).max() <= peak + 1
            expected = np.clip(np.rint(seg * clip.gain * 32768), -32768, 32767)
            np.testing.assert_allclose(row, expected, atol=1)


def test_silence_cuts_stay_inside_their_split_region(ds) -> None:
    """Validation/test silence is never heard in training: each cut lies inside its split's
    time region of its noise file, and the regions do not overlap."""
    import soundfile as sf

    from kws.data.dataset import noise_region

    splits = set()
    for c in ds.clips:
        if c.label != "_silence_":
            continue
        length = sf.info(str(c.noise)).frames
        start, end = noise_region(length, c.split, ds.config)
        assert start <= c.offset and c.offset + 16000 <= end, (c.split, c.offset, start, end)
        splits.add(c.split)
    assert "train" in splits  # 5 s recordings: 10% regions are too short for a 1 s clip
    regions = [noise_region(80000, s, ds.config) for s in ("train", "validation", "test")]
    assert regions[0][1] <= regions[1][0] and regions[1][1] <= regions[2][0]


# ---------------------------------------------------------------- errors


def test_missing_keyword_folder_names_the_keyword(root: Path) -> None:
    with pytest.raises(KwsError, match=r"\bup\b") as info:
        index_folders([root], DataConfig(keywords=("yes", "no", "up")))
    msg = str(info.value)
    assert "\n" not in msg and str(root) in msg
    assert "yes" not in msg.split("keyword(s)")[-1]
    with pytest.raises(KwsError, match=r"\bup\b.*\bdown\b|\bdown\b.*\bup\b"):
        index_folders([root], DataConfig(keywords=("up", "down")))


def test_non_existent_folder(tmp_path: Path, root: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(KwsError, match="does not exist") as info:
        index_folders([missing], CFG)
    assert str(missing) in str(info.value)
    with pytest.raises(KwsError, match="does not exist"):
        index_folders([root, missing], CFG)
    with pytest.raises(KwsError):
        index_folders([], CFG)


def test_file_instead_of_folder(tmp_path: Path) -> None:
    f = tmp_path / "file.wav"
    f.write_bytes(b"")
    with pytest.raises(KwsError, match="does not exist"):
        index_folders([f], CFG)


# ---------------------------------------------------------------- load_audio


def test_load_audio_skips_bad_files(tmp_path: Path) -> None:
    root = make_root(tmp_path / "bad", speakers=SPEAKERS[:4], clips_per_speaker=1,
                     extra_words=False, noise=False)
    corrupt = root / "yes" / "deadbeef_nohash_0.wav"
    corrupt.write_bytes(np.random.default_rng(9).integers(0, 256, 3000, dtype=np.uint8)
                        .tobytes())
    empty = root / "no" / "cafef00d_nohash_0.wav"
    empty.write_bytes(b"")
    d = index_folders([root], CFG)
    assert len(d.clips) == 10  # indexing does not read audio
    reported: list[str] = []
    got = load_audio(d.clips, CFG, report=reported.append)
    assert len(got.clips) == 8
    assert {c.path for c in got.clips} == {c.path for c in d.clips} - {corrupt, empty}
    assert got.audio.dtype == np.int16 and got.audio.shape == (8, SR)
    assert len(got.problems) == 2
    assert reported == got.problems
    assert sorted(p.split(": ", 1)[0] for p in got.problems) == sorted([str(corrupt), str(empty)])
    assert all("\n" not in p and p.split(": ", 1)[1].strip() for p in got.problems)
    # labels line up with the kept clips
    np.testing.assert_array_equal(got.labels(d.labels),
                                  [d.labels.index(c.label) for c in got.clips])
    # without a callback it still collects the problems
    assert load_audio(d.clips, CFG).problems == got.problems


def test_load_audio_values_and_padding(tmp_path: Path) -> None:
    pcm = np.random.default_rng(4).integers(-20000, 20000, 9000).astype(np.int16)
    short = tmp_path / "yes" / "abcdef01_nohash_0.wav"
    short.parent.mkdir(parents=True)
    sf.write(short, pcm, SR, subtype="PCM_16")
    long = tmp_path / "yes" / "abcdef01_nohash_1.wav"
    x = np.zeros(30000, np.int16)
    x[20000:22000] = 15000
    sf.write(long, x, SR, subtype="PCM_16")
    clips = [Clip("yes", "train", "abcdef01", path=short), Clip("yes", "train", "abcdef01",
                                                                 path=long)]
    got = load_audio(clips, CFG)
    assert got.audio.shape == (2, SR) and got.audio.dtype == np.int16
    np.testing.assert_array_equal(got.audio[0, :9000], pcm)  # 16-bit passes through exactly
    np.testing.assert_array_equal(got.audio[0, 9000:], 0)
    assert np.count_nonzero(got.audio[1] == 15000) == 2000  # the loud part is kept


def test_load_audio_empty_input() -> None:
    got = load_audio([], CFG)
    assert got.clips == [] and got.problems == []
    assert got.audio.shape == (0, SR) and got.audio.dtype == np.int16


def test_load_audio_whole_fixture(ds) -> None:
    got = load_audio(ds.clips, CFG)
    assert got.problems == []
    assert got.audio.shape == (len(ds.clips), SR) and got.audio.dtype == np.int16
    assert got.clips == ds.clips


# ---------------------------------------------------------------- the shared real data

README_COUNTS = {"yes": 221, "no": 202, "up": 211, "down": 205, "left": 215, "right": 193,
                 "on": 199, "off": 197, "stop": 193, "go": 200, "_unknown_": 199,
                 "_silence_": 205}


@pytest.mark.real_data
def test_shared_speech_commands() -> None:
    path = shared_speech_commands()
    if path is None:
        pytest.skip("shared Speech Commands copy not found: expected $KWS_SHARED_DATA or "
                    "../shared/data/speech_commands beside the repository")
    cfg = DataConfig()
    d = index_folders([path], cfg)
    assert len(d.clips) == 2440
    assert len(d.labels) == 12
    assert {lab: sum(v.values()) for lab, v in d.counts().items()} == README_COUNTS
    assert len(d.noise_files) == 6
    assert d.problems == []
    for split in SPLITS:
        kw = [c for c in d.subset(split) if c.label in cfg.keywords]
        assert kw, f"no keyword clips in {split}"
        assert {c.label for c in kw} == set(cfg.keywords), split
    # the folder holds official *test* speakers only: the independent rule says so for every
    # speaker, which is why the loader re-splits (and says so)
    speakers = {c.speaker for c in d.clips if c.label != "_silence_"}
    assert 100 <= len(speakers) <= 130
    assert all(official_split(s, 10, 10) == "test" for s in speakers)
    assert d.notes and AUTO_SALT in d.notes[0]
    per = defaultdict(set)
    for c in d.clips:
        if c.label != "_silence_":
            per[c.speaker].add(c.split)
    assert all(len(v) == 1 for v in per.values())
    # a few clips read as 1 s int16
    sample = d.clips[::250]
    got = load_audio(sample, cfg)
    assert got.problems == [] and got.audio.shape == (len(sample), SR)


# ---------------------------------------------------------------- learning-curve thinning


def test_thin_training_keeps_a_nested_share_of_training_speakers(root: Path) -> None:
    """train_speaker_percent: fewer training speakers, whole speakers only, a smaller share a
    subset of a larger one, validation/test and --train-only clips untouched."""
    dataset = index_folders([root], CFG, train_only=[root])

    def train_speakers(d) -> set[str]:
        return {clip_identity(c) for c in d.clips if c.split == "train" and not c.train_only}

    full = train_speakers(dataset)
    half, quarter = dataset.thin_training(50), dataset.thin_training(25)
    assert quarter.clips and train_speakers(quarter) <= train_speakers(half) < full
    assert train_speakers(quarter) < train_speakers(half)
    for thinned in (half, quarter):
        kept = train_speakers(thinned)
        # whole speakers: every training clip of a kept speaker stays
        assert sum(c.split == "train" and not c.train_only and clip_identity(c) in kept
                   for c in dataset.clips) == sum(c.split == "train" and not c.train_only
                                                  for c in thinned.clips)
        for split in ("validation", "test"):
            assert [c for c in thinned.clips if c.split == split] == \
                [c for c in dataset.clips if c.split == split]
        assert [c for c in thinned.clips if c.train_only] == \
            [c for c in dataset.clips if c.train_only]
    assert dataset.thin_training(100) is dataset


def test_train_speaker_percent_is_validated() -> None:
    with pytest.raises(ValueError):
        DataConfig(train_speaker_percent=0)
    with pytest.raises(ValueError):
        DataConfig(train_speaker_percent=120)
