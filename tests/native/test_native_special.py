"""The generate-time specializations (kws.native.special) and the generated C that uses them:
every form equals the reference arithmetic (hence TFLM) on every input it can see, a form that
cannot be proven is refused, and the generic fallbacks still give TFLM's bytes."""

from __future__ import annotations

import ctypes
import dataclasses

import numpy as np
import pytest
from native_models import BUILT, clip_frames

from kws.csource.host_build import build_shared
from kws.emulate import qemu
from kws.export.tflm import TflmStepModel
from kws.native import cgen, oracle, ops, special
from kws.native.graph import parse_model
from kws.native.host import NativeModel
from kws.native.interpret import NativeReference

PAIRS_1, PAIRS_2 = (a.reshape(1, -1).astype(np.int8)
                    for a in np.meshgrid(special.INT8, special.INT8, indexing="ij"))


def _params(zoo, kind):
    for name, tflite in zoo.items():
        ref = NativeReference(tflite, poison=False)
        for op, p in zip(ref.graph.ops, ref.params):
            if isinstance(p, kind):
                yield name, ref.graph, op, p


# --- ADD / SUB: single-rounding affine forms ---------------------------------------------------


def test_every_gru_add_sub_has_a_proven_affine_form(zoo):
    seen = 0
    for name, _, op, p in _params(zoo, ops.AddSubParams):
        if p.broadcast != "none":
            continue
        form = special.affine_add_sub(p)
        assert form is not None, (name, op.label())
        # the proof, repeated here: all 65536 pairs against the reference arithmetic
        assert np.array_equal(form.values(special._X, special._Y), special.binary_reference(p))
        assert special.verify(form, p)
        seen += 1
    assert seen >= 4 * len(BUILT)


def test_affine_forms_equal_tflm_itself():
    """Forms for fresh random quantizations, checked against the tflite-micro interpreter
    (not only against ops.py) on all 65536 pairs; SUB included."""
    rng = np.random.default_rng(5)
    found = 0
    for _ in range(4):
        q = [(float(rng.uniform(0.005, 0.2)), int(rng.integers(-60, 60))) for _ in range(3)]
        for name in ("ADD", "SUB"):
            model = oracle.binary_model(name, *q)
            graph = parse_model(model)
            p = ops.prepare(graph, graph.ops[0])
            form = special.affine_add_sub(p)
            if form is None:
                continue
            found += 1
            expected = oracle.OpOracle(model).run(PAIRS_1, PAIRS_2)[0].reshape(256, 256)
            assert np.array_equal(form.values(special._X, special._Y), expected), (name, q)
    assert found >= 4


def test_verify_rejects_wrong_and_overflowing_forms(zoo):
    _, _, _, p = next(item for item in _params(zoo, ops.AddSubParams)
                      if item[3].broadcast == "none")
    form = special.affine_add_sub(p)
    assert special.verify(form, p)
    # one unit of the rounding constant is enough to move some pair across a boundary
    shifted = [dataclasses.replace(form, c=form.c + d) for d in (1 << form.k, -(1 << form.k))]
    assert not any(special.verify(f, p) for f in shifted)
    huge = dataclasses.replace(form, a=form.a << 12, b=form.b << 12, c=form.c << 12,
                               k=form.k + 12)
    assert not special.verify(huge, p)  # same real value, but leaves int32


def test_a_non_affine_op_gets_no_form(zoo):
    """A MUL's output table is not an affine function of (x, y): the affine search (run on it
    directly) finds nothing and says so instead of guessing."""
    _, _, _, p = next(_params(zoo, ops.MulParams))
    assert special._affine_cached(special._key(p)) is None


# --- MUL: the fast exact requantization --------------------------------------------------------


def test_every_gru_mul_has_a_proven_fast_form(zoo):
    seen = 0
    for name, _, op, p in _params(zoo, ops.MulParams):
        form = special.mul_fast(p)
        assert form is not None, (name, op.label())
        assert np.array_equal(form.values(special._X, special._Y), special.binary_reference(p))
        seen += 1
    assert seen >= 3 * len(BUILT)


