"""Training streams: deterministic per seed, frame targets aligned with the word's end."""

import numpy as np
import pytest

from kws.model.sequences import SILENCE, UNKNOWN, StreamMaker, Word, frame_targets, word_bank
from kws.features.params import FeatureParams
from kws.model.config import StreamTrainConfig

FEATURES = FeatureParams()


def _burst(seconds=0.4, f0=800.0):
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def _bank():
    kw = Word(_burst(), label=2, end=int(0.4 * 16000))
    unk = Word(_burst(0.3, 2500.0), label=UNKNOWN, end=int(0.3 * 16000))
    return [kw, unk]


def test_same_seed_same_stream_and_other_seed_differs():
    maker = StreamMaker(_bank(), [np.random.default_rng(0).standard_normal(48000)],
                        StreamTrainConfig(), FEATURES)
    a = maker.make(300, np.random.default_rng(5))
    b = maker.make(300, np.random.default_rng(5))
    c = maker.make(300, np.random.default_rng(6))
    assert np.array_equal(a.features, b.features)
    assert np.array_equal(a.targets.labels, b.targets.labels)
    assert a.events == b.events
    assert not np.array_equal(a.features, c.features)
    assert a.features.shape == (300, FEATURES.mel_bands)


def test_keyword_target_starts_at_the_frame_that_heard_its_end():
    cfg = StreamTrainConfig(hold_ms=400, lead_ms=40, unknown_mask_ms=100)
    hop, win = FEATURES.hop_samples, FEATURES.window_samples
    onset, end = 16000, 16000 + 8000  # the word: 1.0 s .. 1.5 s
    t = frame_targets([(3, onset, end)], 200, cfg, FEATURES)
    heard = -(-(end - win) // hop)  # first frame whose window reaches the end of speech
    assert heard * hop + win >= end > (heard - 1) * hop + win
    first = -(-(onset - win) // hop)
    lead, hold = 2, 20
    assert (t.labels[heard - lead:heard + hold] == 3).all()
    assert t.labels[heard + hold] == SILENCE and t.labels[heard - lead - 1] == SILENCE
    assert (t.weights[first:heard - lead] == 0).all() and t.weights[heard - lead] == 1
    assert t.weights[first - 1] == 1
    assert set(np.unique(t.window)) == {-1, 0}


def test_hold_is_cut_at_the_next_onset_and_unknown_words_are_unknown():
    cfg = StreamTrainConfig(hold_ms=400, lead_ms=0, unknown_mask_ms=100)
    hop, win = FEATURES.hop_samples, FEATURES.window_samples
    t = frame_targets([(2, 8000, 12000), (UNKNOWN, 14000, 18000)], 100, cfg, FEATURES)
    next_on = -(-(14000 - win) // hop)
    assert t.labels[next_on - 1] == 2 and t.labels[next_on] == UNKNOWN
    assert (t.weights[next_on:next_on + 5] == 0).all()  # masked unknown onset (100 ms)
    heard = -(-(18000 - win) // hop)
    assert t.labels[heard + 19] == UNKNOWN and t.labels[heard + 20] == SILENCE


def test_stream_places_a_known_clip_where_its_event_says():
    cfg = StreamTrainConfig(keyword_share=1.0, unknown_share=0.0, speed_range=(1.0, 1.0),
                            snr_db=(60.0, 60.0), level_jitter_db=0.0)
    word = Word(_burst(), 4, int(0.4 * 16000))
    stream = StreamMaker([word], [], cfg, FEATURES).make(250, np.random.default_rng(1))
    assert stream.events, "a keyword-only stream must hold words"
    label, onset, end = stream.events[0]
    assert label == 4 and end - onset == word.end
    loud = stream.features.max(axis=1)
    first = -(-(onset - FEATURES.window_samples) // FEATURES.hop_samples)
    # the frames of the word are far louder than the 60 dB-down noise before it
    assert loud[first + 3] > loud[max(first - 3, 0)] + 5


def test_word_bank_cuts_clips_to_their_speech():
    audio = np.zeros((3, 16000), np.int16)
    audio[1, 4000:8000] = (_burst(0.25) * 32767).astype(np.int16)
    audio[2, 2000:6000] = (_burst(0.25) * 32767).astype(np.int16)
    words = word_bank(audio, np.array([SILENCE, 3, UNKNOWN]))
    assert [w.label for w in words] == [3, UNKNOWN]  # the silence clip is no word
    assert len(words[0].audio) == pytest.approx(4000 + 1600, abs=400)


def test_keyword_balance_draws_a_rare_keyword_as_often_as_a_common_one():
    common = [Word(_burst(), label=2, end=6400) for _ in range(9)]
    rare = [Word(_burst(0.4, 900.0), label=3, end=6400)]
    cfg = StreamTrainConfig(keyword_share=1.0, unknown_share=0.0, keyword_balance=True)
    maker = StreamMaker(common + rare, [], cfg, FEATURES)
    rng = np.random.default_rng(0)
    drawn = [maker._draw(maker.keywords, rng).label for _ in range(2000)]
    assert abs(drawn.count(3) / len(drawn) - 0.5) < 0.05
    plain = StreamMaker(common + rare, [], StreamTrainConfig(), FEATURES)
    drawn = [plain._draw(plain.keywords, rng).label for _ in range(2000)]
    assert abs(drawn.count(3) / len(drawn) - 0.1) < 0.03
