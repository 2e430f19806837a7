"""Detections on a stream vs its ground truth: FRR per keyword and false accepts per hour.

The matching rule (`match`): a detection of keyword w at time t hits an event (w, start, end)
when start <= t <= end + tolerance (default 1.0 s: the device decides at the end of a 1 s
window, so a word is reported up to about a window after it ends). Each event takes at most one
detection and each detection hits at most one event; detections are taken in time order and
each goes to the eligible unmatched event that expires first (which maximizes the matches).
- A missed event: no detection hit it (a wrong-keyword detection does not hit it).
- A false accept: a detection that hits no event: a keyword in a keyword-free stretch, the
  wrong keyword, or a second detection of an already matched word.
FRR(w) = missed events of w / events of w; FA/h = false accepts / hours of audio. Headline
figures are over all audio (keyword streams + negative streams); both parts are kept.

For sweeps the recognizer is re-run many times on fixed decisions, so this module holds an
exact vectorized copy of `kws.recognize.recognizer.Recognizer`: posteriors and running averages
depend only on the averaging window, so they are computed once per window; a threshold,
minimum count and suppression then only filter candidates (tests check it against Recognizer).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kws.errors import KwsError
from kws.recognize.recognizer import RecognizerConfig

TOLERANCE_S = 1.0

Event = tuple[str, float, float]
"""(label, start_s, end_s)"""
Detection = tuple[str, float]
"""(label, t_s)"""


@dataclass
class Match:
    hits: list[tuple[int, int]] = field(default_factory=list)
    """(event index, detection index)"""
    missed: list[int] = field(default_factory=list)
    """event indices no detection hit"""
    false: list[int] = field(default_factory=list)
    """detection indices that hit no event"""


def match(events: Sequence[Event], detections: Sequence[Detection],
          tolerance_s: float = TOLERANCE_S) -> Match:
    """Pair detections with events by the rule in the module docstring."""
    if tolerance_s < 0:
        raise KwsError(f"tolerance {tolerance_s} s must not be negative")
    by_label: dict[str, list[int]] = {}
    for i, (label, start, end) in enumerate(events):
        if end < start:
            raise KwsError(f"event {i} ({label}) ends at {end} s before it starts at {start} s")
        by_label.setdefault(label, []).append(i)
    # per label, events by start; a window [start, end + tol] is eligible for t when
    # start <= t (a prefix) and end + tol >= t; the earliest-expiring eligible event wins
    index = {w: sorted(ix, key=lambda i: (events[i][1], events[i][2])) for w, ix in by_label.items()}
    starts = {w: [events[i][1] for i in ix] for w, ix in index.items()}
    span = {w: max(events[i][2] - events[i][1] for i in ix) for w, ix in index.items()}
    taken = [False] * len(events)
    result = Match()
    for d in sorted(range(len(detections)), key=lambda j: (detections[j][1], j)):
        label, t = detections[d]
        best = None
        ix = index.get(label, ())
        for k in range(bisect.bisect_right(starts.get(label, ()), t) - 1, -1, -1):
            i = ix[k]
            _, start, end = events[i]
            if start + span[label] + tolerance_s < t:
                break  # this event and every earlier-starting one has expired
            if taken[i] or end + tolerance_s < t:
                continue
            if best is None or end < events[best][2]:
                best = i
        if best is None:
            result.false.append(d)
        else:
            taken[best] = True
            result.hits.append((best, d))
    result.missed = [i for i, hit in enumerate(taken) if not hit]
    return result


@dataclass
class Tally:
    """Events, misses and false accepts summed over streams (keyword and negative)."""

    keywords: tuple[str, ...]
    events: dict[str, int] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    false_keyword_streams: dict[str, int] = field(default_factory=dict)
    """false accepts per detected label, on streams that hold keywords"""
    false_negative: dict[str, int] = field(default_factory=dict)
    """false accepts per detected label, on keyword-free streams"""
    seconds_keyword_streams: float = 0.0
    seconds_negative: float = 0.0

    def __post_init__(self):
        for table in (self.events, self.missed, self.false_keyword_streams, self.false_negative):
            for w in self.keywords:
                table.setdefault(w, 0)

    def add(self, kind: str, seconds: float, events: Sequence[Event],
            detections: Sequence[Detection], tolerance_s: float = TOLERANCE_S) -> Match:
        m = match(events, detections, tolerance_s)
        for label, _, _ in events:
            self.events[label] = self.events.get(label, 0) + 1
        for i in m.missed:
            label = events[i][0]
            self.missed[label] = self.missed.get(label, 0) + 1
        table = self.false_negative if kind == "negative" else self.false_keyword_streams
        for d in m.false:
            label = detections[d][0]
            table[label] = table.get(label, 0) + 1
        if kind == "negative":
            self.seconds_negative += seconds
        else:
            self.seconds_keyword_streams += seconds
        return m

    @property
    def hours(self) -> float:
        return (self.seconds_keyword_streams + self.seconds_negative) / 3600

    def frr(self, label: str | None = None) -> float:
        """Missed / events for one keyword, or pooled over all keywords (None)."""
        labels = [label] if label else list(self.keywords)
        n = sum(self.events.get(w, 0) for w in labels)
        return sum(self.missed.get(w, 0) for w in labels) / n if n else float("nan")

    def false_accepts(self, part: str = "all", label: str | None = None) -> int:
        tables = {"all": (self.false_keyword_streams, self.false_negative),
                  "keywords": (self.false_keyword_streams,),
                  "negative": (self.false_negative,)}[part]
        return sum(v for t in tables for w, v in t.items() if label is None or w == label)

    def fa_per_hour(self, part: str = "all", label: str | None = None) -> float:
        seconds = {"all": self.seconds_keyword_streams + self.seconds_negative,
                   "keywords": self.seconds_keyword_streams,
                   "negative": self.seconds_negative}[part]
        return self.false_accepts(part, label) / (seconds / 3600) if seconds else float("nan")

    def as_dict(self) -> dict:
        def num(x: float) -> float | None:
            return None if x != x else round(x, 4)

        return {
            "frr": num(self.frr()),
            "fa_per_hour": num(self.fa_per_hour()),
            "fa_per_hour_negative": num(self.fa_per_hour("negative")),
            "fa_per_hour_keyword_streams": num(self.fa_per_hour("keywords")),
            "false_accepts": self.false_accepts(),
            "false_accepts_negative": self.false_accepts("negative"),
            "events": sum(self.events.get(w, 0) for w in self.keywords),
            "missed": sum(self.missed.get(w, 0) for w in self.keywords),
            "hours": round(self.hours, 4),
            "hours_negative": round(self.seconds_negative / 3600, 4),
            "max_keyword_frr": num(max((self.frr(w) for w in self.keywords
                                        if self.events.get(w)), default=float("nan"))),
            "per_keyword": {
                w: {"events": self.events.get(w, 0), "missed": self.missed.get(w, 0),
                    "frr": num(self.frr(w)), "false_accepts": self.false_accepts("all", w),
                    "fa_per_hour": num(self.fa_per_hour("all", w))}
                for w in self.keywords
            },
        }


# ---------------------------------------------------------------- exact vectorized recognizer

@dataclass
class Decisions:
    """What the recognizer sees on one stream: decision times and int8 logits."""

    t_ms: np.ndarray
    """int64 [D]"""
    logits: np.ndarray
    """int8 [D, L]"""

    def __post_init__(self):
        self.t_ms = np.asarray(self.t_ms, np.int64).reshape(-1)
        self.logits = np.asarray(self.logits)
        if self.logits.dtype != np.int8 or self.logits.ndim != 2 \
                or len(self.logits) != len(self.t_ms):
            raise KwsError(f"decisions: need int8 logits [D, L] for {len(self.t_ms)} times, got "
                           f"{self.logits.dtype} {self.logits.shape}")


@dataclass
class Averaged:
    """Per decision: the best keyword's averaged posterior (Q15) and the ring's fill count."""

    t_ms: np.ndarray
    label: np.ndarray
    score: np.ndarray
    count: np.ndarray


def average(config: RecognizerConfig, decisions: Decisions) -> Averaged:
    """Everything of Recognizer.push that does not depend on threshold, count or suppression."""
    q = decisions.logits.astype(np.int64)
    d = len(q)
    keywords = np.flatnonzero(config.keyword)
    if q.shape[1:] != (len(config.labels),):
        raise KwsError(f"decisions have {q.shape[1:]} logits, the recognizer {len(config.labels)}")
    if d == 0 or not len(keywords):
        empty = np.zeros(0, np.int64)
        return Averaged(decisions.t_ms[:0], empty, empty, empty)
    e = np.asarray(config.exp_table, np.int64)[q.max(axis=1, keepdims=True) - q]
    p = (e << 15) // e.sum(axis=1, keepdims=True)
    cs = np.concatenate([np.zeros((1, p.shape[1]), np.int64), np.cumsum(p, axis=0)])
    idx = np.arange(d)
    lo = np.maximum(0, idx + 1 - config.window)
    count = idx + 1 - lo
    avg = (cs[idx + 1] - cs[lo])[:, keywords] // count[:, None]
    best = np.argmax(avg, axis=1)  # first maximum = lowest label index, as the C core
    return Averaged(decisions.t_ms, keywords[best], avg[idx, best], count)


def fire(avg: Averaged, threshold_q15: int, min_count: int,
         suppression_ms: int) -> list[tuple[int, int, int]]:
    """(label index, score_q15, t_ms) of every detection, as Recognizer.push would give."""
    cand = np.flatnonzero((avg.score >= threshold_q15) & (avg.count >= min_count))
    out = []
    last = None
    t_all = avg.t_ms
    for i in cand.tolist():
        t = int(t_all[i])
        if last is not None and ((t - last) & 0xFFFFFFFF) < suppression_ms:
            continue
        last = t
        out.append((int(avg.label[i]), int(avg.score[i]), t))
    return out


def recognize(config: RecognizerConfig, decisions: Decisions) -> list[tuple[int, int, int]]:
    """Recognizer(config) pushed every decision in order, from a fresh state."""
    return fire(average(config, decisions), config.threshold_q15, config.min_count,
                config.suppression_ms)


# ---------------------------------------------------------------------------- streams, sweeps

@dataclass
class StreamRun:
    """One stream's ground truth and the decisions a device makes on it."""

    name: str
    kind: str
    seconds: float
    events: list[Event]
    decisions: Decisions
    snr_db: float | None = None
    fillers: list[Event] = field(default_factory=list)
    """`_unknown_` words placed in the stream (never to be detected)"""