def test_mul_fast_preconditions(zoo):
    _, _, _, p = next(_params(zoo, ops.MulParams))
    assert special.mul_fast(dataclasses.replace(p, output_shift=0)) is None
    assert special.mul_fast(dataclasses.replace(p, output_shift=2)) is None
    assert special.mul_fast(dataclasses.replace(p, output_multiplier=(1 << 30) - 1)) is None


def test_unary_tables_equal_the_binary_reference(zoo):
    for _, graph, op, p in _params(zoo, (ops.AddSubParams, ops.MulParams)):
        if p.broadcast == "none":
            continue
        pos = 0 if p.broadcast == "input1_scalar" else 1
        const = int(np.asarray(graph.tensor(op.inputs[pos]).data).ravel()[0])
        table = special.unary_table(p, const, pos)
        ref = special.binary_reference(p)
        expected = ref[const + 128, :] if pos == 0 else ref[:, const + 128]
        assert np.array_equal(table, expected)


# --- FULLY_CONNECTED ------------------------------------------------------------------------


def _accumulators(rng, bound: int) -> np.ndarray:
    dense = np.arange(-(1 << 16), 1 << 16, dtype=np.int64)
    edges = np.array([-bound, -bound + 1, -1, 0, 1, bound - 1, bound], np.int64)
    return np.concatenate([dense, edges, rng.integers(-bound, bound + 1, 200_000)])


def test_fc_fast_requantization_equals_mbqm(zoo):
    rng = np.random.default_rng(8)
    for name, _, op, p in _params(zoo, ops.FullyConnectedParams):
        fast = special.fc_channels(p)
        assert fast is not None, (name, op.label())
        bound = special.fc_accumulator_bound(p)
        for c in rng.choice(p.output_depth, min(6, p.output_depth), replace=False):
            acc = _accumulators(rng, int(bound[c]))
            one = dataclasses.replace(p, multiplier=p.multiplier[c:c + 1],
                                      shift=p.shift[c:c + 1])
            got = special.FcChannels(fast.table[c:c + 1], fast.full_range).values(
                acc[:, None], p.activation_min, p.activation_max)[:, 0]
            assert np.array_equal(got, special.fc_requant_reference(one, acc[:, None])[:, 0])


def _fc_params(rng, out_depth, depth, activation=(-128, 127), **changes):
    weights = rng.integers(-127, 128, (out_depth, depth)).astype(np.int8)
    bias = rng.integers(-20000, 20000, out_depth).astype(np.int64)
    input_offset = int(rng.integers(-30, 30))
    folded = bias + input_offset * weights.astype(np.int64).sum(axis=1)
    p = ops.FullyConnectedParams(
        op="FULLY_CONNECTED", label="FULLY_CONNECTED (test)", input_shapes=((1, depth),),
        output_shapes=((1, out_depth),), weights=weights, bias=bias.astype(np.int32),
        folded_bias=folded.astype(np.int32),
        multiplier=rng.integers(1 << 30, 1 << 31, out_depth).astype(np.int32),
        shift=rng.integers(-14, -6, out_depth).astype(np.int32), per_channel=True,
        input_offset=input_offset, output_offset=int(rng.integers(-40, 40)),
        activation_min=activation[0], activation_max=activation[1], batches=1,
        accum_depth=depth, output_depth=out_depth)
    return dataclasses.replace(p, **changes)


def test_fc_fast_preconditions():
    rng = np.random.default_rng(9)
    p = _fc_params(rng, 6, 12)
    assert special.fc_channels(p) is not None
    left = p.shift.copy()
    left[2] = 0  # no rounding shift on one channel: the generic kernel runs
    assert special.fc_channels(dataclasses.replace(p, shift=left)) is None
    small = p.multiplier.copy()
    small[0] = 0
    assert special.fc_channels(dataclasses.replace(p, multiplier=small)) is None
    assert not special.fc_channels(_fc_params(rng, 6, 12, activation=(-100, 90))).full_range


@pytest.mark.parametrize("shape", [(1, 4), (3, 5), (4, 8), (11, 43), (12, 64)])
def test_interleaved_weights_give_the_same_dot_products(shape):
    rng = np.random.default_rng(sum(shape))
    w = rng.integers(-128, 128, shape).astype(np.int8)
    x = rng.integers(-128, 128, shape[1])
    inter = special.interleave_weights(w)
    assert inter.size == w.size
    assert np.array_equal(special.fc_fast_dot(inter, x, *shape),
                          w.astype(np.int64) @ x.astype(np.int64))


