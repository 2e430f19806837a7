"""Streaming: any chunking of the input yields the same frames, as many as the reference."""

import numpy as np
import pytest

from kws.features import reference
from kws.features.params import FeatureParams
from tests.features.conftest import SR

P = FeatureParams()


@pytest.fixture(scope="module")
def audio():
    rng = np.random.default_rng(7)
    return (rng.standard_normal(SR + 333) * 2000).astype(np.int16)


@pytest.mark.parametrize("chunks", [[1], [7], [319, 321], [333], [1000, 1, 13], [P.hop_samples], [SR + 333]])
def test_odd_chunk_sizes_give_identical_frames(cfeat, audio, chunks):
    whole = cfeat.log_mel(audio)
    chunked = cfeat.log_mel_chunked(audio, chunks)
    assert chunked.shape == whole.shape == (P.frames_for(len(audio)), P.mel_bands)
    assert np.array_equal(whole, chunked)


@pytest.mark.parametrize("n", [0, 1, 479, 480, 481, 799, 800, 16000, 16160, 16333])
def test_frame_count_matches_reference(cfeat, n):
    x = np.random.default_rng(n).integers(-3000, 3000, n).astype(np.int16)
    assert len(cfeat.log_mel(x)) == P.frames_for(n) == len(reference.log_mel(x, P))


def test_push_hop_emits_one_frame_per_hop_after_the_first_window(cfeat, audio):
    cfeat.reset()
    hop = P.hop_samples
    emitted = [cfeat.push_hop(audio[i : i + hop]) for i in range(0, 20 * hop, hop)]
    assert [e is not None for e in emitted[:3]] == [False, True, True]
    frames = np.stack([e for e in emitted if e is not None])
    assert np.array_equal(frames, cfeat.log_mel(audio[: 20 * hop]))


def test_state_carries_across_clips_until_reset(cfeat, audio):
    cfeat.reset()
    first = cfeat.feed(audio[:8000])
    second = cfeat.feed(audio[8000:16000])
    assert np.array_equal(np.concatenate([first, second]), cfeat.log_mel(audio[:16000]))