def named(labels: Sequence[str], detections: Sequence[tuple[int, int, int]]) -> list[Detection]:
    return [(labels[i], t / 1000) for i, _, t in detections]


def tally(runs: Sequence[StreamRun], config: RecognizerConfig,
          tolerance_s: float = TOLERANCE_S) -> Tally:
    """Score the recognizer `config` on every stream."""
    keywords = tuple(w for w, k in zip(config.labels, config.keyword) if k)
    out = Tally(keywords)
    for run in runs:
        out.add(run.kind, run.seconds, run.events,
                named(config.labels, recognize(config, run.decisions)), tolerance_s)
    return out


DEFAULT_THRESHOLDS = tuple(round(x, 4) for x in (*np.arange(0.30, 0.9801, 0.005),
                                                 *np.arange(0.981, 0.99951, 0.001)))


@dataclass
class SweepPoint:
    threshold: float
    tally: Tally


def sweep(runs: Sequence[StreamRun], config: RecognizerConfig,
          thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
          tolerance_s: float = TOLERANCE_S) -> list[SweepPoint]:
    """`config` with each threshold in turn (window, count and suppression as in `config`)."""
    keywords = tuple(w for w, k in zip(config.labels, config.keyword) if k)
    averaged = [average(config, run.decisions) for run in runs]
    points = []
    for thr in thresholds:
        q15 = RecognizerConfig.build(config.labels, config.logits_scale, config.window, thr,
                                     config.suppression_ms, config.min_count).threshold_q15
        t = Tally(keywords)
        for run, avg in zip(runs, averaged):
            dets = fire(avg, q15, config.min_count, config.suppression_ms)
            t.add(run.kind, run.seconds, run.events, named(config.labels, dets), tolerance_s)
        points.append(SweepPoint(float(thr), t))
    return points


