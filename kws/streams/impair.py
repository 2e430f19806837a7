"""Streaming under real conditions: audio blocks lost before they reach the firmware (a DMA
buffer dropped while the CPU was busy elsewhere) and microphone clock drift (the mic samples at
rate * (1 + ppm * 1e-6) while the firmware assumes the nominal rate).

Applied to a built stream before the device pipeline runs; the ground-truth event times move
with the audio, so a miss is a miss of the recognizer, not of the bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kws.streams.build import Event, Stream


@dataclass(frozen=True)
class Impairment:
    drop_block_prob: float = 0.0
    """Probability that one block of `block_samples` never reaches the firmware."""
    block_samples: int = 512
    drift_ppm: float = 0.0
    """Microphone clock error: +1000 ppm = the mic runs 0.1 % fast."""
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.drop_block_prob > 0 or self.drift_ppm != 0

    def describe(self) -> str:
        return (f"{self.drop_block_prob:.1%} of {self.block_samples}-sample blocks dropped, "
                f"mic clock {self.drift_ppm:+g} ppm")


def drift(audio: np.ndarray, ppm: float) -> np.ndarray:
    """The same sound recorded by a clock `ppm` fast: (1 + ppm/1e6) times as many samples."""
    if ppm == 0:
        return audio
    n = int(round(len(audio) * (1 + ppm * 1e-6)))
    positions = np.arange(n) * (len(audio) - 1) / max(n - 1, 1)
    return np.clip(np.rint(np.interp(positions, np.arange(len(audio)),
                                     audio.astype(np.float64))), -32768, 32767).astype(np.int16)


def drop_blocks(audio: np.ndarray, prob: float, block: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(audio without the dropped blocks, kept-sample count before each original block edge)."""
    blocks = -(-len(audio) // block)
    keep = rng.random(blocks) >= prob
    mask = np.repeat(keep, block)[:len(audio)]
    kept_before = np.concatenate([[0], np.cumsum(mask)])
    return audio[mask], kept_before


def _moved(t: float, rate: float, kept_before: np.ndarray | None, ppm: float) -> float:
    s = t * rate * (1 + ppm * 1e-6)
    if kept_before is not None:
        s = float(kept_before[min(int(s), len(kept_before) - 1)])
    return s / rate


def apply(stream: Stream, imp: Impairment) -> Stream:
    if not imp.active:
        return stream
    rng = np.random.default_rng(imp.seed * 7919 + stream.seed)
    audio = drift(stream.audio, imp.drift_ppm)
    kept = None
    if imp.drop_block_prob > 0:
        audio, kept = drop_blocks(audio, imp.drop_block_prob, imp.block_samples, rng)
    rate = stream.sample_rate_hz

    def move(events: list[Event]) -> list[Event]:
        return [(w, _moved(a, rate, kept, imp.drift_ppm), _moved(b, rate, kept, imp.drift_ppm))
                for w, a, b in events]

    return replace(stream, audio=audio, events=move(stream.events), fillers=move(stream.fillers))
