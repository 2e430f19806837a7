"""Impairments: dropped blocks remove exactly those samples and move later events back; clock
drift stretches audio and event times by the same factor."""

import numpy as np

from kws.streams.build import Stream
from kws.streams.impair import Impairment, apply, drift, drop_blocks


def stream(seconds=10.0):
    audio = (np.arange(int(seconds * 16000)) % 30000).astype(np.int16)
    return Stream(audio=audio, events=[("yes", 2.0, 3.0), ("no", 8.0, 9.0)], split="test",
                  seed=1, snr_db=20.0, fillers=[("_unknown_", 5.0, 6.0)])


def test_no_impairment_is_identity():
    s = stream()
    assert apply(s, Impairment()) is s


def test_dropped_blocks_remove_whole_blocks_and_shift_events():
    audio = np.arange(16000 * 4, dtype=np.int64).astype(np.int16)
    kept, before = drop_blocks(audio, 0.25, 512, np.random.default_rng(0))
    dropped = len(audio) - len(kept)
    assert dropped % 512 == 0 and 0 < dropped < len(audio)
    assert before[-1] == len(kept)
    s = apply(stream(), Impairment(drop_block_prob=0.2, seed=3))
    assert len(s.audio) < 160000
    (_, a1, b1), (_, a2, b2) = s.events
    assert a1 <= 2.0 and a2 <= 8.0 and a2 - a1 <= 6.0 and b2 <= 9.0
    assert s.fillers[0][1] <= 5.0


def test_drift_scales_length_and_times():
    a = np.sin(np.arange(16000) / 10).astype(np.float64) * 10000
    stretched = drift(a.astype(np.int16), 1000)
    assert len(stretched) == 16016
    s = apply(stream(), Impairment(drift_ppm=-2000))
    assert len(s.audio) == round(160000 * (1 - 0.002))
    assert abs(s.events[1][1] - 8.0 * (1 - 0.002)) < 1e-3
