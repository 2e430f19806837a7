"""Continuous mode (a streaming-trained model: one state, never reset, a decision every N
frames): the Python mirror (StreamRunner) == the host C core (HostApp) decision for decision;
NativeModel.run_sequence run in parts == one run; clip-mode manifests are unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kws.csource.targets import CORE_FLAGS
from kws.errors import KwsError
from kws.export.manifest import Manifest, StreamingSpec
from kws.features import ctables
from kws.features.native import CFeatures
from kws.features.params import FeatureParams
from kws.native import cgen
from kws.native.host import NativeModel
from kws.recognize.csources import core_sources
from kws.recognize.host import HostApp
from kws.recognize.stream import Schedule, StreamRunner
from tests.bundle_factory import make_manifest
from tests.cchecks import compile_strict
from tests.native.native_models import build_step_model
from tests.recognize.test_app import make_audio

P = FeatureParams()
SR, HOP, WIN = P.sample_rate_hz, P.hop_samples, P.window_samples


def continuous(manifest, n: int = 1):
    """The same bundle (graph identical) run as a streaming-trained model."""
    return manifest.model_copy(update={"streaming": manifest.streaming.model_copy(
        update={"mode": "continuous", "decision_frames": n})})


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
    return make_audio(6.0, seed=2)[: 6 * SR - 123]


@pytest.fixture(scope="module")
def frames(features, model, audio) -> np.ndarray:
    return features.quantize(features.log_mel(audio[: len(audio) // HOP * HOP]),
                             model.io["frame"].scale, model.io["frame"].zero_point)


def test_manifest_fields_and_validation(tflite):
    m = make_manifest(tflite, 3, 49)
    assert m.streaming.mode == "clip" and m.streaming.decision_frames == 1
    old = m.model_dump(mode="json")
    del old["streaming"]["mode"], old["streaming"]["decision_frames"]  # a manifest from before
    assert Manifest.model_validate(old) == m
    with pytest.raises(ValueError, match="resets must be 1"):
        StreamingSpec(clip_frames=49, resets=2, mode="continuous")
    with pytest.raises(ValueError):
        StreamingSpec(clip_frames=49, resets=1, mode="continuous", decision_frames=0)
    c = StreamingSpec(clip_frames=49, resets=1, mode="continuous", decision_frames=2)
    assert json.loads(c.model_dump_json())["mode"] == "continuous"


def test_schedule_continuous(tflite):
    s = Schedule.from_manifest(continuous(make_manifest(tflite, 1, 49), 3))
    assert (s.states, s.clip_frames, s.reset) == (1, 3, False)
    assert s.decision_period_ms == pytest.approx(3 * P.hop_ms)
    assert s.decisions(10) == [(2, 0), (5, 0), (8, 0)]
    clip = Schedule.from_manifest(make_manifest(tflite, 1, 49))
    assert clip.reset and clip.clip_frames == 49


def test_run_sequence_in_parts_equals_one_run(model, frames):
    logits, state = model.run_sequence(frames)
    assert logits.shape == (len(frames), model.labels) and state.shape == (model.state_size,)
    cut = len(frames) // 3
    a, s1 = model.run_sequence(frames[:cut])
    b, s2 = model.run_sequence(frames[cut:], s1)
    assert np.array_equal(np.concatenate([a, b]), logits) and np.array_equal(s2, state)
    # the same as stepping frame by frame with the state fed back (and never reset)
    st = model.reset_state()
    for t in range(130):
        st2, lg = model._invoke(frames[t], st)
        st = st2.reshape(-1)
        if t in (0, 1, 50, 129):
            assert np.array_equal(lg.reshape(-1), logits[t])
    # from a non-zero state: differs from the zero-state run (the state carries)
    c, _ = model.run_sequence(frames[cut:])
    assert not np.array_equal(c, b)
    empty, s0 = model.run_sequence(frames[:0], s1)
    assert empty.shape == (0, model.labels) and np.array_equal(s0, s1)
    with pytest.raises(KwsError):
        model.run_sequence(frames[:, :5])


@pytest.mark.parametrize("n", [1, 4])
def test_c_core_equals_python_mirror_continuous(tflite, model, features, audio, frames, n):
    m = continuous(make_manifest(tflite, 1, 49), n)
    py = StreamRunner(m, tflite, features=features, model=model)
    c = HostApp(m, tflite)
    expected = py.run(audio)
    detections, decisions = c.feed(audio)
    n_frames = len(frames)
    # one decision every n frames, at frames (i + 1) % n == 0: the state is never reset
    assert len(expected.decisions) == n_frames // n == len(decisions)
    assert [t for t, _ in expected.decisions] == [
        ((i * n + n - 1) * HOP + WIN) * 1000 // SR for i in range(n_frames // n)]
    assert all(ta == tb and np.array_equal(la, lb)
               for (ta, la), (tb, lb) in zip(decisions, expected.decisions))
    assert detections == expected.detections
    assert c.counters == {"frames": n_frames, "decisions": n_frames // n,
                          "detections": len(detections), "overruns": 0}
    # decisions are the never-reset sequence's logits, not clips from the zero state
    seq, _ = model.run_sequence(frames)
    for i, (_, row) in enumerate(decisions):
        assert np.array_equal(row, seq[i * n + n - 1])
    if n == 1:
        assert len(detections) >= 1, "the eager recognizer should fire on this audio"
    # the same audio in odd blocks gives the same result
    c.reset()
    got_det, got_dec = [], []
    for i in range(0, len(audio), 777):
        d, k = c.feed(audio[i : i + 777])
        got_det += d
        got_dec += k
    assert got_det == detections and len(got_dec) == len(decisions)


def test_rendered_core_prints_the_prepared_values(tflite):
    clip = core_sources(make_manifest(tflite, 3, 20), "x")["kws_app.h"]
    assert "#define KWS_APP_RESET_STATES 1\n" in clip and "#define KWS_APP_STATES 3u" in clip
    cont = core_sources(continuous(make_manifest(tflite, 1, 49), 2), "x")["kws_app.h"]
    assert "#define KWS_APP_RESET_STATES 0\n" in cont
    assert "#define KWS_APP_STATES 1u" in cont and "#define KWS_APP_CLIP_FRAMES 2u" in cont


@pytest.mark.parametrize("core", [None, *CORE_FLAGS])
def test_continuous_core_compiles_strictly(tflite, tmp_path, core):
    m = continuous(make_manifest(tflite, 1, 49), 1)
    files = {**ctables.sources(P, "t"), **cgen.sources(tflite, "t"), **core_sources(m, "t")}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    compile_strict(core, ["kws_app.c", "kws_recognizer.c", "kws_model.c"], tmp_path)
