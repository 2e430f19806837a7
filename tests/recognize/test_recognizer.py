"""The recognizer: prepared constants, the Python mirror == the generated C on thousands of
random decisions, hand cases on both, and label strings that can only ever be strings in C."""

from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest

from kws.csource.host_build import build_shared
from kws.csource.targets import CORE_FLAGS
from kws.errors import KwsError
from kws.export.manifest import Manifest, Quant, RecognizerParams, StateSpec, StreamingSpec
from kws.features.params import FeatureParams
from kws.recognize.csources import c_string, recognizer_sources
from kws.recognize.host import HostRecognizer
from kws.recognize.recognizer import (
    Recognizer,
    RecognizerConfig,
    exp_table,
    round_half_up,
    window_decisions,
)
from tests.cchecks import compile_strict, cpp_accepts

LABELS12 = ("_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off",
            "stop", "go")
LABELS10 = ("_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off")


def manifest(resets=1, clip_frames=49, recognizer=RecognizerParams(), labels=LABELS12,
             logits_scale=0.0416) -> Manifest:
    q = Quant(scale=1 / 128, zero_point=0)
    return Manifest(generator="test", labels=labels, features=FeatureParams(),
                    input_quant=Quant(scale=0.09, zero_point=77),
                    state=StateSpec(size=16, layers=1, units=16, quant=q),
                    logits_quant=Quant(scale=logits_scale, zero_point=-38),
                    recognizer=recognizer,
                    streaming=StreamingSpec(clip_frames=clip_frames, resets=resets),
                    ops=("FULLY_CONNECTED",), arena_bytes=1, tflite_bytes=1,
                    model_sha256="0" * 64, params=1, macs_per_step=1)


# ---------------------------------------------------------------- prepared constants

def test_exp_table_is_rounded_half_up_from_float64():
    for scale in (0.0416, 0.1, 0.5, 1e-3):
        table = exp_table(scale)
        assert len(table) == 256 and table[0] == 65535
        assert all(a >= b for a, b in zip(table, table[1:]))
        assert table == tuple(math.floor(65535 * math.exp(-scale * d) + 0.5) for d in range(256))
        assert all(0 <= v <= 65535 for v in table)
    assert exp_table(0.5)[-1] == 0  # far below the top: no contribution at all
    with pytest.raises(KwsError):
        exp_table(0.0)


def test_rounding_and_window():
    assert round_half_up(2.5) == 3 and round_half_up(0.5) == 1 and round_half_up(2.4999) == 2
    assert window_decisions(600, 980) == 1      # one state: every clip decides alone
    assert window_decisions(600, 980 / 3) == 2  # three states: 1.84 -> 2
    assert window_decisions(1000, 400) == 3     # 2.5 rounds up, not to even
    assert window_decisions(10, 980) == 1       # never 0


def test_config_from_manifest():
    cfg = RecognizerConfig.from_manifest(manifest(resets=1))
    assert cfg.window == 1 and cfg.min_count == 1  # min(minimum_count=3, N=1)
    assert cfg.threshold_q15 == 22938  # round(0.7 * 32768) = round(22937.6)
    assert cfg.suppression_ms == 1000 and cfg.decision_period_ms == pytest.approx(980.0)
    assert cfg.keyword == (False, False) + (True,) * 10
    cfg = RecognizerConfig.from_manifest(manifest(resets=7, recognizer=RecognizerParams(
        average_window_ms=1000, threshold=0.5, minimum_count=2)))
    assert cfg.decision_period_ms == pytest.approx(140.0)
    assert cfg.window == 7 and cfg.min_count == 2 and cfg.threshold_q15 == 16384


def test_bad_parameters_are_refused():
    with pytest.raises(KwsError, match="window"):
        RecognizerConfig.build(LABELS10, 0.04, 0, 0.5, 0, 1)
    with pytest.raises(KwsError, match="suppression"):
        RecognizerConfig.build(LABELS10, 0.04, 2, 0.5, 1 << 32, 1)
    with pytest.raises(KwsError, match="resets"):
        RecognizerConfig.from_manifest(manifest(resets=50, clip_frames=49))


# ---------------------------------------------------------------- Python == C