@pytest.mark.parametrize("shape", [(1, 4), (3, 5), (4, 8), (11, 43), (12, 64), (8, 3)])
def test_paired_weights_give_the_same_dot_products(shape):
    """The row-pair layout (F - E) >> 8 recovers every odd row exactly, extreme weights
    included; the bytes equal the weights' (the rows left over as int16: 2 bytes each)."""
    rng = np.random.default_rng(sum(shape) + 1)
    w = rng.integers(-127, 128, shape).astype(np.int8)
    w[:, 0] = 127 * (-1) ** np.arange(shape[0])
    x = rng.integers(-128, 128, shape[1])
    x[0] = -128
    bias = rng.integers(-30000, 30000, shape[0])
    bound = np.abs(bias) + 128 * np.abs(w.astype(np.int64)).sum(axis=1)
    assert special.pairable(w, bound)
    paired = special.pair_weights(w)
    rows = shape[0] // 4 * 4
    assert paired.nbytes == rows * shape[1] + 2 * (shape[0] - rows) * shape[1]
    assert np.array_equal(special.pair_dot(paired, special.pair_bias(bias), x, *shape),
                          bias + w.astype(np.int64) @ x.astype(np.int64))


def test_pairing_preconditions():
    rng = np.random.default_rng(3)
    p = _fc_params(rng, 8, 12)
    assert special.fc_channels(p).paired
    assert not special.fc_channels(_unpairable(p)).paired
    w = p.weights.copy()
    w[5, 3], w[4, 3] = -128, 0  # -128 in an odd row is fine next to a non-negative weight
    assert special.fc_channels(dataclasses.replace(p, weights=w)).paired
    w[0, 0] = -128  # and anywhere in an even row
    assert special.fc_channels(dataclasses.replace(p, weights=w)).paired
    bound = special.fc_accumulator_bound(p)
    assert special.pairable(p.weights, bound)
    big = bound.copy()
    big[1] = 1 << 23  # F = E + 2^8 * odd row could leave int32
    assert not special.pairable(p.weights, big)
    big[1] = (1 << 23) - (int(bound[0]) >> 8) - 2  # just inside
    assert special.pairable(p.weights, big)
    rest = _fc_params(rng, 7, 12)
    w = rest.weights.copy()
    w[5, 0], w[4, 0] = -128, -1  # rows 4-6 are left over (unpaired int16 rows): no constraint
    assert special.fc_channels(dataclasses.replace(rest, weights=w)).paired


def _unpairable(p):
    """p with one weight of an odd row at -128 next to a negative even-row weight: no int16
    holds that pair, so the interleaved int8 layout runs."""
    w = p.weights.copy()
    col = min(3, w.shape[1] - 1)
    w[4, col], w[5, col] = -7, -128
    return dataclasses.replace(p, weights=w)


def _fc_cases():
    """(params, [batches, depth] inputs) with odd shapes: 2 groups of 4 rows + 3 rows, 10
    input words + 3 bytes, two batches, extreme inputs (weights of +-127 included); one clamped
    variant; per-channel and per-tensor (one shared requantization) multipliers; each in the
    row-pair layout and in the interleaved one."""
    rng = np.random.default_rng(12)
    cases = []
    for depth in FC_DEPTHS:
        for per_channel in (True, False):
            for activation in ((-128, 127), (-100, 90)):
                p = _fc_params(rng, FC_OUT_DEPTH, depth, activation=activation, batches=3,
                               input_shapes=((3, depth),),
                               output_shapes=((3, FC_OUT_DEPTH),))
                w = p.weights.copy()
                w[0, :4], w[1, :4] = (np.array([(127, -127, 127, -127),
                                                (-127, -127, 127, 127)])[:, :depth])
                w[3, -1], w[2, -1] = -127, -127  # extremes in the tail columns too
                p = dataclasses.replace(p, weights=w)
                if not per_channel:
                    p = dataclasses.replace(
                        p, per_channel=False,
                        multiplier=np.full(FC_OUT_DEPTH, p.multiplier[0], np.int32),
                        shift=np.full(FC_OUT_DEPTH, p.shift[0], np.int32))
                x = rng.integers(-128, 128, (3, depth)).astype(np.int8)
                x[1] = -128
                x[2] = 127
                cases += [(p, x), (_unpairable(p), x)]
    assert [special.fc_channels(p).shared for p, _ in cases] == \
        ([False] * 4 + [True] * 4) * len(FC_DEPTHS)
    assert [special.fc_channels(p).paired for p, _ in cases] == \
        [True, False] * 4 * len(FC_DEPTHS)
    return cases


