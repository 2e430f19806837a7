"""Training streams for the streaming GRU: long synthetic audio made on the fly from one
split's clips, with a target for every feature frame.

Why: a GRU that runs on the device with one state that is never reset must learn from audio
like the device hears: words at any time, pauses, non-keyword speech, noise that changes,
levels that change, and a state that has already seen minutes of all that.

A stream (deterministic for a seed): slots one after another, each a keyword clip (share
`keyword_share`), a non-keyword clip (`unknown_share`: the split's `_unknown_` clips, i.e.
other words and the negatives folder) or a pause. Each word is its clip cut to the speech
(frames within 30 dB of its loudest, plus 50 ms each side), played at a random rate and
scaled to the stream's speech level +- a jitter, followed by a random gap. The background
is noise at the stream's SNR: segments of the split's noise recordings (or synthetic
colored noise) joined end to end, each at its own level within +-3 dB.

Frame targets (frame i covers samples [i*hop, i*hop + window)): a keyword's label on the
frames from `lead_ms` before the frame that has heard the end of its speech until `hold_ms`
after it (cut at the next word's onset); the frames of the word before that carry no target
(weight 0: the onset is ambiguous); a non-keyword word is `_unknown_` from `unknown_mask_ms`
after its onset until its end + hold; everything else is `_silence_`. `window` numbers each
keyword's target frames (for the max-pooling loss); -1 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws.data.audio import SAMPLE_RATE_HZ
from kws.data.augment import COLORED_EXPONENT_RANGE, _colored_noise_batch, speech_span
from kws.features import reference
from kws.features.params import FeatureParams

SILENCE, UNKNOWN = 0, 1  # label indices (DataConfig.labels order)
MARGIN_S = 0.05
SPAN_DB = 30.0
NOISE_SEGMENT_S = (2.0, 8.0)


@dataclass(frozen=True)
class Word:
    audio: np.ndarray  # float32, cut to the speech +- margin
    label: int
    end: int  # sample where the speech ends, within `audio`


@dataclass
class Targets:
    labels: np.ndarray  # int32 [T]
    weights: np.ndarray  # float32 [T], 0 = no target
    window: np.ndarray  # int32 [T], keyword window number or -1


@dataclass
class TrainStream:
    features: np.ndarray  # float32 [T, F] log-mel (librosa reference)
    targets: Targets
    events: list[tuple[int, int, int]]  # (label, onset sample, speech end sample)


def word_bank(audio_int16: np.ndarray, labels: np.ndarray,
              floor_db: float | None = None) -> list[Word]:
    """The clips that can be words (keywords and `_unknown_`; silence clips are not);
    floor_db: see kws.data.augment.speech_span (streaming.span_floor_db)."""
    keep = np.flatnonzero(labels != SILENCE)
    if not len(keep):
        return []
    x = audio_int16[keep].astype(np.float32) / 32768.0
    first, last = speech_span(x, SPAN_DB, floor_db=floor_db)
    margin = int(MARGIN_S * SAMPLE_RATE_HZ)
    words = []
    for row, i, a, b in zip(x, keep, first, last):
        if b <= a:
            continue
        lo, hi = max(0, int(a) - margin), min(len(row), int(b) + margin)
        words.append(Word(row[lo:hi].copy(), int(labels[i]), int(b) - lo))
    return words


class StreamMaker:
    """Builds training streams from a word bank and background recordings."""

    def __init__(self, words: list[Word], noises: list[np.ndarray], config,
                 features: FeatureParams):
        self.keywords = [w for w in words if w.label > UNKNOWN]
        # per keyword label, the indices of its words: balanced draws pick a label first
        labels = sorted({w.label for w in self.keywords})
        self.by_label = [[i for i, w in enumerate(self.keywords) if w.label == lab]
                         for lab in labels]
        self.unknown = [w for w in words if w.label == UNKNOWN]
        self.noises = [np.asarray(n, np.float32) for n in noises if len(n) > SAMPLE_RATE_HZ]
        self.config = config
        self.features = features

    def samples_for(self, frames: int) -> int:
        f = self.features
        return (frames - 1) * f.hop_samples + f.window_samples

    def make(self, frames: int, rng: np.random.Generator) -> TrainStream:
        cfg, sr = self.config, SAMPLE_RATE_HZ
        n = self.samples_for(frames)
        speech = np.zeros(n, np.float32)
        level = rng.uniform(*cfg.speech_dbfs)
        events: list[tuple[int, int, int]] = []
        pos = int(rng.uniform(0.0, 1.0) * sr)
        while pos < n:
            draw = rng.random()
            pool = (self.keywords if draw < cfg.keyword_share else
                    self.unknown if draw < cfg.keyword_share + cfg.unknown_share else None)
            if not pool:
                pos += int(rng.uniform(*cfg.pause_s) * sr)
                continue
            word = self._draw(pool, rng)
            x, end = _played(word, float(rng.uniform(*cfg.speed_range)))
            rms = _active_rms(x)
            if rms <= 0:
                continue
            gain = 10 ** ((level + rng.uniform(-cfg.level_jitter_db, cfg.level_jitter_db)) / 20)
            take = min(len(x), n - pos)
            speech[pos:pos + take] += x[:take] * np.float32(gain / rms)
            if end <= take:  # a word cut off by the stream's end has no known end
                events.append((word.label, pos, pos + end))
            pos += len(x) + int(rng.uniform(*cfg.gap_s) * sr)
        noise = self._noise(n, rng) * np.float32(10 ** ((level - rng.uniform(*cfg.snr_db)) / 20))
        audio = np.clip(speech + noise, -1.0, 1.0)
        feats = reference.log_mel(audio, self.features)
        return TrainStream(feats, frame_targets(events, len(feats), cfg, self.features), events)

    def _draw(self, pool: list[Word], rng: np.random.Generator) -> Word:
        """A word of the pool; keywords label-first when `keyword_balance` is on (why: on/off
        have a sixth of the other keywords' clips, so uniform draws starve them)."""
        if pool is self.keywords and self.config.keyword_balance:
            group = self.by_label[int(rng.integers(len(self.by_label)))]
            return pool[group[int(rng.integers(len(group)))]]
        return pool[int(rng.integers(len(pool)))]

    def _noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Unit-RMS background: segments of recordings or colored noise, each +-3 dB."""
        out = np.zeros(n, np.float32)
        pos = 0
        while pos < n:
            length = min(n - pos, int(rng.uniform(*NOISE_SEGMENT_S) * SAMPLE_RATE_HZ))
            if self.noises and rng.random() >= self.config.colored_noise_share:
                rec = self.noises[int(rng.integers(len(self.noises)))]
                length = min(length, len(rec))
                start = int(rng.integers(0, len(rec) - length + 1))
                seg = rec[start:start + length]
            else:
                exp = rng.uniform(*COLORED_EXPONENT_RANGE, 1)
                seg = _colored_noise_batch(1, max(length, 2), exp, rng)[0][:length]
            rms = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))
            if rms > 0:
                out[pos:pos + length] = seg * np.float32(10 ** (rng.uniform(-3, 3) / 20) / rms)
            pos += length
        return out


def frame_targets(events: list[tuple[int, int, int]], frames: int, cfg,
                  features: FeatureParams) -> Targets:
    """Per-frame label, weight and keyword window of a stream's words (module docstring)."""
    hop, win = features.hop_samples, features.window_samples
    labels = np.full(frames, SILENCE, np.int32)
    weights = np.ones(frames, np.float32)
    window = np.full(frames, -1, np.int32)
    hold = int(round(cfg.hold_ms / features.hop_ms))
    lead = int(round(cfg.lead_ms / features.hop_ms))
    unk_mask = int(round(cfg.unknown_mask_ms / features.hop_ms))
    onsets = [_frame_seeing(on, hop, win) for _, on, _ in events] + [frames]
    for k, (label, onset, end) in enumerate(events):
        first = _frame_seeing(onset, hop, win)
        heard = _frame_seeing(end, hop, win)
        stop = min(heard + hold, onsets[k + 1], frames)
        if label > UNKNOWN:
            start = max(first, heard - lead)
            weights[first:start] = 0.0
            labels[start:stop] = label
            window[start:stop] = k
        else:
            weights[first:min(first + unk_mask, stop)] = 0.0
            labels[first:stop] = UNKNOWN
    return Targets(labels, weights, window)


def _frame_seeing(sample: int, hop: int, win: int) -> int:
    """First frame whose window reaches past `sample` (has heard everything before it)."""
    return max(0, -(-(sample - win) // hop))


def _played(word: Word, rate: float) -> tuple[np.ndarray, int]:
    """The word at `rate` times its speed (tempo and pitch, linear interpolation)."""
    if abs(rate - 1.0) < 1e-3:
        return word.audio, word.end
    n = max(2, int(len(word.audio) / rate))
    src = np.arange(n) * rate
    return (np.interp(src, np.arange(len(word.audio)), word.audio).astype(np.float32),
            min(n, int(word.end / rate)))


def _active_rms(x: np.ndarray) -> float:
    n = SAMPLE_RATE_HZ // 100
    frames = x[: len(x) // n * n].astype(np.float64).reshape(-1, n)
    if not len(frames):
        return 0.0
    power = (frames ** 2).mean(axis=1)
    active = power >= power.max() * 10 ** (-SPAN_DB / 10)
    return float(np.sqrt(power[active].mean())) if power.max() > 0 else 0.0