def random_decisions(rng, labels: int, n: int, t0: int):
    """Logits in runs: uniform noise, one label far ahead (any label, `_` classes too), near
    ties, one keyword somewhat ahead; times with random gaps (0..700 ms), starting at t0
    (may wrap past 2^32)."""
    rows = []
    while len(rows) < n:
        kind, run = rng.integers(4), int(rng.integers(1, 20))
        label, keyword = int(rng.integers(labels)), int(rng.integers(2, labels))
        for _ in range(run):
            if kind == 0:
                row = rng.integers(-128, 128, labels)
            elif kind == 1:
                row = rng.integers(-128, -20, labels)
                row[label] = rng.integers(0, 128)
            elif kind == 2:
                row = np.full(labels, int(rng.integers(-128, 128)))
                row[rng.integers(labels, size=2)] += rng.integers(-2, 3, 2)
            else:
                row = rng.integers(-40, 40, labels)
                row[keyword] = rng.integers(30, 128)
            rows.append(np.clip(row, -128, 127).astype(np.int8))
    gaps = rng.integers(0, 700, n)
    times = (t0 + np.cumsum(gaps)) & 0xFFFFFFFF
    return rows[:n], [int(t) for t in times]


CASES = [  # labels, logits scale, window N, threshold, suppression ms, minimum count, t0
    (LABELS10, 0.0416, 1, 0.7, 1000, 3, 0),
    (LABELS12, 0.0416, 2, 0.6, 1000, 3, 0),
    (LABELS12, 0.02, 3, 0.5, 500, 2, 0),
    (LABELS10, 0.1, 4, 0.4, 0, 1, 0),
    (LABELS12, 0.25, 5, 0.8, 1500, 4, 2**32 - 60_000),  # time wraps mid-sequence
    (LABELS10, 0.06, 6, 0.3, 700, 6, 0),
    (LABELS12, 0.0125, 7, 0.2, 300, 3, 123),
    (LABELS12, 0.15, 8, 0.45, 1000, 9, 2**32 - 1000),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"N{c[2]}-L{len(c[0])}-s{c[1]}")
def test_python_equals_c_on_random_decisions(case):
    labels, scale, window, threshold, suppression, minimum, t0 = case
    cfg = RecognizerConfig.build(labels, scale, window, threshold, suppression, minimum)
    py, c = Recognizer(cfg), HostRecognizer(cfg)
    rng = np.random.default_rng(window * 1000 + len(labels))
    rows, times = random_decisions(rng, len(labels), 3000, t0)
    got_py = [py.push(r, t) for r, t in zip(rows, times)]
    got_c = [c.push(r, t) for r, t in zip(rows, times)]
    assert got_py == got_c
    fired = [g for g in got_py if g is not None]
    assert 3 <= len(fired) < 0.8 * len(rows), "the sequence should fire and also not fire"
    assert all(cfg.keyword[label] and score >= cfg.threshold_q15 for label, score in fired)


def test_posteriors_are_q15_and_sum_to_one():
    cfg = RecognizerConfig.build(LABELS12, 0.0416, 1, 0.5, 0, 1)
    rec = Recognizer(cfg)
    rng = np.random.default_rng(3)
    for _ in range(200):
        p = rec.posteriors(rng.integers(-128, 128, 12).astype(np.int8))
        assert p.min() >= 0 and p.max() <= 32768
        assert 32768 - 12 <= p.sum() <= 32768  # each value is floored
    assert list(rec.posteriors(np.full(12, 5, np.int8))) == [2730] * 12


# ---------------------------------------------------------------- hand cases, both sides

@pytest.fixture(params=["python", "c"])
def make(request):
    def factory(**kw):
        values = dict(labels=LABELS12, logits_scale=0.1, window=3, threshold=0.7,
                      suppression_ms=1000, minimum_count=3)
        values.update(kw)
        cfg = RecognizerConfig.build(**values)
        return Recognizer(cfg) if request.param == "python" else HostRecognizer(cfg)
    return factory


def peaked(index: int, labels: int = 12, high: int = 100, low: int = -100) -> np.ndarray:
    row = np.full(labels, low, np.int8)
    row[index] = high
    return row


def test_clear_keyword_fires_once_then_suppression_holds(make):
    rec = make()
    yes = peaked(2)
    out = [rec.push(yes, t) for t in range(0, 2000, 100)]
    fired = [(i, o) for i, o in enumerate(out) if o is not None]
    # third decision (minimum count 3), then quiet for 1000 ms, then again at 200 + 1000 ms
    assert [i for i, _ in fired] == [2, 12]
    assert fired[0][1] == (2, 32768)  # E[200] = round(65535 * exp(-20)) = 0: others vanish


def test_silence_and_unknown_never_fire(make):
    rec = make(window=1, minimum_count=1, suppression_ms=0)
    for t in range(50):
        assert rec.push(peaked(t % 2), 100 * t) is None
    assert rec.push(peaked(11), 5000) == (11, 32768)


def test_minimum_count_caps_at_the_window(make):
    rec = make(window=2, minimum_count=5)  # a count of 5 can never be reached in a ring of 2
    assert rec.push(peaked(4), 0) is None
    assert rec.push(peaked(4), 100) == (4, 32768)