# 10 input words + 3 bytes (an even number of 4-input blocks: the paired blocks only), 5
# words + 1 byte (the odd block too) and 3 bytes (no block), for the generic and the
# depth-specialized kernels
FC_DEPTHS = (43, 21, 3)
FC_OUT_DEPTH = 11  # 2 groups of 4 rows + 3 rows


def _fc_functions(p) -> list[tuple[str, bool]]:
    """(C function, is the any-shape one) of both kernels that compute `p`."""
    fast = special.fc_channels(p)
    generic = ("kws_fc_fast_int8" if fast.full_range else "kws_fc_fast") + \
        cgen.fc_fast_variant(fast.shared, fast.paired)["suffix"]
    special_fn = cgen.fc_fast_function(fast.shared, fast.full_range, p.accum_depth,
                                       p.output_depth, fast.paired)["name"]
    return [(generic, True), (special_fn, False)]


def _kernel_sources(wide_words: int = 2 * (max(FC_DEPTHS) // 4)):
    """The kernel files with every fast FULLY_CONNECTED variant (a model emits only those it
    calls); `wide_words` sizes the widened-input buffer (deeper inputs take the DSP kernels that
    widen the input per group of rows)."""
    combos = [(shared, paired) for shared in (False, True) for paired in (False, True)]
    functions = [cgen.fc_fast_function(shared, full, depth, FC_OUT_DEPTH, paired)
                 for depth in FC_DEPTHS for shared, paired in combos for full in (False, True)]
    ctx = {**cgen.context(_any_model()),
           "fc_fast_variants": [cgen.fc_fast_variant(*c) for c in combos],
           "fc_fast_functions": functions, "fc_wide_words": wide_words}
    return {name: cgen.render(tpl, ctx, "0" * 64) for name, tpl in cgen.TEMPLATES.items()
            if name.startswith("kws_kernels")}


def _any_model():
    from native_models import build_step_model

    return build_step_model(*BUILT["H16-C10"])


def test_fc_fast_kernel_on_the_host():
    lib = ctypes.CDLL(str(build_shared(_kernel_sources(), "kws_fc_fast_test")))
    i8p = np.ctypeslib.ndpointer(np.int8, flags="C_CONTIGUOUS")
    i32p = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")
    size = ctypes.c_size_t
    for p, x in _fc_cases():
        fast = special.fc_channels(p)
        w = _fast_weights(p, fast)
        wp = np.ctypeslib.ndpointer(w.dtype, flags="C_CONTIGUOUS")
        bias = np.ascontiguousarray(fast.bias, np.int32)
        requant = np.ascontiguousarray(fast.requant, np.int32)
        expected = ops.evaluate_fully_connected(p, [x])[0].reshape(-1)
        params = [np.array([p.output_offset, p.activation_min, p.activation_max], np.int32)] \
            if not fast.full_range else []
        for name, generic in _fc_functions(p):
            fn = getattr(lib, name)
            dims = [x.shape[0], p.accum_depth, p.output_depth] if generic else [x.shape[0]]
            fn.argtypes = [i8p, wp, i32p, i32p] + [i32p] * len(params) + \
                [size] * len(dims) + [i8p]
            out = np.zeros(x.shape[0] * p.output_depth, np.int8)
            fn(np.ascontiguousarray(x), w, bias, requant, *params, *dims, out)
            assert np.array_equal(out, expected), name


def _fast_weights(p, fast) -> np.ndarray:
    return special.pair_weights(p.weights) if fast.paired else \
        special.interleave_weights(p.weights)


def _c_array(ctype: str, name: str, values) -> str:
    items = ", ".join(str(int(v)) for v in np.asarray(values).ravel())
    return f"static const {ctype} {name}[] = {{{items}}};\n"


@pytest.mark.parametrize("core, wide_words",
                         [(core, 2 * (max(FC_DEPTHS) // 4)) for core in qemu.MACHINES] +
                         [("cortex-m4f", 2 * (21 // 4))])
def test_fc_fast_kernel_in_qemu(core, wide_words):
    """The DSP kernel (SMLAD loop, byte tail, remainder rows, SMMLAR, SSAT) on each emulated
    core, against the reference FULLY_CONNECTED; with a widened-input buffer too small for the
    deeper input once (its kernels then widen the input per group of rows)."""
    if qemu.shutil.which(qemu.QEMU) is None or qemu.shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("qemu-system-arm / arm-none-eabi-gcc not installed")
    body, calls, expected = [], [], []
    for n, (p, x) in enumerate(_fc_cases()):
        fast = special.fc_channels(p)
        body.append(_c_array("int8_t", f"x{n}", x))
        body.append(_c_array("int16_t" if fast.paired else "int8_t", f"w{n}",
                             _fast_weights(p, fast)))
        rows = ", ".join("{" + ", ".join(str(int(v)) for v in r) + "}" for r in fast.requant)
        body.append(_c_array("int32_t", f"b{n}", fast.bias))
        body.append(f"static const kws_fc_requant_t q{n}[] = {{{rows}}};\n")
        req = f"b{n}, q{n}"
        body.append(f"static int8_t o{n}[{x.size // p.accum_depth * p.output_depth}];\n")
        if not fast.full_range:
            body.append(f"static const kws_fc_params_t p{n} = {{{p.output_offset}, "
                        f"{p.activation_min}, {p.activation_max}}};\n")
            req += f", &p{n}"
        for name, generic in _fc_functions(p):
            dims = (f"{x.shape[0]}u, {p.accum_depth}u, {p.output_depth}u" if generic
                    else f"{x.shape[0]}u")
            calls.append(f"{name}(x{n}, w{n}, {req}, {dims}, o{n});")
            calls.append(f"for (i = 0; i < sizeof o{n}; ++i) {{ kws_print_i64(o{n}[i]); "
                         "kws_print(\",\"); }")
            expected.extend(ops.evaluate_fully_connected(p, [x])[0].reshape(-1).tolist())
    main = ('#include <stddef.h>\n#include "kws_harness.h"\n#include "kws_kernels.h"\n' +
            "".join(body) + "int main(void)\n{\n    size_t i;\n    " + "\n    ".join(calls) +
            '\n    kws_print("\\n");\n    return 0;\n}\n')
    result = qemu.run_sources({**_kernel_sources(wide_words), "fc_test_main.c": main}, core,
                              "fc_fast")
    assert result.status == 0, result.stderr
    got = [int(v) for v in result.stdout.strip().split(",") if v.strip()]
    assert got == expected


# --- the generated C on the generic paths -----------------------------------------------------


@pytest.mark.parametrize("options", [dict(specialize=False), dict(fuse=False),
                                     dict(specialize=False, fuse=False)])
def test_generic_and_unfused_paths_equal_tflm(build_model, options):
    tflite = build_model(*BUILT["H16x2-C12"])
    text = cgen.sources(tflite, **options)["kws_model.c"]
    if options.get("specialize") is False:
        assert "kws_add_sub_element(" in text and "kws_mul_element(" in text
        assert "kws_fc_fast" not in text
    native, tflm = NativeModel(tflite, **options), TflmStepModel(tflite)
    frames = clip_frames(tflm.io, 8, 21)
    assert np.array_equal(native.run_clips(frames), tflm.run_clips(frames))


def test_forms_that_cannot_be_proven_fall_back(build_model, monkeypatch):
    """With the searches failing (as they would for constants with no exact form), the fused
    loop calls the generic element functions and the logits stay TFLM's."""
    monkeypatch.setattr(special, "affine_add_sub", lambda p: None)
    monkeypatch.setattr(special, "mul_fast", lambda p: None)
    tflite = build_model(*BUILT["H16-C10"])
    text = cgen.sources(tflite)["kws_model.c"]
    assert "kws_add_sub_element(" in text and "kws_mul_element(" in text
    assert "kws_fc_fast_int8_" in text and "ELEMENTWISE LOOP" in text
    native, tflm = NativeModel(tflite), TflmStepModel(tflite)
    frames = clip_frames(tflm.io, 8, 22)
    assert np.array_equal(native.run_clips(frames), tflm.run_clips(frames))


def test_interleaved_layout_model_equals_tflm(build_model, monkeypatch):
    """With no FULLY_CONNECTED pairable (as for weights with -128 next to negative ones), the
    model runs on the interleaved int8 layout and the logits stay TFLM's; normally the
    row-pair one runs."""
    tflite = build_model(*BUILT["H16x2-C12"])
    assert "kws_fc_fast_int8_pair_" in cgen.sources(tflite)["kws_kernels.c"]
    monkeypatch.setattr(special, "pairable", lambda weights, bound: False)
    files = cgen.sources(tflite)
    assert "kws_fc_fast_int8_pair_" not in files["kws_kernels.c"]
    assert "static const int16_t" not in files["kws_model.c"]
    native, tflm = NativeModel(tflite), TflmStepModel(tflite)
    frames = clip_frames(tflm.io, 8, 23)
    assert np.array_equal(native.run_clips(frames), tflm.run_clips(frames))


def test_gru_gates_become_one_loop(build_model):
    text = cgen.sources(build_model(*BUILT["H64-C12"]))["kws_model.c"]
    assert text.count("ELEMENTWISE LOOP") == 1
    assert "kws_add_sub(" not in text and "kws_mul(" not in text and "kws_lut(" not in text
    assert "affine" in text and "fast requantization" in text
    # two elements per iteration where the core has the registers, one on the M0+ (both run:
    # the host and M4/M7/M55 builds take the first, tests/emulate/test_m0plus.py the second)
    assert text.count("#ifdef KWS_TWO_LANES") == 1 and "i += 2u" in text and "++i" in text
    # the gates' (sigma + 128) operands come from tables holding sigma + 128 (uint8), so the MULs
    # add nothing; the one lookup indexed by such a value moves its pointer instead
    assert "LOGISTIC (op 5): table + 128 (folded for its readers)" in text
    assert "static const uint8_t kws_t_5[256]" in text and "kws_t_6 + 0;" in text
    assert "(v21_a + 128)" not in text and "(v21_a * x0_a" in text


def test_table_offsets_only_for_readers_that_take_them(build_model):
    """No offset is folded into a table whose output is also read by a non-MUL op, a MUL with
    another input offset, or outside the loop."""
    ref = NativeReference(build_model(*BUILT["H16-C10"]), poison=False)
    graph = ref.graph
    items = [(op, p) for op, p in zip(graph.ops, ref.params) if cgen._is_elementwise(graph, op, p)]
    inside = {op.index for op, _ in items}
    folded = cgen._table_offsets(graph, items, inside, True)
    assert folded and all(cgen._is_table(graph, op, p) for op, p in items
                          if op.outputs[0] in folded)
    assert cgen._table_offsets(graph, items, inside, False) == {}  # no fast MUL, no fold
    t = next(iter(folded))
    assert t not in cgen._table_offsets(graph, items, inside - {graph.consumers(t)[0]}, True)


def test_an_unsafe_fusion_is_split(build_model):
    """A store into bytes a later element still has to read makes the loop unsafe: the
    checker refuses it (the generator then emits one loop per op)."""
    tflite = build_model(*BUILT["H16-C10"])
    ref = NativeReference(tflite, poison=False)
    graph = ref.graph
    items = [(op, p) for op, p in zip(graph.ops, ref.params)
             if cgen._is_elementwise(graph, op, p)]
    arrays = cgen._Arrays([], [], [], [])
    last_out = items[-1][0].outputs[0]
    first_in = next(t for t in items[0][0].inputs if not graph.tensor(t).is_constant)

    def location(t):  # the final store lands one byte above the first operand
        return ("kws_scratch", 1) if t == last_out else ("kws_scratch", 0 if t == first_in
                                                          else 1000 + 100 * t)

    with pytest.raises(cgen._Unsafe):
        cgen._loop_step(graph, items, lambda t: f"kws_scratch + {t}", location, arrays, [],
                        True)
    steps = cgen._elementwise_steps(graph, items, lambda t: f"kws_scratch + {t}", location,
                                    arrays, [], specialize=True, fuse=True)
    assert len(steps) == len(items)
