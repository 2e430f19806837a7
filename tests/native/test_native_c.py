"""The generated model C (kws.native.cgen) == NativeReference == the tflite-micro interpreter, bit
for bit; it compiles warning-free for the host and every Cortex-M core; rendering is
deterministic; what it cannot run is refused by name."""

from __future__ import annotations

import ctypes
import hashlib

import numpy as np
import pytest
from native_models import BUILT, clip_frames
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from kws.csource.targets import CORE_FLAGS
from kws.errors import KwsError
from kws.export.state_quant import pack_model, read_model
from kws.export.tflm import TflmStepModel
from kws.native import cgen, qmath
from kws.native.host import NativeModel
from kws.native.interpret import NativeReference
from tests.cchecks import compile_strict, cpp_accepts

CLIPS = 16
STEPS = 40


def _check_model(tflite: bytes, seed: int) -> None:
    native, ref, tflm = NativeModel(tflite), NativeReference(tflite), TflmStepModel(tflite)
    rng = np.random.default_rng(seed)
    for _ in range(STEPS):
        frame = rng.integers(-128, 128, native.frame_size, dtype=np.int8)
        state = rng.integers(-128, 128, native.state_size, dtype=np.int8)
        got, mid, expected = native.step(frame, state), ref.step(frame, state), tflm.step(frame, state)
        for g, m, e in zip(got, mid, expected):
            assert np.array_equal(g, e) and np.array_equal(m, e)
    frames = clip_frames(tflm.io, CLIPS, seed + 1)
    expected = tflm.run_clips(frames)
    got = native.run_clips(frames)
    assert got.dtype == np.int8 and got.shape == expected.shape
    assert np.array_equal(ref.run_clips(frames), expected)
    mismatches = int(np.count_nonzero(got != expected))
    assert mismatches == 0, f"{mismatches} of {expected.size} logits differ"
    assert len(np.unique(expected)) > 10
    # the C step loop (run_clip through ctypes one step at a time) agrees with run_clips
    assert np.array_equal(native.run_clip(frames[0]), got[0])


@pytest.mark.parametrize("name", list(BUILT))
def test_built_models_equal_tflm(build_model, name):
    _check_model(build_model(*BUILT[name]), seed=sum(map(ord, name)))


def test_default_model_equals_tflm(default_model):
    _check_model(default_model, seed=7)


def test_reset_state_is_the_zero_point(build_model):
    native = NativeModel(build_model(*BUILT["H16-C10"]))
    assert np.array_equal(native.reset_state(), native.zero_state())


# --- the kernels' arithmetic primitives against qmath, edge cases included -------------------


@pytest.fixture(scope="module")
def kernels_lib(build_model):
    lib = ctypes.CDLL(str(NativeModel(build_model(*BUILT["H16-C10"])).library_path))
    i32 = ctypes.c_int32
    for name in ("kws_sat_rounding_doubling_high_mul", "kws_rounding_divide_by_pot"):
        getattr(lib, name).argtypes = [i32, i32]
        getattr(lib, name).restype = i32
    lib.kws_multiply_by_quantized_multiplier.argtypes = [i32, i32, i32]
    lib.kws_multiply_by_quantized_multiplier.restype = i32
    return lib


def _edge_int32(rng, n):
    edges = np.array([qmath.INT32_MIN, qmath.INT32_MIN + 1, -1, 0, 1, qmath.INT32_MAX,
                      qmath.INT32_MAX - 1, 1 << 30, -(1 << 30)], np.int64)
    return np.concatenate([edges, rng.integers(qmath.INT32_MIN, qmath.INT32_MAX, n,
                                               dtype=np.int64, endpoint=True)])


def test_primitives_equal_qmath(kernels_lib):
    rng = np.random.default_rng(3)
    a, b = _edge_int32(rng, 400), _edge_int32(rng, 400)[::-1]
    for x, y in zip(a, b):
        got = kernels_lib.kws_sat_rounding_doubling_high_mul(int(x), int(y))
        assert got == int(qmath.saturating_rounding_doubling_high_mul(x, y)), (x, y)
    for x in a:
        for e in (0, 1, 5, 20, 30, 31):
            got = kernels_lib.kws_rounding_divide_by_pot(int(x), e)
            assert got == int(qmath.rounding_divide_by_pot(x, e)), (x, e)
    multipliers = rng.integers(1 << 30, 1 << 31, 40)
    for x in a:
        for m, s in zip(multipliers, rng.integers(-31, 31, 40)):
            got = kernels_lib.kws_multiply_by_quantized_multiplier(int(x), int(m), int(s))
            assert got == int(qmath.multiply_by_quantized_multiplier(x, m, s)), (x, m, s)


