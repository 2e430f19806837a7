"""The int8 kernels of the native backend: per op a `prepare` that computes every integer the C
kernel needs, and an `evaluate` that uses only those integers.

`prepare_*` mirrors the Prepare function of the tflite-micro kernel (reference kernels, the
double-rounding build) and `evaluate_*` its Eval, so the two agree bit for bit; the tests check
that against the tflite-micro interpreter, exhaustively where the input space allows. In each
`evaluate`, inputs may carry extra leading batch axes (several independent clips at once); a
constant operand is passed without them.

Integer recipes (x, y int8 inputs; all arithmetic on int32 values; MBQM(v, m, s) is
`multiply_by_quantized_multiplier`, i.e. RoundingDivideByPOT(SRDHM(v * 2^max(s,0), m), max(-s,0));
clamp is to [activation_min, activation_max]):

- FULLY_CONNECTED: acc[c] = folded_bias[c] + sum_k w[c,k] * x[k], with
  folded_bias[c] = bias[c] + input_offset * sum_k w[c,k] and input_offset = -input_zp;
  out[c] = clamp(MBQM(acc[c], multiplier[c], shift[c]) + output_zp).
- ADD / SUB: a = (x - x_zp) << 20, b = (y - y_zp) << 20;
  s = MBQM(a, m1, s1) +/- MBQM(b, m2, s2); out = clamp(MBQM(s, mo, so) + out_zp).
- MUL: out = clamp(MBQM((x - x_zp) * (y - y_zp), m, s) + out_zp).
- LOGISTIC / TANH: out = table[(uint8_t)x], a 256-byte table computed from the TFLM integer
  kernel (gemmlowp fixed-point logistic/tanh) for every int8 input.
- SPLIT, SPLIT_V, STRIDED_SLICE, CONCATENATION, RESHAPE: byte copies, listed as segments
  (input, src_start, dst_start, length) over flattened tensors. Like TFLM, they never
  requantize (the converter gives their operands one quantization).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kws.errors import KwsError
from kws.native import qmath
from kws.native.graph import Graph, Op, Tensor

_LEFT_SHIFT_8BIT = 20  # ADD/SUB scale both int8 inputs up by 2^20 before rescaling


# ---------------------------------------------------------------------------------------------
# Parameter records (what the C code generator renders)


@dataclass(frozen=True, eq=False)
class OpParams:
    op: str
    label: str
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, eq=False)
class FullyConnectedParams(OpParams):
    weights: np.ndarray  # int8 [output_depth, accum_depth]
    bias: np.ndarray  # int32 [output_depth] (zeros when the model has none)
    folded_bias: np.ndarray  # int32 [output_depth]: bias + input_offset * row sums
    multiplier: np.ndarray  # int32 [output_depth] (one value repeated when per-tensor)
    shift: np.ndarray  # int32 [output_depth], > 0 = left
    per_channel: bool
    input_offset: int  # -input zero point
    output_offset: int  # output zero point
    activation_min: int
    activation_max: int
    batches: int
    accum_depth: int
    output_depth: int


@dataclass(frozen=True, eq=False)
class AddSubParams(OpParams):
    input1_offset: int
    input2_offset: int
    output_offset: int
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int
    activation_min: int
    activation_max: int
    broadcast: str  # "none", "input1_scalar", "input2_scalar" or "general"


@dataclass(frozen=True, eq=False)
class MulParams(OpParams):
    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int
    activation_min: int
    activation_max: int
    broadcast: str


@dataclass(frozen=True, eq=False)
class LutParams(OpParams):
    """LOGISTIC or TANH: the TFLM kernel's prepare-time integers and the 256-entry table they
    produce, indexed by the input byte read as uint8 (table[(uint8_t)x])."""

    input_zero_point: int
    input_range_radius: int
    input_multiplier: int
    input_left_shift: int
    table: np.ndarray  # int8 [256]


@dataclass(frozen=True)
class Segment:
    """Copy `length` bytes from op input `input_pos` at flat `src_start` to flat `dst_start`."""

    input_pos: int
    src_start: int
    dst_start: int
    length: int


@dataclass(frozen=True, eq=False)
class CopyParams(OpParams):
    data_inputs: tuple[int, ...]  # op input positions holding data (not axis/begin/...)
    segments: tuple[tuple[Segment, ...], ...]  # per output

    def alias(self, output: int) -> tuple[int, int] | None:
        """(input_pos, byte offset) if output `output` is one contiguous run of one input, so it
        can live inside that input's bytes instead of being copied."""
        segs = self.segments[output]
        if len(segs) == 1:
            return segs[0].input_pos, segs[0].src_start
        return None


