"""Scoring rule, FRR / FA-per-hour, the vectorized recognizer, tuning choice, apply, plot."""

import json

import numpy as np
import pytest

from kws.errors import KwsError
from kws.recognize.recognizer import Recognizer, RecognizerConfig
from kws.streams.score import (
    Decisions, StreamRun, Tally, best_under, curve, false_accept_causes, match, recognize,
    sweep, tally,
)
from kws.streams.tune import GridRow, Setting, apply_tuning, canonical_windows, cost, pick

LABELS = ("_silence_", "_unknown_", "yes", "no")


def test_match_hits_misses_and_false_accepts():
    events = [("yes", 1.0, 2.0), ("no", 5.0, 6.0), ("yes", 10.0, 11.0)]
    detections = [("yes", 2.9), ("no", 4.9), ("yes", 30.0)]
    m = match(events, detections, tolerance_s=1.0)
    assert m.hits == [(0, 0)]
    assert m.missed == [1, 2]
    assert m.false == [1, 2]  # "no" before its word started; "yes" in nothing


def test_tolerance_rule_edges():
    events = [("yes", 1.0, 2.0)]
    assert match(events, [("yes", 1.0)]).hits == [(0, 0)]   # at the start
    assert match(events, [("yes", 3.0)]).hits == [(0, 0)]   # at end + tolerance
    assert match(events, [("yes", 3.01)]).false == [0]
    assert match(events, [("yes", 0.99)]).false == [0]
    assert match(events, [("yes", 2.4)], tolerance_s=0.5).hits == [(0, 0)]
    assert match(events, [("yes", 2.6)], tolerance_s=0.5).false == [0]
    with pytest.raises(KwsError):
        match(events, [], tolerance_s=-1)


def test_one_detection_cannot_hit_two_events():
    events = [("yes", 0.0, 1.0), ("yes", 1.5, 2.5)]  # windows [0, 2] and [1.5, 3.5] overlap
    m = match(events, [("yes", 1.8)])
    assert len(m.hits) == 1 and len(m.missed) == 1 and not m.false
    assert m.hits == [(0, 0)]  # the event that expires first takes it
    m2 = match(events, [("yes", 1.8), ("yes", 1.9)])
    assert sorted(m2.hits) == [(0, 0), (1, 1)] and not m2.missed


def test_duplicate_and_wrong_keyword_detections():
    events = [("yes", 1.0, 2.0)]
    m = match(events, [("yes", 1.5), ("yes", 2.5)])
    assert m.hits == [(0, 0)] and m.false == [1]  # the second report is a false accept
    m = match(events, [("no", 1.5)])
    assert m.missed == [0] and m.false == [0]      # wrong word: a miss and a false accept


def test_tally_frr_and_fa_per_hour():
    t = Tally(("yes", "no"))
    events = [("yes", 1.0, 2.0), ("yes", 5.0, 6.0), ("no", 9.0, 10.0), ("no", 13.0, 14.0)]
    t.add("keywords", 1800.0, events, [("yes", 2.0), ("no", 9.5), ("yes", 9.6)])
    t.add("negative", 5400.0, [], [("no", 100.0), ("no", 200.0), ("yes", 300.0)])
    assert t.frr("yes") == 0.5 and t.frr("no") == 0.5 and t.frr() == 0.5
    assert t.false_accepts() == 4 and t.false_accepts("negative") == 3
    assert t.hours == 2.0
    assert t.fa_per_hour() == 2.0                 # 4 over 2 h
    assert t.fa_per_hour("negative") == 2.0       # 3 over 1.5 h
    assert t.fa_per_hour("keywords") == 2.0       # 1 over 0.5 h
    assert t.fa_per_hour("all", "no") == 1.0
    d = t.as_dict()
    assert d["events"] == 4 and d["missed"] == 2 and d["per_keyword"]["no"]["false_accepts"] == 2
    json.dumps(d)


