"""State health of a bundle on hours of keyword-free audio heard as ONE stream.

The streaming model's one state is never reset on the device, so what matters is how it
behaves after hours: whether its int8 values pile up at the limits (-128 / 127, where the GRU
can no longer move them) and whether false accepts grow with time. The negative chunks of the
test suite are played back to back, the state carried from one to the next exactly as the
firmware would carry it; the device pipeline (features, int8 model, recognizer) runs them and
the state is read after every frame. Clip-mode bundles reset their states by design; for them
the report covers false accepts only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from kws.streams.build import NEGATIVE, build_negative_stream
from kws.streams.score import Decisions, recognize

INT8_LIMITS = (-128, 127)


@dataclass
class _Part:
    """Running sums over one part (e.g. a quarter) of the long stream."""

    seconds: float = 0.0
    false_accepts: int = 0
    state_values: int = 0
    at_limit: int = 0
    abs_sum: float = 0.0

    def as_dict(self) -> dict:
        hours = self.seconds / 3600
        return {"seconds": round(self.seconds, 1), "false_accepts": self.false_accepts,
                "fa_per_hour": round(self.false_accepts / hours, 3) if hours else None,
                "state_at_int8_limits": (round(self.at_limit / self.state_values, 6)
                                         if self.state_values else None),
                "state_mean_abs": (round(self.abs_sum / self.state_values, 3)
                                   if self.state_values else None)}


def per_frame_states(model, frames: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits [T, C], states [T, H]) of one step per frame from `state`: the state after
    every frame, as the device holds it between frames."""
    logits = np.zeros((len(frames), model.labels), np.int8)
    states = np.zeros((len(frames), model.state_size), np.int8)
    for t in range(len(frames)):
        logits[t:t + 1], state = model.run_sequence(frames[t:t + 1], state)
        states[t] = state
    return logits, states


def state_health(bundle, dataset, split: str, minutes: float, snrs_db: Sequence[float],
                 seed: int = 0, parts: int = 4, chunk_minutes: float = 10.0,
                 progress: Callable[[str], None] = lambda _m: None) -> dict:
    """False accepts per hour and int8 state statistics over `minutes` of keyword-free audio
    of `split` heard as one stream, overall and for each of `parts` equal stretches of time."""
    from kws.evaluation import backends
    from kws.recognize.recognizer import RecognizerConfig
    from kws.streams.tune import is_continuous

    manifest = bundle.manifest
    runner = backends.get("native", bundle).stream_runner()
    continuous = is_continuous(manifest)
    config = RecognizerConfig.from_manifest(manifest)
    hop_ms = manifest.features.hop_ms
    total_s = minutes * 60
    part_s = total_s / parts
    stats = [_Part() for _ in range(parts)]
    state = runner.model.reset_state()
    all_frames, all_logits = [], []
    done_s, i = 0.0, 0
    split_code = {"train": 0, "validation": 1, "test": 2}.get(split, 3)
    while total_s - done_s > 1e-6:
        length = min(chunk_minutes * 60, total_s - done_s)
        snr = snrs_db[i % len(snrs_db)]
        stream = build_negative_stream(dataset, split, length, 1000 * seed + 100 * split_code
                                       + 50 + i, snr, NEGATIVE)
        frames = runner.frames(stream.audio)
        if continuous:
            logits, states = per_frame_states(runner.model, frames, state)
            state = states[-1] if len(states) else state
            t_s = done_s + (np.arange(len(frames)) + 1) * hop_ms / 1000
            which = np.minimum((t_s / part_s).astype(int), parts - 1)
            for p in range(parts):
                rows = states[which == p]
                stats[p].state_values += rows.size
                stats[p].at_limit += int(np.isin(rows, INT8_LIMITS).sum())
                stats[p].abs_sum += float(np.abs(rows.astype(np.int32)).sum())
            all_logits.append(logits)
        all_frames.append(frames)
        done_s += stream.seconds
        i += 1
        progress(f"health: {done_s / 60:.0f} of {minutes:g} min of keyword-free {split} audio "
                 f"(SNR {snr:g} dB)")
    frames = np.concatenate(all_frames)
    if continuous:
        ends = np.array([end for end, _ in runner.schedule.decisions(len(frames))], np.int64)
        logits = np.concatenate(all_logits)[ends]
    else:  # clip mode: the device's staggered windows over the whole long stream
        ends, logits = runner.decision_logits(frames)
    times = np.array([runner.schedule.time_ms(int(e)) for e in ends], np.int64)
    detections = recognize(config, Decisions(times, logits))
    for _label, _score, t_ms in detections:
        stats[min(int(t_ms / 1000 / part_s), parts - 1)].false_accepts += 1
    seconds = len(frames) * hop_ms / 1000
    for p in range(parts):
        stats[p].seconds = min(part_s, max(0.0, seconds - p * part_s))
    whole = _Part(seconds, sum(s.false_accepts for s in stats), sum(s.state_values for s in stats),
                  sum(s.at_limit for s in stats), sum(s.abs_sum for s in stats))
    return {"split": split, "minutes": round(seconds / 60, 2), "one_state": continuous,
            "snrs_db": list(snrs_db), "whole": whole.as_dict(),
            "parts": [s.as_dict() for s in stats],
            "false_accept_labels": sorted({manifest.labels[d[0]] for d in detections})}