# --- rendering ---------------------------------------------------------------------------------


def test_rendering_is_deterministic_and_bannered(build_model):
    tflite = build_model(*BUILT["H16x2-C12"])
    first, second = cgen.sources(tflite, "d" * 64), cgen.sources(tflite, "d" * 64)
    assert first == second and set(first) == set(cgen.TEMPLATES)
    for name, text in first.items():
        head = text.splitlines()[0]
        assert cgen.TEMPLATES[name] in head and "d" * 64 in head, head
    default = cgen.sources(tflite)
    assert hashlib.sha256(tflite).hexdigest() in default["kws_model.c"].splitlines()[0]


def test_model_c_layout(build_model):
    tflite = build_model(*BUILT["H64-C12"])
    ref = NativeReference(tflite)
    text = cgen.sources(tflite)["kws_model.c"]
    header = cgen.sources(tflite)["kws_model.h"]
    assert f"#define KWS_MODEL_SCRATCH_BYTES {ref.plan.total_bytes}" in header
    assert f"#define KWS_MODEL_STATE_SIZE {ref.state_size}" in header
    # a random-weight GRU's weights are TFLite's symmetric int8: all in the row-pair layout
    assert "static const int16_t kws_w_0[" in text and "KWS_ALIGN(16)" in text
    assert "malloc" not in text and "float" not in text
    # every SPLIT / STRIDED_SLICE output is an alias: no copy at all in the GRU step
    assert "memcpy(kws_scratch" not in text


@pytest.mark.parametrize("name, shared", [("H64-C12", False), ("H32-C10-per-tensor", True)])
def test_fc_requantization_stored_once_for_per_tensor_weights(build_model, name, shared):
    """Per-tensor weights: one kws_fc_requant_t per FULLY_CONNECTED (not one per channel), and
    only the variant the model calls is compiled (flash counts every function)."""
    import re

    files = cgen.sources(build_model(*BUILT[name]))
    sizes = [int(n) for n in re.findall(r"static const kws_fc_requant_t kws_q_\d+\[(\d+)\]",
                                        files["kws_model.c"])]
    assert sizes and (all(n == 1 for n in sizes) if shared else min(sizes) > 1)
    kernels = files["kws_kernels.c"]
    assert ("kws_fc_fast_int8_shared_" in kernels) == shared
    assert ("kws_fc_fast_int8_" in kernels.replace("kws_fc_fast_int8_shared_", "")) != shared
    # the model calls shape-specialized kernels only; the any-shape ones are not compiled
    assert "kws_fc_fast_int8(" not in kernels and "kws_fc_fast_int8_shared(" not in kernels


def test_identifiers_are_validated():
    assert cgen.identifier("kws_w_12") == "kws_w_12"
    for bad in ("w_12", "kws_W", "kws_a-b", "kws_", "kws_x;"):
        with pytest.raises(KwsError, match="identifier"):
            cgen.identifier(bad)


def test_unsupported_op_is_named(build_model):
    model = read_model(build_model(*BUILT["H16-C10"]))
    for code in model.operatorCodes:
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.TANH:
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.HARD_SWISH
    with pytest.raises(KwsError, match=r"HARD_SWISH \(op \d+\) is not supported"):
        cgen.sources(pack_model(model))


# --- compiling --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory, build_model):
    d = tmp_path_factory.mktemp("native_c")
    for name, text in cgen.sources(build_model(*BUILT["H64-C12"])).items():
        (d / name).write_text(text)
    return d


def test_host_gcc_strict(source_dir):
    compile_strict(None, ["kws_model.c", "kws_kernels.c"], source_dir)


@pytest.mark.parametrize("core", list(CORE_FLAGS))
def test_arm_none_eabi_gcc_strict(source_dir, core):
    compile_strict(core, ["kws_model.c", "kws_kernels.c"], source_dir)


def test_cpp_compiler_accepts_the_headers(source_dir):
    cpp_accepts(source_dir, '#include "kws_model.h"\n#include "kws_kernels.h"\n'
                "int main() { int8_t s[KWS_MODEL_STATE_SIZE]; kws_model_reset_state(s); return 0; }\n")
