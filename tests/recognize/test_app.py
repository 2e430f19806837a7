"""The C core (kws_app.c) on the host == its Python mirror (StreamRunner): same decisions (times
and logits) and detections; decisions are clips from the zero state; the audio ring gives the
same result for any block split and counts what it drops; the core compiles strictly."""

from __future__ import annotations

import time

import numpy as np
import pytest

from kws.csource.targets import CORE_FLAGS
from kws.errors import KwsError
from kws.export.manifest import RecognizerParams
from kws.features import ctables
from kws.features.native import CFeatures
from kws.features.params import FeatureParams
from kws.native import cgen
from kws.native.host import NativeModel
from kws.recognize.csources import core_sources, default_ring_samples
from kws.recognize.host import HostApp
from kws.recognize.stream import Schedule, StreamRunner
from tests.bundle_factory import LABELS10, make_manifest
from tests.cchecks import compile_strict, cpp_accepts
from tests.native.native_models import build_step_model

P = FeatureParams()
SR, HOP, WIN = P.sample_rate_hz, P.hop_samples, P.window_samples
def make_audio(seconds: float, seed: int) -> np.ndarray:
    """Tone bursts of changing pitch and loudness over noise, with silent gaps."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = rng.normal(0, 300, n)
    for start in np.arange(0.2, seconds, 0.7):
        i, j = int(start * SR), int(min(seconds, start + 0.4) * SR)
        f = rng.uniform(200, 3000)
        x[i:j] += rng.uniform(2000, 12000) * np.sin(2 * np.pi * f * t[i:j])
    return np.clip(x, -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def tflite() -> bytes:
    return build_step_model(16, 10, 1, True)


@pytest.fixture(scope="module")
def model(tflite) -> NativeModel:
    return NativeModel(tflite)


@pytest.fixture(scope="module")
def features() -> CFeatures:
    return CFeatures(P)


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return make_audio(6.0, seed=1)[: 6 * SR - 77]  # not a whole number of hops


def runners(tflite, model, features, resets, clip_frames, **kw):
    m = make_manifest(tflite, resets, clip_frames, **kw)
    return m, StreamRunner(m, tflite, features=features, model=model), HostApp(m, tflite)


def same_decisions(a, b) -> bool:
    return len(a) == len(b) and all(ta == tb and np.array_equal(la, lb)
                                    for (ta, la), (tb, lb) in zip(a, b))


@pytest.mark.parametrize("resets, clip_frames", [(1, 49), (1, 12), (3, 12), (3, 49), (4, 20)])
def test_c_core_equals_python_mirror(tflite, model, features, audio, resets, clip_frames):
    m, py, c = runners(tflite, model, features, resets, clip_frames)
    expected = py.run(audio)
    detections, decisions = c.feed(audio)
    assert same_decisions(decisions, expected.decisions)
    assert detections == expected.detections
    n_frames = P.frames_for(len(audio) // HOP * HOP)
    assert expected.frames == n_frames
    starts = [k * clip_frames // resets for k in range(resets)]
    assert len(decisions) == sum((n_frames - s) // clip_frames for s in starts)
    assert c.counters == {"frames": n_frames, "decisions": len(decisions),
                          "detections": len(detections), "overruns": 0}
    if clip_frames == 12:
        assert len(detections) >= 3, "the eager recognizer should fire on this audio"
        assert all(m.labels[label][0] != "_" for label, _, _ in detections)


def test_schedule():
    m = make_manifest(build_step_model(16, 10, 1, True), 3, 20)
    s = Schedule.from_manifest(m)
    assert s.start_frames == (0, 6, 13)
    assert s.decision_period_ms == pytest.approx(20 * 20 / 3)
    assert s.decisions(40) == [(19, 0), (25, 1), (32, 2), (39, 0)]
    assert s.decisions(19) == []
    assert s.time_ms(0) == 30 and s.time_ms(1) == 50 and s.time_ms(49) == 1010
    assert s.time_ms(2**32 // 20) == (2**32 // 20 * 320 + 480) * 1000 // 16000 % 2**32


def test_short_audio_has_no_decisions(tflite, model, features):
    _, py, c = runners(tflite, model, features, 1, 12)
    for n in (0, 1, WIN, 11 * HOP + WIN - 1):
        x = make_audio(1.0, seed=n)[:n]
        result = py.run(x)
        assert result.decisions == [] and result.frames == P.frames_for(n // HOP * HOP)
        c.reset()
        assert c.feed(x) == ([], [])


def test_decisions_are_clips_from_the_zero_state(tflite, model, features, audio):
    """Each decision of state k equals NativeModel.run_clip on its clip_frames frames; the
    states start at k * clip // K and decide at the end of each of their clips."""
    clip, resets = 12, 3
    _, _, c = runners(tflite, model, features, resets, clip)
    _, decisions = c.feed(audio)
    frames = features.quantize(features.log_mel(audio), model.io["frame"].scale,
                               model.io["frame"].zero_point)
    ends = sorted(end for start in (0, 4, 8)
                  for end in range(start + clip - 1, len(frames), clip))
    assert [t for t, _ in decisions] == [(e * HOP + WIN) * 1000 // SR for e in ends]
    for (_, logits), end in zip(decisions, ends):
        assert np.array_equal(logits, model.run_clip(frames[end - clip + 1 : end + 1]))


def test_one_state_decides_once_per_clip(tflite, model, features, audio):
    _, _, c = runners(tflite, model, features, 1, 49)
    _, decisions = c.feed(audio)
    frames = features.quantize(features.log_mel(audio), model.io["frame"].scale,
                               model.io["frame"].zero_point)
    assert len(decisions) == len(frames) // 49
    for j, (t_ms, logits) in enumerate(decisions):
        assert t_ms == (((j + 1) * 49 - 1) * HOP + WIN) * 1000 // SR
        assert np.array_equal(logits, model.run_clip(frames[j * 49 : (j + 1) * 49]))


@pytest.fixture(scope="module")
def app3(tflite, model, features, audio):
    """(HostApp, expected decisions, expected detections) for K = 3, clip 12."""
    _, py, c = runners(tflite, model, features, 3, 12)
    expected = py.run(audio)
    return c, expected.decisions, expected.detections


@pytest.mark.parametrize("blocks", [[1], [7, 333], [HOP], [1000, 1, 13], [4095], [50_000]])
def test_any_block_split_gives_the_same_result(app3, audio, blocks):
    c, decisions, detections = app3
    c.reset()
    got_det, got_dec, pos, i = [], [], 0, 0
    while pos < len(audio):
        d, e = c.feed(audio[pos : pos + blocks[i % len(blocks)]])
        got_det += d
        got_dec += e
        pos, i = pos + blocks[i % len(blocks)], i + 1
    assert got_det == detections and same_decisions(got_dec, decisions)
    assert c.counters["overruns"] == 0


def test_producer_and_consumer_in_turns(app3, audio):
    """An ISR-like producer writing DMA blocks and a main loop draining now and then: nothing
    dropped as long as the ring has room, and the same result."""
    c, decisions, detections = app3
    c.reset()
    got_det, got_dec = [], []
    block = 256
    for n, pos in enumerate(range(0, len(audio), block)):
        assert c.write(audio[pos : pos + block]) == len(audio[pos : pos + block])
        if n % 3 == 2:  # 768 samples between drains: less than the 2048-sample ring
            d, e = c.process()
            got_det += d
            got_dec += e
    d, e = c.process()
    assert got_det + d == detections and same_decisions(got_dec + e, decisions)
    assert c.counters["overruns"] == 0


def test_ring_overflow_is_counted_and_dropped(app3, audio):
    c, _, _ = app3
    c.reset()
    cap = c.ring_samples
    assert cap == default_ring_samples(HOP) == 2048
    assert c.write(audio[: cap + 100]) == cap
    assert c.write(audio[:5]) == 0
    assert c.counters["overruns"] == 105
    c.process()
    hops = cap // HOP
    assert c.counters["frames"] == P.frames_for(hops * HOP)
    # the ring has room again and the consumer continues where it stopped
    assert c.write(audio[:HOP]) == HOP
    c.process()
    assert c.counters["frames"] == P.frames_for((hops + 1) * HOP)
    assert c.counters["overruns"] == 105


def test_feed_larger_than_the_ring_drops_nothing(app3, audio):
    c, decisions, _ = app3
    c.reset()
    _, got = c.feed(audio)
    assert len(audio) > 10 * c.ring_samples
    assert c.counters["overruns"] == 0 and same_decisions(got, decisions)


def test_python_mirror_is_fast(tflite, model, features):
    m = make_manifest(tflite, 4, 49)
    runner = StreamRunner(m, tflite, features=features, model=model)
    audio = make_audio(60.0, seed=2)
    t0 = time.perf_counter()
    result = runner.run(audio)
    assert time.perf_counter() - t0 < 10.0
    assert result.frames == P.frames_for(len(audio)) and len(result.decisions) > 200


def test_mismatched_model_and_manifest_are_refused(tflite, model, features):
    other = build_step_model(16, 12, 1, True)
    m = make_manifest(other, 1, 49, labels=LABELS10 + ("stop", "go"))
    with pytest.raises(KwsError, match="does not match its manifest"):
        StreamRunner(m, tflite, features=features, model=model)


# ---------------------------------------------------------------- rendering and compiling

def test_rendering_is_deterministic_and_validated(tflite):
    m = make_manifest(tflite, 3, 49)
    a, b = core_sources(m, "d" * 64), core_sources(m, "d" * 64)
    assert a == b and sorted(a) == ["kws_app.c", "kws_app.h", "kws_recognizer.c",
                                    "kws_recognizer.h"]
    for name, text in a.items():
        assert text.startswith(f"/* Generated by kws from core/{name}.j2 (bundle sha256 ")
    assert "#define KWS_APP_STATES 3u" in a["kws_app.h"]
    assert "#define KWS_APP_RING_SAMPLES 2048u" in a["kws_app.h"]
    assert "#define KWS_RECOGNIZER_WINDOW 2u" in a["kws_recognizer.h"]  # 600 ms / 326.7 ms
    assert "0, 16, 32," in a["kws_app.c"]
    assert "#define KWS_APP_RING_SAMPLES 512u" in core_sources(m, "d", 512)["kws_app.h"]
    for bad in (100, 256, 3000):
        with pytest.raises(KwsError, match="power of two"):
            core_sources(m, "d", bad)
    with pytest.raises(KwsError, match="resets"):
        core_sources(make_manifest(tflite, 13, 12), "d")


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory, tflite):
    d = tmp_path_factory.mktemp("core_c")
    m = make_manifest(tflite, 3, 49, recognizer=RecognizerParams(suppression_ms=0))
    files = {**ctables.sources(P, "t"), **cgen.sources(tflite, "t"), **core_sources(m, "t")}
    for name, text in files.items():
        (d / name).write_text(text)
    return d


@pytest.mark.parametrize("core", [None, *CORE_FLAGS])
def test_core_compiles_strict(source_dir, core):
    compile_strict(core, ["kws_app.c", "kws_recognizer.c"], source_dir)


def test_cpp_compiler_accepts_the_app_header(source_dir):
    cpp_accepts(source_dir, '#include "kws_app.h"\n'
                "static kws_app_t app;\n"
                "int main() { kws_app_init(&app); return (int)kws_app_process(&app, 0, 0); }\n")