# ---------------------------------------------------------------------------------------------
# Helpers


def _int8(graph: Graph, op: Op, index: int, role: str, per_tensor: bool = True) -> Tensor:
    t = graph.tensor(index)
    if t.dtype != "int8":
        raise KwsError(f"{op.label()}: {role} {t.label()} is {t.dtype}; the native backend "
                       "runs int8 models only")
    if per_tensor and (len(t.scales) != 1 or t.scales[0] <= 0):
        raise KwsError(f"{op.label()}: {role} {t.label()} needs one positive per-tensor scale")
    return t


def _shapes(graph: Graph, indices) -> tuple[tuple[int, ...], ...]:
    return tuple(graph.tensor(i).shape if i >= 0 else () for i in indices)


def _lead(x: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The extra leading (batch) axes of `x` in front of a tensor of `shape`."""
    extra = x.ndim - len(shape)
    if extra < 0 or tuple(x.shape[extra:]) != tuple(shape):
        raise KwsError(f"operand of shape {x.shape} does not end with the tensor shape {shape}")
    return tuple(x.shape[:extra])


def _clamp_to_int8(values, low: int, high: int) -> np.ndarray:
    return np.clip(values, low, high).astype(np.int8)


def _broadcast_kind(shape1, shape2, out_shape) -> str:
    n1 = int(np.prod(shape1, dtype=np.int64))
    n2 = int(np.prod(shape2, dtype=np.int64))
    n_out = int(np.prod(out_shape, dtype=np.int64))
    try:
        broadcast = np.broadcast_shapes(tuple(shape1), tuple(shape2))
    except ValueError:
        broadcast = None
    if broadcast is None or int(np.prod(broadcast, dtype=np.int64)) != n_out:
        raise KwsError(f"input shapes {list(shape1)} and {list(shape2)} do not broadcast to the "
                       f"output shape {list(out_shape)}")
    if n1 == n2 == n_out:
        return "none"
    if n1 == 1:
        return "input1_scalar"
    if n2 == 1:
        return "input2_scalar"
    return "general"


def _binary_operands(params: OpParams, inputs) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Both operands as int64, aligned for numpy broadcasting as TFLite broadcasts (shapes
    right-aligned after the batch axes), plus the batch axes."""
    out_rank = len(params.output_shapes[0])
    xs = [np.asarray(v) for v in inputs[:2]]
    leads = [_lead(x, s) for x, s in zip(xs, params.input_shapes)]
    lead_rank = max(len(lead) for lead in leads)
    aligned = []
    for x, shape, lead in zip(xs, params.input_shapes, leads):
        lead = (1,) * (lead_rank - len(lead)) + lead
        aligned.append(x.astype(np.int64).reshape(lead + (1,) * (out_rank - len(shape)) + shape))
    lead = np.broadcast_shapes(*(a.shape[:lead_rank] for a in aligned))
    return aligned[0], aligned[1], lead


# ---------------------------------------------------------------------------------------------
# FULLY_CONNECTED


def prepare_fully_connected(graph: Graph, op: Op) -> FullyConnectedParams:
    x = _int8(graph, op, op.inputs[0], "input")
    w = _int8(graph, op, op.inputs[1], "weights", per_tensor=False)
    out = _int8(graph, op, op.outputs[0], "output")
    bias = graph.tensor(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    if w.data is None or len(w.shape) != 2:
        raise KwsError(f"{op.label()}: weights must be a constant 2-D tensor")
    output_depth, accum_depth = w.shape
    if any(z != 0 for z in w.zero_points):
        raise KwsError(f"{op.label()}: weights with a non-zero zero point are not supported")
    if not w.scales or any(s <= 0 for s in w.scales):
        raise KwsError(f"{op.label()}: weights carry no positive scale")
    per_channel = len(w.scales) > 1
    if per_channel and (len(w.scales) != output_depth or w.quantized_dimension != 0):
        raise KwsError(f"{op.label()}: per-channel weight scales must run along the output "
                       f"dimension ({len(w.scales)} scales, {output_depth} outputs)")
    if bias is not None:
        if bias.dtype != "int32" or bias.data is None or bias.elements != output_depth:
            raise KwsError(f"{op.label()}: bias must be a constant int32 tensor of "
                           f"{output_depth} values")
        bias_values = bias.data.reshape(-1).astype(np.int64)
    else:
        bias_values = np.zeros(output_depth, np.int64)
    if x.elements % accum_depth:
        raise KwsError(f"{op.label()}: input of {x.elements} values is not a multiple of the "
                       f"accumulation depth {accum_depth}")
    batches = x.elements // accum_depth
    if out.elements != batches * output_depth:
        raise KwsError(f"{op.label()}: output shape {list(out.shape)} is not "
                       f"[{batches}, {output_depth}]")

    in_scale, out_scale = x.scale, out.scale
    if per_channel:
        # FullyConnected Prepare, per-channel branch: double arithmetic throughout.
        reals = [in_scale * s / out_scale for s in w.scales]
    else:
        # GetQuantizedConvolutionMultipler: the float32 product is rounded before widening.
        if bias is not None and bias.scales:
            product = in_scale * w.scales[0]
            if abs(product - bias.scales[0]) / out_scale > 0.02:
                raise KwsError(f"{op.label()}: bias scale {bias.scales[0]:g} does not match "
                               f"input scale x weight scale {product:g} (tflite-micro rejects it)")
        reals = [float(np.float32(in_scale) * np.float32(w.scales[0])) / out_scale]
    pairs = [qmath.quantize_multiplier(r) for r in reals]
    multiplier = np.array([m for m, _ in pairs], np.int64)
    shift = np.array([s for _, s in pairs], np.int64)
    if not per_channel:
        multiplier = np.repeat(multiplier, output_depth)
        shift = np.repeat(shift, output_depth)
    if shift.max(initial=0) > 30 or shift.min(initial=0) < -31:
        raise KwsError(f"{op.label()}: requantization shift out of range")

    weights = w.data.astype(np.int8)
    input_offset = -x.zero_point
    folded = bias_values + input_offset * weights.astype(np.int64).sum(axis=1)
    if folded.min(initial=0) < qmath.INT32_MIN or folded.max(initial=0) > qmath.INT32_MAX:
        raise KwsError(f"{op.label()}: bias plus input offset overflows int32")
    act_min, act_max = qmath.activation_range(op.options.fused_activation, out_scale,
                                              out.zero_point)
    return FullyConnectedParams(
        op=op.name, label=op.label(), input_shapes=(x.shape,), output_shapes=(out.shape,),
        weights=weights, bias=bias_values.astype(np.int32), folded_bias=folded.astype(np.int32),
        multiplier=multiplier.astype(np.int32), shift=shift.astype(np.int32),
        per_channel=per_channel, input_offset=input_offset, output_offset=out.zero_point,
        activation_min=act_min, activation_max=act_max, batches=batches,
        accum_depth=accum_depth, output_depth=output_depth,
    )


def evaluate_fully_connected(p: FullyConnectedParams, inputs) -> list[np.ndarray]:
    x = np.asarray(inputs[0])
    lead = _lead(x, p.input_shapes[0])
    rows = x.reshape(-1, p.accum_depth).astype(np.int64)
    acc = rows @ p.weights.astype(np.int64).T + p.folded_bias.astype(np.int64)
    acc = qmath.wrap_int32(acc)  # the C accumulator is int32
    scaled = qmath.multiply_by_quantized_multiplier(acc, p.multiplier, p.shift)
    out = _clamp_to_int8(scaled + p.output_offset, p.activation_min, p.activation_max)
    return [out.reshape(lead + p.output_shapes[0])]


# ---------------------------------------------------------------------------------------------
# ADD, SUB


def _add_sub_multipliers(s1: float, s2: float, so: float, left_shift: int):
    """The three real multipliers of ADD and SUB, in double arithmetic from the float32 scales.
    (tflite-micro's newest sub_common.cc computes SUB's in float32; the wheel measured here
    does not: on random quantizations the float32 variant is one step off for some input
    pairs, this one never. tests/native pins such a case.)"""
    twice_max = 2.0 * float(max(np.float32(s1), np.float32(s2)))
    return s1 / twice_max, s2 / twice_max, twice_max / (float(1 << left_shift) * so)


def prepare_add_sub(graph: Graph, op: Op) -> AddSubParams:
    a = _int8(graph, op, op.inputs[0], "input 1")
    b = _int8(graph, op, op.inputs[1], "input 2")
    out = _int8(graph, op, op.outputs[0], "output")
    left_shift = _LEFT_SHIFT_8BIT
    r1, r2, ro = _add_sub_multipliers(a.scale, b.scale, out.scale, left_shift)
    m1, s1 = qmath.quantize_multiplier_smaller_than_one_exp(r1)
    m2, s2 = qmath.quantize_multiplier_smaller_than_one_exp(r2)
    mo, so = qmath.quantize_multiplier_smaller_than_one_exp(ro)
    act_min, act_max = qmath.activation_range(op.options.fused_activation, out.scale,
                                              out.zero_point)
    return AddSubParams(
        op=op.name, label=op.label(), input_shapes=(a.shape, b.shape), output_shapes=(out.shape,),
        input1_offset=-a.zero_point, input2_offset=-b.zero_point, output_offset=out.zero_point,
        left_shift=left_shift, input1_multiplier=m1, input1_shift=s1, input2_multiplier=m2,
        input2_shift=s2, output_multiplier=mo, output_shift=so, activation_min=act_min,
        activation_max=act_max, broadcast=_broadcast_kind(a.shape, b.shape, out.shape),
    )


def add_sub_values(p: AddSubParams, x, y) -> np.ndarray:
    """ADD/SUB of int8 values x and y (any broadcastable arrays), as int8."""
    x, y = np.asarray(x, np.int64), np.asarray(y, np.int64)
    a = qmath.multiply_by_quantized_multiplier((x + p.input1_offset) * (1 << p.left_shift),
                                               p.input1_multiplier, p.input1_shift)
    b = qmath.multiply_by_quantized_multiplier((y + p.input2_offset) * (1 << p.left_shift),
                                               p.input2_multiplier, p.input2_shift)
    raw = qmath.wrap_int32(a + b if p.op == "ADD" else a - b)
    out = qmath.multiply_by_quantized_multiplier(raw, p.output_multiplier, p.output_shift)
    return _clamp_to_int8(out + p.output_offset, p.activation_min, p.activation_max)


def evaluate_add_sub(p: AddSubParams, inputs) -> list[np.ndarray]:
    x, y, lead = _binary_operands(p, inputs)
    out = add_sub_values(p, x, y)
    return [np.broadcast_to(out, lead + p.output_shapes[0]).copy()]


# ---------------------------------------------------------------------------------------------
# MUL


def prepare_mul(graph: Graph, op: Op) -> MulParams:
    a = _int8(graph, op, op.inputs[0], "input 1")
    b = _int8(graph, op, op.inputs[1], "input 2")
    out = _int8(graph, op, op.outputs[0], "output")
    multiplier, shift = qmath.quantize_multiplier(a.scale * b.scale / out.scale)
    act_min, act_max = qmath.activation_range(op.options.fused_activation, out.scale,
                                              out.zero_point)
    return MulParams(
        op=op.name, label=op.label(), input_shapes=(a.shape, b.shape), output_shapes=(out.shape,),
        input1_offset=-a.zero_point, input2_offset=-b.zero_point, output_offset=out.zero_point,
        output_multiplier=multiplier, output_shift=shift, activation_min=act_min,
        activation_max=act_max, broadcast=_broadcast_kind(a.shape, b.shape, out.shape),
    )


def mul_values(p: MulParams, x, y) -> np.ndarray:
    """MUL of int8 values x and y (any broadcastable arrays), as int8."""
    x, y = np.asarray(x, np.int64), np.asarray(y, np.int64)
    product = (x + p.input1_offset) * (y + p.input2_offset)
    out = qmath.multiply_by_quantized_multiplier(product, p.output_multiplier, p.output_shift)
    return _clamp_to_int8(out + p.output_offset, p.activation_min, p.activation_max)


def evaluate_mul(p: MulParams, inputs) -> list[np.ndarray]:
    x, y, lead = _binary_operands(p, inputs)
    out = mul_values(p, x, y)
    return [np.broadcast_to(out, lead + p.output_shapes[0]).copy()]


# ---------------------------------------------------------------------------------------------
# LOGISTIC, TANH

_LUT_INPUT_INTEGER_BITS = 4  # the int8 kernels evaluate gemmlowp's functions on Q4.27 inputs
_FIXED_OUTPUT = {"LOGISTIC": (1.0 / 256.0, -128), "TANH": (1.0 / 128.0, 0)}
INT8_INPUTS = np.arange(-128, 128, dtype=np.int64)


def lut_input_params(input_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, input_range_radius) as LOGISTIC/TANH Prepare
    computes them for an int8 input scale."""
    real = float(input_scale) * float(1 << (31 - _LUT_INPUT_INTEGER_BITS))
    q, left_shift = math.frexp(real)
    multiplier = int(qmath.round_half_away(q * float(1 << 31)))
    if multiplier > qmath.INT32_MAX:
        # The kernel casts 2^31 to int32: undefined behaviour, which differs between the host
        # (INT32_MIN) and an ARM core (saturates), so no table can match both.
        raise KwsError(f"input scale {input_scale!r} makes the LOGISTIC/TANH multiplier overflow")
    radius = qmath.calculate_input_radius(_LUT_INPUT_INTEGER_BITS, left_shift, 31)
    return multiplier, left_shift, radius


def logistic_int8(x, input_zero_point: int, input_range_radius: int, input_multiplier: int,
                  input_left_shift: int) -> np.ndarray:
    """reference_integer_ops::Logistic (int8): the arithmetic the LOGISTIC table is made of."""
    d = np.asarray(x, np.int64) - input_zero_point
    q4 = qmath.multiply_by_quantized_multiplier(d, input_multiplier, input_left_shift)
    q0 = qmath.fixed_point_logistic(q4, _LUT_INPUT_INTEGER_BITS)
    out = np.clip(qmath.rounding_divide_by_pot(q0, 31 - 8) - 128, -128, 127)
    out = np.where(d <= -input_range_radius, -128, np.where(d >= input_range_radius, 127, out))
    return out.astype(np.int8)


def tanh_int8(x, input_zero_point: int, input_range_radius: int, input_multiplier: int,
              input_left_shift: int) -> np.ndarray:
    """reference_integer_ops::Tanh (int8): the arithmetic the TANH table is made of."""
    d = np.asarray(x, np.int64) - input_zero_point
    q4 = qmath.multiply_by_quantized_multiplier(d, input_multiplier, input_left_shift)
    q0 = qmath.fixed_point_tanh(q4, _LUT_INPUT_INTEGER_BITS)
    out = np.clip(qmath.rounding_divide_by_pot(q0, 31 - 7), -128, 127)
    out = np.where(d <= -input_range_radius, -128, np.where(d >= input_range_radius, 127, out))
    return out.astype(np.int8)


def lut_table(op_name: str, input_scale: float, input_zero_point: int) -> np.ndarray:
    """The 256-byte LOGISTIC/TANH table for an input quantization, indexed by (uint8_t)x."""
    multiplier, left_shift, radius = lut_input_params(input_scale)
    kernel = logistic_int8 if op_name == "LOGISTIC" else tanh_int8
    values = kernel(INT8_INPUTS, input_zero_point, radius, multiplier, left_shift)
    table = np.empty(256, np.int8)
    table[INT8_INPUTS & 0xFF] = values
    return table


def prepare_lut(graph: Graph, op: Op) -> LutParams:
    x = _int8(graph, op, op.inputs[0], "input")
    out = _int8(graph, op, op.outputs[0], "output")
    scale, zero_point = _FIXED_OUTPUT[op.name]
    if not (np.float32(out.scale) == np.float32(scale) and out.zero_point == zero_point):
        raise KwsError(f"{op.label()}: int8 output must be quantized with scale {scale:g} and "
                       f"zero point {zero_point} (found {out.scale:g}, {out.zero_point}); the "
                       "kernel assumes it")
    if x.elements != out.elements:
        raise KwsError(f"{op.label()}: input and output sizes differ")
    multiplier, left_shift, radius = lut_input_params(x.scale)
    return LutParams(
        op=op.name, label=op.label(), input_shapes=(x.shape,), output_shapes=(out.shape,),
        input_zero_point=x.zero_point, input_range_radius=radius, input_multiplier=multiplier,
        input_left_shift=left_shift, table=lut_table(op.name, x.scale, x.zero_point),
    )


def evaluate_lut(p: LutParams, inputs) -> list[np.ndarray]:
    x = np.asarray(inputs[0])
    lead = _lead(x, p.input_shapes[0])
    return [p.table[x.astype(np.int64) & 0xFF].reshape(lead + p.output_shapes[0])]


# ---------------------------------------------------------------------------------------------
# Byte-moving ops


def _strided_slice_ranges(p_shape, options, label: str) -> list[np.ndarray]:
    """Per axis, the input indices STRIDED_SLICE visits (TFLite strided_slice_logic)."""
    rank = len(p_shape)
    begin, end, strides = options.begin, options.end, options.strides
    if not (len(begin) == len(end) == len(strides)) or len(begin) > rank:
        raise KwsError(f"{label}: begin/end/strides must have one value per axis")
    pad = rank - len(begin)  # missing leading axes are taken whole
    begin = (0,) * pad + tuple(begin)
    end = (1,) * pad + tuple(end)
    strides = (1,) * pad + tuple(strides)
    begin_mask = (options.begin_mask << pad) | ((1 << pad) - 1)
    end_mask = (options.end_mask << pad) | ((1 << pad) - 1)
    shrink = options.shrink_axis_mask << pad
    ranges = []
    for axis in range(rank):
        size, stride = p_shape[axis], strides[axis]
        if stride == 0:
            raise KwsError(f"{label}: stride 0 on axis {axis}")

        def clamp(v, size=size, stride=stride):
            return min(max(v, 0), size) if stride > 0 else min(max(v, -1), size - 1)

        start = begin[axis] + size if begin[axis] < 0 else begin[axis]
        start = clamp(start)
        if begin_mask & (1 << axis):
            start = 0 if stride > 0 else size - 1
        if shrink & (1 << axis):
            stop = start if start >= size else start + 1
        else:
            stop = end[axis] + (start if options.offset else 0)
            stop = clamp(stop + size if stop < 0 else stop)
            if end_mask & (1 << axis):
                stop = size if stride > 0 else -1
        ranges.append(np.arange(start, stop, stride, dtype=np.int64))
    return ranges


def _gather_maps(graph: Graph, op: Op) -> tuple[tuple[int, ...], list[tuple[np.ndarray,
                                                                               np.ndarray]]]:
    """(data input positions, per output (input position, flat source index) per element)."""
    if op.name == "SPLIT":
        data = (1,)
    elif op.name in ("SPLIT_V", "STRIDED_SLICE", "RESHAPE"):
        data = (0,)
    else:  # CONCATENATION
        data = tuple(range(len(op.inputs)))
    src = {}
    for pos in data:
        t = _int8(graph, op, op.inputs[pos], f"input {pos}", per_tensor=False)
        src[pos] = (np.full(t.shape, pos, np.int64), np.arange(t.elements).reshape(t.shape))
    o = op.options
    if op.name in ("SPLIT", "SPLIT_V"):
        pos_arr, idx_arr = src[data[0]]
        size = pos_arr.shape[o.axis]
        if op.name == "SPLIT":
            if not o.num_splits or size % o.num_splits:
                raise KwsError(f"{op.label()}: axis of size {size} does not split into "
                               f"{o.num_splits} equal parts")
            cuts = [size // o.num_splits * k for k in range(1, o.num_splits)]
        else:
            sizes = list(o.size_splits)
            if sizes.count(-1) == 1:
                sizes[sizes.index(-1)] = size - (sum(sizes) + 1)
            if sum(sizes) != size or min(sizes) < 0:
                raise KwsError(f"{op.label()}: split sizes {list(o.size_splits)} do not add up to "
                               f"{size}")
            cuts = list(np.cumsum(sizes)[:-1])
        maps = list(zip(np.split(pos_arr, cuts, axis=o.axis),
                        np.split(idx_arr, cuts, axis=o.axis)))
    elif op.name == "STRIDED_SLICE":
        pos_arr, idx_arr = src[0]
        grid = np.ix_(*_strided_slice_ranges(pos_arr.shape, o, op.label()))
        maps = [(pos_arr[grid], idx_arr[grid])]
    elif op.name == "CONCATENATION":
        if o.fused_activation != "NONE":
            raise KwsError(f"{op.label()}: a fused activation is not supported")
        maps = [(np.concatenate([src[p][0] for p in data], axis=o.axis),
                 np.concatenate([src[p][1] for p in data], axis=o.axis))]
    else:  # RESHAPE
        maps = [src[0]]
    if len(maps) != len(op.outputs):
        raise KwsError(f"{op.label()}: produces {len(maps)} outputs, the model lists "
                       f"{len(op.outputs)}")
    for (pos_arr, _), out_index in zip(maps, op.outputs):
        out = _int8(graph, op, out_index, "output", per_tensor=False)
        if pos_arr.size != out.elements:
            raise KwsError(f"{op.label()}: computes {pos_arr.size} values for "
                           f"{out.label()} of shape {list(out.shape)}")
    return data, [(p.reshape(-1), i.reshape(-1)) for p, i in maps]


def _segments(positions: np.ndarray, indices: np.ndarray) -> tuple[Segment, ...]:
    """Run-length encode a gather map into contiguous copies."""
    if positions.size == 0:
        return ()
    breaks = np.flatnonzero((np.diff(positions) != 0) | (np.diff(indices) != 1)) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [positions.size]])
    return tuple(Segment(int(positions[a]), int(indices[a]), int(a), int(b - a))
                 for a, b in zip(starts, stops))


def prepare_copy(graph: Graph, op: Op) -> CopyParams:
    data, maps = _gather_maps(graph, op)
    return CopyParams(
        op=op.name, label=op.label(), input_shapes=_shapes(graph, op.inputs),
        output_shapes=_shapes(graph, op.outputs), data_inputs=data,
        segments=tuple(_segments(p, i) for p, i in maps),
    )


def evaluate_copy(p: CopyParams, inputs) -> list[np.ndarray]:
    flat, leads = {}, []
    for pos in p.data_inputs:
        x = np.asarray(inputs[pos])
        lead = _lead(x, p.input_shapes[pos])
        leads.append(lead)
        flat[pos] = x.reshape(lead + (-1,))
    lead = np.broadcast_shapes(*leads) if leads else ()
    outputs = []
    for segs, shape in zip(p.segments, p.output_shapes):
        out = np.empty(lead + (int(np.prod(shape, dtype=np.int64)),), np.int8)
        for s in segs:
            out[..., s.dst_start:s.dst_start + s.length] = \
                flat[s.input_pos][..., s.src_start:s.src_start + s.length]
        outputs.append(out.reshape(lead + shape))
    return outputs


# ---------------------------------------------------------------------------------------------
# Dispatch

_PREPARE = {
    "FULLY_CONNECTED": prepare_fully_connected,
    "ADD": prepare_add_sub,
    "SUB": prepare_add_sub,
    "MUL": prepare_mul,
    "LOGISTIC": prepare_lut,
    "TANH": prepare_lut,
    "SPLIT": prepare_copy,
    "SPLIT_V": prepare_copy,
    "STRIDED_SLICE": prepare_copy,
    "CONCATENATION": prepare_copy,
    "RESHAPE": prepare_copy,
}

_EVALUATE = {
    FullyConnectedParams: evaluate_fully_connected,
    AddSubParams: evaluate_add_sub,
    MulParams: evaluate_mul,
    LutParams: evaluate_lut,
    CopyParams: evaluate_copy,
}


def prepare(graph: Graph, op: Op) -> OpParams:
    """Every integer constant the kernel of `op` needs (KwsError if it cannot run)."""
    if op.name not in _PREPARE:
        raise KwsError(f"{op.label()} is not supported by the native backend")
    return _PREPARE[op.name](graph, op)


def evaluate(params: OpParams, inputs) -> list[np.ndarray]:
    """Run one prepared op on int8 operands (constants included, in operand order; an omitted
    optional operand may be None). Returns the int8 outputs."""
    return _EVALUATE[type(params)](params, inputs)