def _decisions(rng, n=400):
    """Logits with keyword bursts so every recognizer setting fires sometimes."""
    q = rng.integers(-128, 20, size=(n, len(LABELS)))
    for start in range(10, n, 37):
        q[start:start + 6, 2 + (start // 37) % 2] = rng.integers(60, 127, size=6)
    t = np.cumsum(rng.integers(200, 300, size=n))
    return Decisions(t, q.astype(np.int8))


@pytest.mark.parametrize("window,threshold,suppression,count",
                         [(1, 0.5, 0, 1), (3, 0.7, 1000, 3), (4, 0.4, 500, 2), (2, 0.9, 1500, 5)])
def test_vectorized_recognizer_equals_recognizer(window, threshold, suppression, count):
    d = _decisions(np.random.default_rng(window))
    cfg = RecognizerConfig.build(LABELS, 0.05, window, threshold, suppression, count)
    rec = Recognizer(cfg)
    expected = []
    for t, row in zip(d.t_ms, d.logits):
        fired = rec.push(row, int(t))
        if fired is not None:
            expected.append((fired[0], fired[1], int(t)))
    assert expected and recognize(cfg, d) == expected


def test_sweep_is_monotone_in_threshold_and_matches_tally():
    rng = np.random.default_rng(5)
    d = _decisions(rng)
    events = [("yes" if (s // 37) % 2 == 0 else "no", d.t_ms[s] / 1000 - 0.5,
               d.t_ms[s] / 1000 + 0.3) for s in range(10, 400, 37)]
    runs = [StreamRun("k", "keywords", 120.0, events, d),
            StreamRun("n", "negative", 3600.0, [], _decisions(rng))]
    cfg = RecognizerConfig.build(LABELS, 0.05, 2, 0.5, 1000, 1)
    points = sweep(runs, cfg, thresholds=(0.3, 0.6, 0.9))
    thr, fa, frr = curve(points)
    assert list(thr) == [0.3, 0.6, 0.9]
    assert fa[0] >= fa[-1]
    assert points[1].tally.as_dict() == tally(runs, RecognizerConfig.build(
        LABELS, 0.05, 2, 0.6, 1000, 1)).as_dict()
    best = best_under(points, 1e9)
    assert best.tally.frr() == min(frr)


def _row(k, thr, frr, fa):
    return GridRow(Setting(k, 500, 2, thr, 1000, 2), frr, fa)


def test_pick_lowest_frr_under_the_fa_limit():
    rows = [_row(1, 0.5, 0.05, 8.0),   # best FRR but too many false accepts
            _row(2, 0.6, 0.20, 1.9),
            _row(4, 0.7, 0.12, 2.0),   # at the limit counts
            _row(3, 0.8, 0.12, 0.5),   # same FRR, fewer FA: wins
            _row(1, 0.9, 0.40, 0.0)]
    chosen, ok = pick(rows, 2.0)
    assert ok and chosen.setting.resets == 3
    tie = [_row(4, 0.7, 0.1, 1.0), _row(2, 0.7, 0.1, 1.0)]
    assert pick(tie, 2.0)[0].setting.resets == 2  # same figures: the cheaper K
    none, ok = pick([_row(1, 0.5, 0.1, 9.0), _row(2, 0.9, 0.6, 3.0)], 2.0)
    assert not ok and none.fa_per_hour == 3.0     # missed: the fewest false accepts


def test_canonical_windows_map_back():
    from kws.recognize.recognizer import window_decisions

    period = 980 / 3
    wins = canonical_windows(3, period, (250, 500, 750, 1000, 1500))
    assert all(window_decisions(ms, period) == n for n, ms in wins.items())
    assert len(set(wins)) == len(wins)


def _manifest(tmp_path):
    from kws.export.manifest import Manifest, Quant, StateSpec, StreamingSpec, write_manifest
    from kws.features.params import FeatureParams

    m = Manifest(generator="test", labels=LABELS, features=FeatureParams(),
                 input_quant=Quant(scale=0.1, zero_point=0),
                 state=StateSpec(size=8, layers=1, units=8, quant=Quant(scale=1 / 128, zero_point=0)),
                 logits_quant=Quant(scale=0.05, zero_point=0),
                 streaming=StreamingSpec(clip_frames=49, resets=1), ops=("ADD",), arena_bytes=1,
                 tflite_bytes=1, model_sha256="ab" * 32, params=1, macs_per_step=1)
    write_manifest(m, tmp_path / "manifest.json")
    return m


def test_apply_tuning_rewrites_recognizer_and_resets(tmp_path):
    from kws.export.manifest import read_manifest

    before = _manifest(tmp_path)
    result = {"model_sha256": "ab" * 32, "chosen": {"resets": 4, "recognizer": {
        "average_window_ms": 735, "threshold": 0.62, "suppression_ms": 1500, "minimum_count": 2}}}
    apply_tuning(tmp_path, result)
    after = read_manifest(tmp_path / "manifest.json")
    assert after.streaming.resets == 4 and after.recognizer.threshold == 0.62
    assert after.recognizer.average_window_ms == 735 and after.labels == before.labels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]  # no temp left
    with pytest.raises(KwsError, match="tuning result is for model"):
        apply_tuning(tmp_path, {**result, "model_sha256": "cd" * 32})
    bad = {**result, "chosen": {"resets": 4, "recognizer": {**result["chosen"]["recognizer"],
                                                             "threshold": 1.5}}}
    with pytest.raises(KwsError, match="do not validate"):
        apply_tuning(tmp_path, bad)
    assert read_manifest(tmp_path / "manifest.json").recognizer.threshold == 0.62


def test_roc_png(tmp_path):
    from kws.report.roc import roc_png

    curves = {"yes": ([0.0, 1.0, 5.0], [0.5, 0.2, 0.1]), "no": ([0.0, 0.5, 3.0], [0.6, 0.3, 0.05]),
              "all keywords": ([0.0, 1.5, 8.0], [0.55, 0.25, 0.08])}
    path = roc_png(curves, tmp_path / "roc.png", "test", hours=2.0, operating_point=(1.5, 0.25))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_recommendation_refuses_a_useless_operating_point():
    from kws.streams.tune import _recommendation

    def t(missed, fa):
        out = Tally(("yes",))
        events = [("yes", 10.0 * i, 10.0 * i + 1) for i in range(10)]
        hits = [("yes", 10.0 * i + 0.5) for i in range(10 - missed)]
        out.add("keywords", 3600.0, events, hits + [("yes", 5.0 + 10 * i) for i in range(fa)])
        return out

    a, b = Setting(4, 500, 2, 0.9, 500, 1), Setting(1, 600, 1, 0.7, 1000, 3)
    assert _recommendation(True, t(1, 1), t(2, 50), 2.0, a, b)[0]
    assert not _recommendation(True, t(9, 1), t(5, 50), 2.0, a, b)[0]   # meets FA, FRR 90 %
    assert not _recommendation(False, t(1, 1), t(2, 50), 2.0, a, b)[0]
    assert not _recommendation(True, t(1, 9), t(2, 50), 2.0, a, b)[0]   # test FA 9/h
    assert not _recommendation(True, t(1, 1), t(1, 1), 2.0, a, a)[0]


def test_false_accepts_are_attributed_to_what_was_heard():
    # one confident "yes" decision (logit 100 vs 0) at each time; window 1, threshold 0.9
    t_ms = np.array([1500, 4000, 7000, 9500])
    logits = np.zeros((4, len(LABELS)), np.int8)
    logits[:, 2] = 100
    logits[0, 2], logits[0, 3] = 0, 100  # the first decision says "no" over a "yes" word
    run = StreamRun("k", "keywords", 12.0, [("yes", 1.0, 1.6)], Decisions(t_ms, logits),
                    fillers=[("_unknown_", 3.5, 3.9), ("_unknown_", 6.0, 6.5)])
    cfg = RecognizerConfig.build(LABELS, 0.05, 1, 0.9, 0, 1)
    # 1.5 s: wrong keyword on a word; 4.0 s and 7.0 s: within 1 s after an unknown word
    # (6.5 + 1.0 >= 7.0); 9.5 s: nothing there
    assert false_accept_causes([run], cfg) == {"keyword": 1, "unknown_word": 2, "background": 1}
    # with a 0.2 s tolerance 7.0 s is too late for the word that ended at 6.5 s
    assert false_accept_causes([run], cfg, tolerance_s=0.2) == {
        "keyword": 1, "unknown_word": 1, "background": 2}


def test_cost_scales_with_the_bundles_frame_rate():
    """K model steps and one feature frame per hop: a 32 ms hop is 31.25 frames a second."""
    units = (25_000.0, 60_000.0, "test figures")
    at_20ms, at_32ms = cost(2, 50.0, units=units), cost(2, 31.25, units=units)
    assert at_20ms["instructions_per_second"] == 50 * (25_000 + 2 * 60_000)
    assert at_32ms["instructions_per_second"] == int(31.25 * (25_000 + 2 * 60_000))
    assert at_32ms["share_of_64mhz_m4_at_1_ipc"] == round(31.25 * 145_000 / 64e6, 3)
