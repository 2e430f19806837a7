"""Test streams: words of one split's speakers placed at known times over that split's noise.

Why: clip accuracy says little about what the device reports on continuous audio, where the
model sees words at every offset, between words, and noise it was never trained on. A stream
is long audio with a ground-truth list of keyword events (label, start_s, end_s); `score`
turns the device's detections on it into FRR per keyword and false accepts per hour.

How a stream is made (deterministic for a seed):
- Word onsets are `gap_s` apart (uniform, default 1.5-4 s); every slot holds a keyword (share
  `keyword_share`), an `_unknown_` word (`unknown_share`) or nothing (silence: only the
  background). Clips are at most 1 s (+10 % for slowed unknown words), shorter than the
  smallest gap, so words never overlap.
- Keyword clips are dealt from a shuffled deck of the split's keyword clips (a fresh shuffle
  each pass), so a stream long enough holds each clip once before any repeats.
  `_unknown_` clips (few per split) are reused with a random speed (0.9-1.1), start trim and
  polarity, so repeats are not bit-identical.
- Every word is scaled to an active-speech level of `speech_dbfs` (+- `level_jitter_db`); the
  active level is the RMS over the 10 ms frames within 30 dB of the clip's loudest frame.
- The background is cut from the split's region of each background-noise recording
  (`noise_region`: validation/test streams only hear noise never used in training), each
  recording normalized to unit RMS over that region, in segments of random file, offset and
  direction joined with 50 ms equal-power crossfades, then scaled to `speech_dbfs - snr_db`.
  So the SNR is the speech's active level over the background's mean level.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.config import SILENCE_LABEL, UNKNOWN_LABEL
from kws.data.audio import SAMPLE_RATE_HZ, read_wav, resample, to_int16
from kws.data.dataset import Clip, Dataset, noise_region
from kws.errors import AudioError, KwsError

Event = tuple[str, float, float]
"""(label, start_s, end_s): where a word's clip lies in the stream."""

ACTIVE_FRAME_S = 0.01
ACTIVE_RANGE_DB = 30.0


@dataclass(frozen=True)
class StreamConfig:
    """How words and noise are laid out; the defaults are what `kws streams` uses."""

    gap_s: tuple[float, float] = (1.5, 4.0)
    """Time between consecutive word onsets (uniform)."""
    keyword_share: float = 0.6
    """Share of slots holding a keyword."""
    unknown_share: float = 0.25
    """Share of slots holding an `_unknown_` word; the rest stay silent (background only)."""
    speech_dbfs: float = -26.0
    """Active-speech RMS level of every word, dB re full scale."""
    level_jitter_db: float = 3.0
    """Per-word level change, uniform in +-this (0 = every word exactly at speech_dbfs)."""
    unknown_speed: tuple[float, float] = (0.9, 1.1)
    """Speed factor for reused `_unknown_` clips (resampled: tempo and pitch)."""
    unknown_trim_s: float = 0.1
    """Up to this much is cut from the start of a reused `_unknown_` clip."""
    segment_s: tuple[float, float] = (2.0, 6.0)
    """Length of each background segment (capped by the noise region's length)."""
    crossfade_s: float = 0.05
    lead_s: tuple[float, float] = (0.5, 1.5)
    """Time before the first onset (the device needs a clip's worth of frames anyway)."""
    tail_s: float = 1.5
    """Every word ends at least this long before the stream does (its decisions still come)."""

    def __post_init__(self):
        lo, hi = self.gap_s
        if not 0 < lo <= hi:
            raise KwsError(f"stream gap_s {self.gap_s}: need 0 < low <= high")
        if not (0 <= self.keyword_share and 0 <= self.unknown_share
                and self.keyword_share + self.unknown_share <= 1):
            raise KwsError("stream keyword_share + unknown_share must be within [0, 1]")
        if not 0 < self.unknown_speed[0] <= self.unknown_speed[1]:
            raise KwsError(f"stream unknown_speed {self.unknown_speed}: need 0 < low <= high")