def curve(points: Sequence[SweepPoint], label: str | None = None,
          part: str = "all") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, FA/h, FRR) of a sweep, for one keyword or pooled (None)."""
    thr = np.array([p.threshold for p in points])
    fa = np.array([p.tally.fa_per_hour(part, label) for p in points])
    frr = np.array([p.tally.frr(label) for p in points])
    return thr, fa, frr


def best_under(points: Sequence[SweepPoint], max_fa_per_hour: float) -> SweepPoint | None:
    """The sweep point with the lowest pooled FRR at FA/h (all audio) <= the limit."""
    ok = [p for p in points if p.tally.fa_per_hour() <= max_fa_per_hour]
    if not ok:
        return None
    return min(ok, key=lambda p: (p.tally.frr(), p.tally.fa_per_hour(), -p.threshold))


def _near(spans: Sequence[Event], t: float, tolerance_s: float) -> bool:
    return any(start <= t <= end + tolerance_s for _, start, end in spans)


def false_accept_causes(runs: Sequence[StreamRun], config: RecognizerConfig,
                        tolerance_s: float = TOLERANCE_S) -> dict[str, int]:
    """What each false accept at `config` was heard over, by the hit rule's time span:
    `keyword` (a wrong keyword or a repeat detection of a word), `unknown_word` (an `_unknown_`
    word), or `background` (noise or silence only). Tells whether false accepts call for a
    better keyword/unknown separation or for more noise robustness."""
    causes = {"keyword": 0, "unknown_word": 0, "background": 0}
    for run in runs:
        detections = named(config.labels, recognize(config, run.decisions))
        for d in match(run.events, detections, tolerance_s).false:
            t = detections[d][1]
            cause = ("keyword" if _near(run.events, t, tolerance_s) else
                     "unknown_word" if _near(run.fillers, t, tolerance_s) else "background")
            causes[cause] += 1
    return causes
