"""Streaming decisions in integers: the exact Python mirror of firmware_templates/core/
kws_recognizer.c.

Why integers: the recognizer decides what the device reports, so the host must be able to
predict every detection, bit for bit. Float softmax would differ between glibc and newlib (and
with/without an FPU on the M0+); a 256-entry exp table plus integer division does not.

Per decision (int8 logits q[L], logits scale s, time t_ms):
- softmax: m = max(q); E[d] = round(65535 * exp(-s * d)) for d = m - q_i in 0..255 (the
  logits zero point cancels out); p_i = (E[m - q_i] << 15) // sum_j E[m - q_j]  (Q15).
- average: the last N posterior vectors in a ring, per-label running sums; avg = sum // count.
- fire: the keyword (label not starting with `_`) with the highest avg (lowest index on ties)
  fires when avg >= threshold_q15, count >= min_count, and the last detection is at least
  suppression_ms old (uint32 arithmetic, so it survives the 49-day wrap of t_ms).

`RecognizerConfig` holds every prepared number (what csources renders into C);
`Recognizer` runs the same arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kws.errors import KwsError
from kws.recognize.schedule import UINT32_MASK, Schedule

Q15_ONE = 1 << 15
EXP_ONE = 65535
MAX_WINDOW = 65535  # N * 32768 per-label sums must fit uint32
MAX_LABELS = 32767  # L * 65535 exp sums must fit uint32; label indices fit an int


def round_half_up(x: float) -> int:
    """The rounding every prepared constant uses (Python's round() is half-to-even)."""
    return math.floor(x + 0.5)


def is_keyword(label: str) -> bool:
    """Labels starting with `_` (`_silence_`, `_unknown_`) are classes, never detections."""
    return not label.startswith("_")


def exp_table(logits_scale: float) -> tuple[int, ...]:
    """E[d] = round(65535 * exp(-scale * d)) for d = 0..255, computed in float64."""
    if not logits_scale > 0 or not math.isfinite(logits_scale):
        raise KwsError(f"logits scale {logits_scale} must be a positive finite number")
    return tuple(round_half_up(EXP_ONE * math.exp(-logits_scale * d)) for d in range(256))


def window_decisions(average_window_ms: float, decision_period_ms: float) -> int:
    """N: how many decisions the average spans, max(1, round(window / period))."""
    if not decision_period_ms > 0:
        raise KwsError(f"decision period {decision_period_ms} ms must be positive")
    return max(1, round_half_up(average_window_ms / decision_period_ms))


@dataclass(frozen=True)
class RecognizerConfig:
    """Every number the C recognizer is rendered from, prepared once in Python."""

    labels: tuple[str, ...]
    keyword: tuple[bool, ...]
    exp_table: tuple[int, ...]
    window: int
    threshold_q15: int
    suppression_ms: int
    min_count: int
    logits_scale: float
    decision_period_ms: float | None = None

    @classmethod
    def build(cls, labels: Sequence[str], logits_scale: float, window: int, threshold: float,
              suppression_ms: int, minimum_count: int,
              decision_period_ms: float | None = None) -> "RecognizerConfig":
        labels = tuple(labels)
        if not 1 <= len(labels) <= MAX_LABELS:
            raise KwsError(f"recognizer: {len(labels)} labels; expected 1..{MAX_LABELS}")
        if not 1 <= window <= MAX_WINDOW:
            raise KwsError(f"recognizer: averaging window of {window} decisions; expected "
                           f"1..{MAX_WINDOW}")
        if not 0 < threshold <= 1:
            raise KwsError(f"recognizer: threshold {threshold} must be in (0, 1]")
        if not 0 <= suppression_ms <= UINT32_MASK:
            raise KwsError(f"recognizer: suppression_ms {suppression_ms} does not fit uint32")
        if minimum_count < 1:
            raise KwsError(f"recognizer: minimum_count {minimum_count} must be >= 1")
        return cls(
            labels=labels,
            keyword=tuple(is_keyword(lb) for lb in labels),
            exp_table=exp_table(logits_scale),
            window=int(window),
            threshold_q15=round_half_up(threshold * Q15_ONE),
            suppression_ms=int(suppression_ms),
            # a count the ring can never reach would silence the recognizer for good
            min_count=min(int(minimum_count), int(window)),
            logits_scale=float(logits_scale),
            decision_period_ms=decision_period_ms,
        )

    @classmethod
    def from_manifest(cls, manifest) -> "RecognizerConfig":
        period = Schedule.from_manifest(manifest).decision_period_ms
        rp = manifest.recognizer
        return cls.build(manifest.labels, manifest.logits_quant.scale,
                         window_decisions(rp.average_window_ms, period), rp.threshold,
                         rp.suppression_ms, rp.minimum_count, decision_period_ms=period)


class Recognizer:
    """The C recognizer's state machine; `push` returns (label index, score_q15) or None."""

    def __init__(self, config: RecognizerConfig):
        self.config = config
        self._exp = np.array(config.exp_table, np.int64)
        self._keywords = np.flatnonzero(config.keyword)
        self.reset()

    @classmethod
    def from_manifest(cls, manifest) -> "Recognizer":
        return cls(RecognizerConfig.from_manifest(manifest))

    def reset(self) -> None:
        n, labels = self.config.window, len(self.config.labels)
        self._ring = np.zeros((n, labels), np.int64)
        self._sums = np.zeros(labels, np.int64)
        self._next = 0
        self.count = 0
        self.last_detection_ms: int | None = None

    def posteriors(self, logits: np.ndarray) -> np.ndarray:
        """Q15 softmax of int8 logits (int64 array; 32768 = 1.0)."""
        q = np.asarray(logits)
        if q.dtype != np.int8 or q.shape != (len(self.config.labels),):
            raise KwsError(f"logits must be int8 of shape ({len(self.config.labels)},), got "
                           f"{q.dtype} {q.shape}")
        q = q.astype(np.int64)
        e = self._exp[q.max() - q]
        return (e << 15) // e.sum()

    def push(self, logits: np.ndarray, t_ms: int) -> tuple[int, int] | None:
        cfg = self.config
        t_ms = int(t_ms) & UINT32_MASK
        p = self.posteriors(logits)
        if self.count == cfg.window:
            self._sums -= self._ring[self._next]
        else:
            self.count += 1
        self._ring[self._next] = p
        self._sums += p
        self._next = (self._next + 1) % cfg.window
        if not len(self._keywords):
            return None
        avg = self._sums[self._keywords] // self.count
        best = int(np.argmax(avg))  # first maximum = lowest label index on ties
        label, score = int(self._keywords[best]), int(avg[best])
        if score < cfg.threshold_q15 or self.count < cfg.min_count:
            return None
        if (self.last_detection_ms is not None
                and ((t_ms - self.last_detection_ms) & UINT32_MASK) < cfg.suppression_ms):
            return None
        self.last_detection_ms = t_ms
        return label, score