NEGATIVE = StreamConfig(keyword_share=0.0, unknown_share=0.6)
"""The keyword-free stream: unknown words in 60 % of the slots, the rest background only."""


@dataclass
class Stream:
    """One test recording and its ground truth."""

    audio: np.ndarray
    """int16 mono at `sample_rate_hz`."""
    events: list[Event]
    """Keyword events only (what a detection must hit)."""
    split: str
    seed: int
    snr_db: float
    kind: str = "keywords"
    """"keywords" or "negative" (no keyword at all)."""
    fillers: list[Event] = field(default_factory=list)
    """`_unknown_` words placed (never to be detected)."""
    clips: set[str] = field(default_factory=set)
    """Distinct source clips used (paths)."""
    noise_segments: list[tuple[str, int, int]] = field(default_factory=list)
    """(noise file name, first sample, end sample) of every background segment, in the file."""
    notes: list[str] = field(default_factory=list)
    speech: np.ndarray | None = None
    """Float speech track (only with keep_tracks=True; for measuring the SNR)."""
    background: np.ndarray | None = None
    sample_rate_hz: int = SAMPLE_RATE_HZ

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate_hz

    @property
    def name(self) -> str:
        return f"{self.split}-{self.kind}-snr{self.snr_db:g}-seed{self.seed}"