def test_average_over_the_window_and_ties(make):
    rec = make(window=2, minimum_count=1, threshold=0.5, suppression_ms=0)
    # one decision for "yes", one for "no": both average 0.5 -> tie -> the lower index fires
    assert rec.push(peaked(3), 0) == (3, 32768)
    assert rec.push(peaked(2), 10) == (2, 16384)
    # the "no" vector leaves the window: "yes" alone again
    assert rec.push(peaked(2), 20) == (2, 32768)


def test_threshold_blocks_a_flat_posterior(make):
    rec = make(window=1, minimum_count=1, threshold=0.2, suppression_ms=0)
    flat = np.zeros(12, np.int8)
    assert rec.push(flat, 0) is None  # 1/12 each
    two = np.full(12, -128, np.int8)
    two[[5, 6]] = 0
    assert rec.push(two, 1) == (5, 16384)


def test_suppression_survives_the_time_wrap(make):
    rec = make(window=1, minimum_count=1, suppression_ms=1000)
    assert rec.push(peaked(2), 2**32 - 300) == (2, 32768)
    assert rec.push(peaked(2), 500) is None   # 800 ms later across the wrap
    assert rec.push(peaked(2), 700) == (2, 32768)


def test_reset_forgets_everything(make):
    rec = make(window=1, minimum_count=1)
    assert rec.push(peaked(2), 0) is not None
    assert rec.push(peaked(2), 10) is None
    rec.reset()
    assert rec.push(peaked(2), 20) is not None


# ---------------------------------------------------------------- C strings

@pytest.mark.parametrize("text, literal", [
    ("yes", '"yes"'),
    ("_silence_", '"_silence_"'),
    ('say "hi"', r'"say \"hi\""'),
    ("back\\slash", r'"back\\slash"'),
    ("two\nlines\r\t", r'"two\nlines\r\t"'),
    ("*/ end", r'"\052\057 end"'),
    ("/* start", r'"\057\052 start"'),
    ("what??/", r'"what\?\?\057"'),
    ("naïve", r'"na\303\257ve"'),
    ("ja\u30421", r'"ja\343\201\2021"'),
    ("\x01", r'"\001"'),
])
def test_c_string_escapes(text, literal):
    assert c_string(text) == literal


def test_c_string_refuses_nul():
    with pytest.raises(KwsError, match="NUL"):
        c_string("a\0b")


HOSTILE = ('yes"; int x = 1; //', "*/ int y; /*", "a\\", "line\nbreak", "naïve ??= ünïcode",
           "#define kws_labels 0", "_tab\there")


def test_hostile_labels_compile_to_the_same_bytes(tmp_path):
    """The C array holds exactly the UTF-8 bytes of each label and no extra symbol appears."""
    cfg = RecognizerConfig.build(HOSTILE, 0.05, 2, 0.5, 100, 1)
    files = recognizer_sources(cfg, "test")
    lib = ctypes.CDLL(str(build_shared(files, "kws_recognizer_labels")))
    names = (ctypes.c_char_p * len(HOSTILE)).in_dll(lib, "kws_labels")
    assert [names[i] for i in range(len(HOSTILE))] == [h.encode() for h in HOSTILE]
    for symbol in ("x", "y"):
        with pytest.raises(AttributeError):
            getattr(lib, symbol)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    compile_strict(None, ["kws_recognizer.c"], tmp_path)


# ---------------------------------------------------------------- compile checks

@pytest.fixture(scope="module")
def source_dirs(tmp_path_factory):
    """Two corner configurations: suppression 0 / window 1 / one label, and a usual one."""
    configs = {
        "corner": RecognizerConfig.build(("go",), 0.05, 1, 1.0, 0, 1),
        "usual": RecognizerConfig.from_manifest(manifest(resets=3)),
    }
    dirs = []
    for name, cfg in configs.items():
        d = tmp_path_factory.mktemp(f"recognizer_{name}")
        for fname, text in recognizer_sources(cfg, "test").items():
            (d / fname).write_text(text)
        dirs.append(d)
    return dirs


@pytest.mark.parametrize("core", [None, *CORE_FLAGS])
def test_recognizer_compiles_strict(source_dirs, core):
    for d in source_dirs:
        compile_strict(core, ["kws_recognizer.c"], d)


def test_cpp_compiler_accepts_the_header(source_dirs):
    cpp_accepts(source_dirs[1], '#include "kws_recognizer.h"\n'
                "int main() { kws_recognizer_t r; kws_recognizer_reset(&r); "
                "return kws_labels[0][0] == 0; }\n")
