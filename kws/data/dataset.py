"""The Speech Commands layout -> labelled, speaker-disjoint clip lists.

Folder layout (one or several roots): `<root>/<word>/<speaker>_nohash_<n>.wav`,
`<root>/_unknown_/<word>_<speaker>_nohash_<n>.wav`, `<root>/_silence_/`,
`<root>/_background_noise_/*.wav`, optional `validation_list.txt` / `testing_list.txt`.
Clips may be WAV or FLAC (or any other format in `AUDIO_SUFFIXES`, all read by soundfile);
FLAC is lossless, so a FLAC copy of a WAV gives the same samples.

Indexing only lists files (fast even for the 85k-clip full set); audio is read by
`load_audio`, which skips bad files with one line each instead of failing mid-run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from kws.config import NOISE_FOLDER, SILENCE_LABEL, UNKNOWN_LABEL, DataConfig
from kws.data.audio import SAMPLE_RATE_HZ, fit_to_length, read_wav
from kws.errors import AudioError, KwsError

SPLITS = ("train", "validation", "test")
# The data set's own split rule: a hash of the speaker id, in this many buckets.
_MAX_WAVS_PER_CLASS = 2**27 - 1
AUTO_SALT = "kws"
# File types read as clips and noise (soundfile/libsndfile reads them all).
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff",
                            ".mp3"})
# The shared data folder's sub-folders, in the order they are combined.
SHARED_FOLDERS = ("speech_commands", "speech_commands_extra", "negatives")
_SPEAKER_RE = re.compile(r"([^_/]+)_nohash_")


@dataclass(frozen=True)
class Clip:
    """One example. `path` is a WAV; silence cut from noise has `noise` + `offset` + `gain`."""

    label: str
    split: str
    speaker: str
    path: Path | None = None
    noise: Path | None = None
    offset: int = 0
    gain: float = 1.0
    train_only: bool = False  # from a --train-only folder: never validation/test material

    @property
    def name(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"{self.noise}@{self.offset}"


@dataclass
class Dataset:
    """Clips of one or several folders, each with its label and split."""

    config: DataConfig
    roots: tuple[Path, ...]
    clips: list[Clip]
    noise_files: list[Path]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.config.labels

    def subset(self, split: str) -> list[Clip]:
        return [c for c in self.clips if c.split == split]

    def thin_training(self, percent: float, salt: str = "kws-thin") -> "Dataset":
        """Keep the real training clips of `percent`% of the training speakers (by hash, so a
        smaller share keeps a subset of a larger one's speakers); --train-only clips, validation
        and test are untouched."""
        if percent >= 100:
            return self
        keep = [c for c in self.clips if c.split != "train" or c.train_only
                or _hash_percent(salt + clip_identity(c)) < percent]
        return dataclasses.replace(self, clips=keep)

    def counts(self) -> dict[str, dict[str, int]]:
        """{label: {split: n}} for every label in class order (zeros included)."""
        table = {lab: {s: 0 for s in SPLITS} for lab in self.labels}
        for c in self.clips:
            table[c.label][c.split] += 1
        return table

    def speakers(self) -> dict[str, int]:
        """Distinct speakers per split (silence clips have none)."""
        per = {s: set() for s in SPLITS}
        for c in self.clips:
            if c.label != SILENCE_LABEL:
                per[c.split].add(c.speaker)
        return {s: len(v) for s, v in per.items()}

    def summary(self) -> dict:
        return {
            "roots": [str(r) for r in self.roots],
            "clips": len(self.clips),
            "labels": list(self.labels),
            "counts": self.counts(),
            "speakers": self.speakers(),
            "noise_files": len(self.noise_files),
            "split_salt": self.config.split_salt,
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def speaker_of(path: Path, root: Path | None = None) -> str:
    """Speaker id from `<speaker>_nohash_<n>.wav` or `<word>_<speaker>_nohash_<n>.wav`.

    A file without `_nohash_` is its own speaker, named by where it is so that equal names in
    different folders (`yes/0001.flac`, `no/0001.flac`) or roots stay different speakers:
    `<root name>/<path inside root>` when `root` is given, else `<folder>/<file name>`."""
    path = Path(path)
    m = _SPEAKER_RE.search(path.name)
    if m:
        return m.group(1)
    if root is not None:
        return f"{Path(root).name}/{path.relative_to(root).as_posix()}"
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def clip_identity(clip: Clip) -> str:
    """Who a clip belongs to when speakers are divided: its speaker, or for silence cut from
    noise, the recording and offset (cuts of one recording are independent examples)."""
    return clip.speaker if clip.path is not None else f"{clip.speaker}@{clip.offset}"


def _hash_percent(text: str) -> float:
    digest = int(hashlib.sha1(text.encode()).hexdigest(), 16)
    return (digest % (_MAX_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_WAVS_PER_CLASS)


def split_of(speaker: str, validation_percent: float, testing_percent: float, salt: str = "") -> str:
    """Stable split by speaker hash, as the data set's own README defines it (salt ""), so a
    speaker's clips never straddle splits and adding data never moves existing clips."""
    percent = _hash_percent(salt + speaker)
    if percent < validation_percent:
        return "validation"
    if percent < validation_percent + testing_percent:
        return "test"
    return "train"


def index_folders(roots: Sequence[str | Path], config: DataConfig = DataConfig(),
                  train_only: Sequence[str | Path] = ()) -> Dataset:
    """List and label every clip of the given folders (no audio read yet). Clips of
    `train_only` folders (e.g. synthetic speech) only ever join the training split, so
    validation and test stay real speakers."""
    dataset = _index_with_auto_salt(roots, config)
    for root in train_only:
        extra, extra_noise = _index_root(Path(root), dataset.config)
        if not extra:
            raise KwsError(f"{root}: no audio files (WAV/FLAC) in label folders")
        dataset.clips += [dataclasses.replace(c, split="train", train_only=True) for c in extra
                          if c.label != SILENCE_LABEL or c.path is not None]
        dataset.noise_files = sorted(dataset.noise_files + extra_noise)
        dataset.roots += (Path(root),)
    return dataset


def _index_with_auto_salt(roots: Sequence[str | Path], config: DataConfig) -> Dataset:
    if not roots:
        raise KwsError("no data folder given (use --data DIR)")
    notes: list[str] = []
    ships_lists = any(_split_lists(Path(r)) for r in roots if Path(r).is_dir())
    if config.split_salt is None and ships_lists:
        config = config.model_copy(update={"split_salt": ""})
    if config.split_salt is None:
        dataset = _index(roots, config.model_copy(update={"split_salt": ""}))
        why = _official_split_shortfall(dataset.clips, config)
        if why is None:
            return dataset
        config = config.model_copy(update={"split_salt": AUTO_SALT})
        notes.append(f"the data set's own speaker-hash split {why}, so all speakers are "
                     f"re-split with salt '{AUTO_SALT}'")
    dataset = _index(roots, config)
    dataset.notes += notes
    return dataset


def _official_split_shortfall(clips: Sequence[Clip], config: DataConfig) -> str | None:
    """Why the official speaker-hash split does not suit these folders, or None when it does.

    It does not when the keywords get no training or no validation clips (a folder that is one
    official split), or when some label (a keyword or `_unknown_`) gets less than half of its
    expected training share (100 - validation% - test%) of its clips: e.g. official test
    speakers for most of a word's clips, which would leave that word almost untrained."""
    sizes = Counter(c.split for c in clips if c.label in config.keywords)
    if not sizes["train"] or (config.validation_percent and not sizes["validation"]):
        return ("leaves no training or validation clips here (the folder is one official "
                "split)")
    expected = (100 - config.validation_percent - config.testing_percent) / 100
    per: dict[str, Counter] = {}
    for c in clips:
        if c.label != SILENCE_LABEL:
            per.setdefault(c.label, Counter())[c.split] += 1
    starved = []
    for label in (*config.keywords, UNKNOWN_LABEL):
        n = sum(per.get(label, Counter()).values())
        if n and per[label]["train"] < 0.5 * expected * n:
            starved.append(f"{label} {per[label]['train']} of {n}")
    if starved:
        return (f"gives too few training clips to {', '.join(starved)} (under half of the "
                f"expected {expected:.0%})")
    return None


def _index(roots: Sequence[str | Path], config: DataConfig) -> Dataset:
    clips: list[Clip] = []
    noise: list[Path] = []
    for root in roots:
        root_clips, root_noise = _index_root(Path(root), config)
        clips += root_clips
        noise += root_noise
    present = {c.label for c in clips}
    if not present & set(config.keywords):
        raise KwsError(
            f"{', '.join(str(r) for r in roots)}: none of the keywords "
            f"({', '.join(config.keywords)}) has a folder with audio files (WAV/FLAC)"
        )
    missing = [w for w in config.keywords if w not in present]
    if missing:
        raise KwsError(
            f"{', '.join(str(r) for r in roots)}: no clips for keyword(s) {', '.join(missing)}"
        )
    if SILENCE_LABEL not in present:
        clips += _silence_from_noise(noise, clips, config)
    return Dataset(config, tuple(Path(r) for r in roots), clips, sorted(noise))


def _index_root(root: Path, config: DataConfig) -> tuple[list[Clip], list[Path]]:
    if not root.is_dir():
        raise KwsError(f"{root}: data folder does not exist")
    fixed = _split_lists(root)
    keywords = set(config.keywords)
    clips: list[Clip] = []
    noise: list[Path] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        wavs = sorted(p for p in folder.iterdir()
                      if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        if folder.name == NOISE_FOLDER:
            noise += wavs
            continue
        if folder.name.startswith(".") or not wavs:
            continue
        if folder.name == SILENCE_LABEL:
            label = SILENCE_LABEL
        else:
            label = folder.name if folder.name in keywords else UNKNOWN_LABEL
        for wav in wavs:
            speaker = speaker_of(wav, root)
            rel = wav.relative_to(root).as_posix()
            split = fixed.get(rel) or (
                "train" if fixed else
                split_of(speaker, config.validation_percent, config.testing_percent,
                         config.split_salt or "")
            )
            clips.append(Clip(label, split, speaker, path=wav))
    return clips, noise


def _split_lists(root: Path) -> dict[str, str]:
    """`validation_list.txt` / `testing_list.txt` when the folder ships them."""
    fixed: dict[str, str] = {}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        f = root / name
        if f.is_file():
            for line in f.read_text().split():
                fixed[line.strip()] = split
    return fixed


def noise_region(length: int, split: str, config: DataConfig) -> tuple[int, int]:
    """Sample range [start, end) of a background-noise recording that belongs to `split`.

    Every recording is cut in time: the first part for training, then validation, then test
    (by the configured percentages), so silence heard in validation or test never appeared in
    training, and every split gets silence even from a handful of recordings.
    """
    val, test = config.validation_percent / 100, config.testing_percent / 100
    bounds = {"train": (0.0, 1 - val - test), "validation": (1 - val - test, 1 - test),
              "test": (1 - test, 1.0)}[split]
    return int(bounds[0] * length), int(bounds[1] * length)


def _silence_from_noise(noise: list[Path], clips: list[Clip], config: DataConfig) -> list[Clip]:
    """Cut `_silence_` examples from the background-noise recordings, at random offsets and
    levels (down to near-silent), deterministically from the config seed. A cut's split is
    drawn with the configured percentages and its offset stays inside that split's region of
    the recording (`noise_region`)."""
    if not noise:
        return []
    n = config.silence_clips
    if n is None:
        per_kw = Counter(c.label for c in clips if c.label in config.keywords)
        n = round(sum(per_kw.values()) / max(len(per_kw), 1))
    rng = np.random.default_rng(config.seed)
    clip_len = int(config.clip_seconds * SAMPLE_RATE_HZ)
    lengths = {f: _frames_at_16k(f) for f in noise}
    usable = [f for f in sorted(noise) if lengths[f] > clip_len]
    if not usable:
        return []
    weights = np.array([100 - config.validation_percent - config.testing_percent,
                        config.validation_percent, config.testing_percent]) / 100
    out = []
    for i in range(n):
        f = usable[i % len(usable)]
        split = SPLITS[int(rng.choice(3, p=weights))]
        start, end = noise_region(lengths[f], split, config)
        if end - start < clip_len:  # a short recording: only its training part can hold a clip
            split = "train"
            start, end = noise_region(lengths[f], split, config)
            if end - start < clip_len:
                start, end = 0, lengths[f]
        offset = int(rng.integers(start, end - clip_len + 1))
        # Log-uniform level from -60 dB to 0 dB: some near-silent, some full noise.
        gain = float(10 ** (rng.uniform(-60, 0) / 20))
        out.append(Clip(SILENCE_LABEL, split, f"noise-{f.stem}", noise=f, offset=offset, gain=gain))
    return out


def _frames_at_16k(path: Path) -> int:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:  # noqa: BLE001 - a bad noise file is reported when it is read
        return 0
    return int(info.frames * SAMPLE_RATE_HZ / info.samplerate)


@dataclass
class ClipAudio:
    """Audio of the clips that could be read, as one int16 matrix [N, samples]."""

    clips: list[Clip]
    audio: np.ndarray
    problems: list[str]

    def labels(self, label_names: Sequence[str]) -> np.ndarray:
        index = {lab: i for i, lab in enumerate(label_names)}
        return np.array([index[c.label] for c in self.clips], dtype=np.int64)


def load_audio(
    clips: Iterable[Clip],
    config: DataConfig = DataConfig(),
    report: Callable[[str], None] | None = None,
) -> ClipAudio:
    """Read every clip as 16 kHz int16 of the configured length. A file that cannot be used is
    reported (one line: file + reason) and skipped; the caller gets a count in `problems`."""
    clip_len = int(config.clip_seconds * SAMPLE_RATE_HZ)
    noise_cache: dict[Path, np.ndarray] = {}
    kept: list[Clip] = []
    rows: list[np.ndarray] = []
    problems: list[str] = []
    for clip in clips:
        try:
            if clip.path is not None:
                x = fit_to_length(read_wav(clip.path), clip_len)
            else:
                if clip.noise not in noise_cache:
                    noise_cache[clip.noise] = read_wav(clip.noise)
                x = noise_cache[clip.noise][clip.offset : clip.offset + clip_len] * clip.gain
                x = fit_to_length(x.astype(np.float32), clip_len)
        except AudioError as exc:
            problems.append(str(exc))
            if report:
                report(str(exc))
            continue
        kept.append(clip)
        rows.append(np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16))
    audio = np.stack(rows) if rows else np.zeros((0, clip_len), np.int16)
    return ClipAudio(kept, audio, problems)


def load_noise(paths: Sequence[Path], report: Callable[[str], None] | None = None) -> list[np.ndarray]:
    """Background-noise recordings as float32 arrays; unreadable ones reported and skipped."""
    out = []
    for p in paths:
        try:
            out.append(read_wav(p))
        except AudioError as exc:
            if report:
                report(str(exc))
    return out


def _shared_candidates() -> list[Path]:
    if "KWS_SHARED_DATA" in os.environ:
        return [Path(os.environ["KWS_SHARED_DATA"])]
    rel = Path("shared") / "data"
    return [Path(__file__).resolve().parents[3] / rel, Path.cwd().parent / rel, Path("/work") / rel]


def shared_data() -> list[Path]:
    """The team's shared data: its folders among `SHARED_FOLDERS` (speech_commands,
    speech_commands_extra, negatives) that are present, in that order; [] when none is.

    Looked up in ../shared/data beside the repository (or beside the current folder, or the
    workspace's, for clones made elsewhere such as CI's). $KWS_SHARED_DATA overrides the lookup:
    it may name the data folder holding those folders, or (as before) one Speech Commands style
    folder, which is then the only one; a path that does not exist means "none"."""
    return _shared()[0]


def _shared() -> tuple[list[Path], bool]:
    """(folders, whether $KWS_SHARED_DATA named one Speech Commands folder itself)."""
    for cand in _shared_candidates():
        if not cand.is_dir():
            continue
        found = [cand / name for name in SHARED_FOLDERS if (cand / name).is_dir()]
        if found:
            return found, False
        if "KWS_SHARED_DATA" in os.environ:
            return [cand], True
    return [], False


def shared_speech_commands() -> Path | None:
    """Only the shared Speech Commands WAV folder (the 2,440 official test clips), for checks
    that need exactly that set; see `shared_data` for the lookup."""
    roots, single = _shared()
    if single:
        return roots[0]
    return next((r for r in roots if r.name == SHARED_FOLDERS[0]), None)


def default_data_roots(given: Sequence[Path] = ()) -> tuple[list[Path], str]:
    """Which data a default run uses, and why: the folders given, else every shared folder
    (`shared_data`), else nothing (the caller synthesizes and says how to get real data)."""
    if given:
        return list(given), "given"
    shared = shared_data()
    if shared:
        return shared, "shared"
    return [], "none"