def active_rms(x: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> float:
    """RMS over the 10 ms frames within 30 dB of the loudest frame (the spoken part)."""
    n = max(1, int(ACTIVE_FRAME_S * sample_rate_hz))
    x = np.asarray(x, np.float64)
    frames = x[: len(x) // n * n].reshape(-1, n) if len(x) >= n else x.reshape(1, -1)
    power = (frames ** 2).mean(axis=1)
    if power.max() <= 0:
        return 0.0
    active = power >= power.max() * 10 ** (-ACTIVE_RANGE_DB / 10)
    return float(np.sqrt(power[active].mean()))


class _Deck:
    """Clips dealt in shuffled order; reshuffled when used up (each clip once per pass)."""

    def __init__(self, clips: Sequence[Clip], rng: np.random.Generator):
        self.clips = list(clips)
        self.rng = rng
        self.order: list[int] = []

    def __bool__(self) -> bool:
        return bool(self.clips)

    def deal(self) -> Clip:
        if not self.order:
            self.order = list(self.rng.permutation(len(self.clips)))
        return self.clips[self.order.pop()]


class _AudioCache:
    def __init__(self):
        self.data: dict[Path, np.ndarray | None] = {}
        self.problems: list[str] = []

    def get(self, path: Path) -> np.ndarray | None:
        if path not in self.data:
            try:
                self.data[path] = read_wav(path)
            except AudioError as exc:
                self.problems.append(str(exc))
                self.data[path] = None
        return self.data[path]


def split_word_clips(dataset: Dataset, split: str) -> tuple[list[Clip], list[Clip]]:
    """(keyword clips, `_unknown_` clips) of a split, sorted by path (silence excluded)."""
    clips = sorted((c for c in dataset.subset(split) if c.path is not None
                    and c.label != SILENCE_LABEL), key=lambda c: str(c.path))
    keywords = [c for c in clips if c.label in dataset.config.keywords]
    unknown = [c for c in clips if c.label == UNKNOWN_LABEL]
    return keywords, unknown


def _background(n: int, dataset: Dataset, split: str, rng: np.random.Generator,
                config: StreamConfig, cache: _AudioCache, notes: list[str],
                log: list[tuple[str, int, int]]) -> np.ndarray:
    """Unit-RMS background of n samples from the split's region of every noise recording."""
    sr = SAMPLE_RATE_HZ
    fade = max(1, int(config.crossfade_s * sr))
    regions = []
    for path in dataset.noise_files:
        x = cache.get(path)
        if x is None:
            continue
        start, end = noise_region(len(x), split, dataset.config)
        if end - start < 4 * fade:
            continue
        part = x[start:end].astype(np.float64)
        rms = np.sqrt((part ** 2).mean())
        if rms > 0:
            regions.append((path.name, start, part / rms))
    if not regions:
        notes.append(f"no background-noise recording has a {split} region; white noise used")
        return rng.standard_normal(n)
    out = np.zeros(n, np.float64)
    ramp_in = np.sqrt(np.linspace(0.0, 1.0, fade, endpoint=False) + 0.5 / fade)
    ramp_out = np.sqrt(1.0 - ramp_in ** 2)
    pos = 0
    while pos < n:
        name, offset, part = regions[int(rng.integers(len(regions)))]
        lo, hi = config.segment_s
        length = min(len(part), int(rng.uniform(lo, hi) * sr))
        first = int(rng.integers(0, len(part) - length + 1))
        seg = part[first:first + length]
        log.append((name, offset + first, offset + first + length))
        if rng.random() < 0.5:
            seg = seg[::-1]
        seg = seg.copy()
        if pos > 0:  # equal-power crossfade with the tail already written
            start = pos - fade
            out[start:pos] = out[start:pos] * ramp_out + seg[:fade] * ramp_in
            seg = seg[fade:]
        take = min(len(seg), n - pos)
        out[pos:pos + take] = seg[:take]
        pos += take
    return out


def _word_audio(clip: Clip, cache: _AudioCache, rng: np.random.Generator,
                config: StreamConfig, perturb: bool) -> np.ndarray | None:
    x = cache.get(clip.path)
    if x is None:
        return None
    x = x.astype(np.float64)
    if perturb:
        trim = int(rng.uniform(0, config.unknown_trim_s) * SAMPLE_RATE_HZ)
        x = x[trim:] if len(x) - trim > SAMPLE_RATE_HZ // 4 else x
        speed = float(rng.uniform(*config.unknown_speed))
        if abs(speed - 1.0) > 1e-3:
            x = resample(x.astype(np.float32), int(round(SAMPLE_RATE_HZ * speed)),
                         SAMPLE_RATE_HZ).astype(np.float64)
        if rng.random() < 0.5:
            x = -x
    level = active_rms(x)
    if level <= 0:
        return None
    jitter = rng.uniform(-config.level_jitter_db, config.level_jitter_db)
    return x * (10 ** ((config.speech_dbfs + jitter) / 20) / level)


def build_stream(dataset: Dataset, split: str, seconds: float, seed: int, snr_db: float,
                 config: StreamConfig = StreamConfig(), keep_tracks: bool = False,
                 kind: str | None = None) -> Stream:
    """A stream of `seconds` of the split's words over its noise at `snr_db`.

    Keywords (and `_unknown_` words) come only from clips of `split`'s speakers; the noise
    only from the split's region of each recording. Same arguments, same bytes.
    """
    if seconds <= 0:
        raise KwsError(f"stream length {seconds} s must be positive")
    sr = SAMPLE_RATE_HZ
    n = int(round(seconds * sr))
    rng = np.random.default_rng(seed)
    keywords, unknown = split_word_clips(dataset, split)
    if config.keyword_share > 0 and not keywords:
        raise KwsError(f"the {split} split has no keyword clips to build a stream from")
    kw_deck, unk_deck = _Deck(keywords, rng), _Deck(unknown, rng)
    cache = _AudioCache()
    notes: list[str] = []
    if config.unknown_share > 0 and not unknown:
        notes.append(f"the {split} split has no _unknown_ clips; their slots stay silent")

    speech = np.zeros(n, np.float64)
    events: list[Event] = []
    fillers: list[Event] = []
    used: set[str] = set()
    onset = rng.uniform(*config.lead_s)
    while True:
        start = int(round(onset * sr))
        draw = rng.random()
        if draw < config.keyword_share and kw_deck:
            clip, perturb = kw_deck.deal(), False
        elif draw < config.keyword_share + config.unknown_share and unk_deck:
            clip, perturb = unk_deck.deal(), True
        else:
            clip = None
        x = _word_audio(clip, cache, rng, config, perturb) if clip is not None else None
        if clip is not None and start + (len(x) if x is not None else sr) + int(
                config.tail_s * sr) > n:
            break
        if x is not None:
            # never let a word run into the next onset (keeps words disjoint by construction)
            x = x[: int(config.gap_s[0] * sr) - 1]
            speech[start:start + len(x)] += x
            item = (clip.label, start / sr, (start + len(x)) / sr)
            (events if clip.label in dataset.config.keywords else fillers).append(item)
            used.add(str(clip.path))
        onset += rng.uniform(*config.gap_s)
        if int(round(onset * sr)) >= n:
            break
    log: list[tuple[str, int, int]] = []
    background = _background(n, dataset, split, rng, config, cache, notes, log)
    background *= 10 ** ((config.speech_dbfs - snr_db) / 20)
    mix = speech + background
    notes += cache.problems
    return Stream(
        audio=to_int16(mix), events=events, split=split, seed=seed, snr_db=float(snr_db),
        kind=kind or ("negative" if config.keyword_share == 0 else "keywords"),
        fillers=fillers, clips=used, noise_segments=log, notes=notes,
        speech=speech if keep_tracks else None,
        background=background if keep_tracks else None,
    )


def build_negative_stream(dataset: Dataset, split: str, seconds: float, seed: int,
                          snr_db: float, config: StreamConfig = NEGATIVE,
                          keep_tracks: bool = False) -> Stream:
    """A stream with no keyword at all: reused `_unknown_` words, noise and silence."""
    if config.keyword_share != 0:
        raise KwsError("a negative stream must have keyword_share 0")
    return build_stream(dataset, split, seconds, seed, snr_db, config, keep_tracks, "negative")


def seconds_for_each_keyword_once(dataset: Dataset, split: str,
                                  config: StreamConfig = StreamConfig()) -> float:
    """Stream length that deals every keyword clip of the split about once (a bit more, so
    random slot draws rarely leave clips out)."""
    keywords, _ = split_word_clips(dataset, split)
    mean_gap = sum(config.gap_s) / 2
    return max(60.0, 1.1 * len(keywords) * mean_gap / max(config.keyword_share, 1e-9))


@dataclass(frozen=True)
class SuiteSpec:
    """Which streams make one split's evaluation."""

    snrs_db: tuple[float, ...] = (20.0, 10.0, 5.0)
    keyword_seconds: float | None = None
    """Per SNR; None = long enough to use every keyword clip once per SNR."""
    negative_minutes: float = 60.0
    """Total negative audio, in chunks of `chunk_minutes` cycling through the SNRs."""
    chunk_minutes: float = 10.0
    seed: int = 0


def stream_suite(dataset: Dataset, split: str, spec: SuiteSpec = SuiteSpec(),
                 config: StreamConfig = StreamConfig(),
                 negative: StreamConfig = NEGATIVE) -> Iterator[Stream]:
    """Keyword streams (one per SNR) then the negative chunks, built one at a time so a long
    suite never sits in memory at once. Seeds differ per stream and split."""
    split_code = {"train": 0, "validation": 1, "test": 2}.get(split, 3)
    base = 1000 * spec.seed + 100 * split_code
    seconds = spec.keyword_seconds or seconds_for_each_keyword_once(dataset, split, config)
    for i, snr in enumerate(spec.snrs_db):
        yield build_stream(dataset, split, seconds, base + i, snr, config)
    total = spec.negative_minutes * 60
    chunk = spec.chunk_minutes * 60
    i = 0
    while total > 1e-6:
        length = min(chunk, total)
        snr = spec.snrs_db[i % len(spec.snrs_db)]
        yield build_negative_stream(dataset, split, length, base + 50 + i, snr, negative)
        total -= length
        i += 1
