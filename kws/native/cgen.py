"""The C half of the native backend: the int8 step model compiled into plain C99.

`sources(tflite_bytes, digest)` returns {file name: text}: `kws_model.h` (the model API shared
with the TFLM backend), `kws_model.c` (weights as const arrays, every requantization constant,
the op sequence as kernel calls on one static scratch buffer) and `kws_kernels.h/.c` (portable
int8 kernels). No interpreter, no malloc, no floating point at run time.

Everything is computed here from the very objects `NativeReference` runs on (graph.parse_model,
ops.prepare, interpret.plan_memory), so "generated C == NativeReference == TFLM" compares the
same integers:

- FULLY_CONNECTED, fast path (special.fc_channels accepts the constants): weights `kws_w_<op>`
  in the row-pair layout when special.pairable proves it exact (int16, 2^8 * odd + even row,
  special.pair_weights; start values with the odd rows' biases folded in, special.pair_bias),
  else interleaved 4 rows at a time (int8, special.interleave_weights), folded biases
  `kws_b_<op>`, and `kws_q_<op>`: one `kws_fc_requant_t` (2m - 2^32, rounding constant with the
  zero point, shift) per output channel, or a single one when all channels share it
  (per-tensor weights), run by kws_fc_fast_int8[_shared][_pair]_<in>x<out> / kws_fc_fast...
  Otherwise the generic kernels: weights row by row, biases
  `kws_b_<op>` with the input offset pre-folded (bias + input_offset * row sum, int32),
  per-channel multipliers and shifts `kws_m_<op>` / `kws_s_<op>` (per-tensor ones are passed
  as two integers).
- ADD / SUB / MUL / LOGISTIC / TANH: consecutive ones of one size become one C loop
  (`_loop_step`): operands loaded once, intermediate values in int32 locals, each op's int8
  rounding and clamp kept, stores only for tensors read later (when the memory plan makes
  that unsafe, one loop per op). Per op the cheapest form special.py proves exact: a 256-entry
  table `kws_t_<op>` (LOGISTIC, TANH, an op with a constant scalar operand), the affine
  single-rounding ADD/SUB, the fast MUL requantization; else the generic element function
  with its params struct `kws_p_<op>`. A table whose readers are fast MULs adding one input
  offset stores value + offset (`_table_offsets`). Two elements per iteration where the core
  has the registers (KWS_TWO_LANES). A full-size constant operand is an int8 array
  `kws_const_<tensor>`.
- SPLIT / SPLIT_V / STRIDED_SLICE / CONCATENATION / RESHAPE: nothing for an output the memory
  plan aliases into its input, memcpy per segment otherwise.
- The step's frame and state are read where the caller keeps them (no copy in); logits and
  new_state are copied out at the end (state updated in place).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from kws.csource.carrays import c_float, int_rows
from kws.csource.render import render
from kws.errors import KwsError
from kws.native import ops as native_ops
from kws.native import special
from kws.native.graph import COPY_OPS

TEMPLATES = {
    "kws_model.h": "native/kws_model.h.j2",
    "kws_model.c": "native/kws_model.c.j2",
    "kws_kernels.h": "native/kws_kernels.h.j2",
    "kws_kernels.c": "native/kws_kernels.c.j2",
}

ALIGNMENT = 16  # bytes, for weights and the scratch buffer (KWS_ALIGN)
_IDENTIFIER = re.compile(r"kws_[a-z0-9_]+\Z")
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def identifier(name: str) -> str:
    """A C identifier of the generated code: `kws_` prefix, lower case letters, digits, `_`."""
    if not _IDENTIFIER.match(name):
        raise KwsError(f"generated C identifier {name!r} is not of the form kws_[a-z0-9_]+")
    return name


def c_int32(value: int) -> str:
    value = int(value)
    if not INT32_MIN <= value <= INT32_MAX:
        raise KwsError(f"{value} does not fit int32")
    return "(-2147483647 - 1)" if value == INT32_MIN else str(value)


def _int32_rows(values) -> list[str]:
    items = [c_int32(v) for v in np.asarray(values).ravel()]
    return [", ".join(items[i:i + 8]) + "," for i in range(0, len(items), 8)]


@dataclass
class _Arrays:
    int8: list
    int32: list
    int16: list
    uint8: list

    def add_table(self, name: str, values, comment: str) -> tuple[str, str]:
        """A 256-entry lookup table in the narrowest C type holding its values: (name, type)."""
        v = np.asarray(values, np.int64)
        if v.min() >= -128 and v.max() <= 127:
            return self.add_int8(name, v, comment), "int8_t"
        if v.min() >= 0 and v.max() <= 255:
            self.uint8.append({"name": identifier(name), "size": int(v.size),
                               "rows": int_rows(v), "comment": comment})
            return name, "uint8_t"
        return self.add_int16(name, v, comment), "int16_t"

    def add_int16(self, name: str, values, comment: str) -> str:
        v = np.asarray(values).astype(np.int16).ravel()
        self.int16.append({"name": identifier(name), "size": max(int(v.size), 1),
                           "rows": int_rows(v, 12) if v.size else ["0,"], "comment": comment})
        return name

    def add_int8(self, name: str, values, comment: str) -> str:
        v = np.asarray(values).astype(np.int8).ravel()
        self.int8.append({"name": identifier(name), "size": max(int(v.size), 1),
                          "rows": int_rows(v) if v.size else ["0,"], "comment": comment})
        return name

    def add_int32(self, name: str, values, comment: str) -> str:
        v = np.asarray(values, np.int64).ravel()
        self.int32.append({"name": identifier(name), "size": max(int(v.size), 1),
                           "rows": _int32_rows(v) if v.size else ["0,"], "comment": comment})
        return name


def _reference(tflite_bytes: bytes):
    from kws.native.interpret import NativeReference

    return NativeReference(tflite_bytes, poison=False)


def context(tflite_bytes: bytes, *, specialize: bool = True, fuse: bool = True) -> dict:
    """Every value the model templates print (KwsError for anything the C code cannot run).
    `specialize=False` keeps every op on the generic kernels (no special.py form), `fuse=False`
    gives each element-wise op a loop of its own; both only for tests and measurements."""
    ref = _reference(tflite_bytes)
    graph, plan, io = ref.graph, ref.plan, ref.io
    if not ref.state_shared:
        raise KwsError("new_state and state are quantized differently, so the C step cannot copy "
                       "new_state into state; run share_state_quantization on the model first")
    frame_t, state_t = io["frame"].tensor, io["state"].tensor
    args = {frame_t: "frame", state_t: "state"}
    if set(graph.inputs) != set(args):
        raise KwsError(f"the step model must have exactly the inputs frame and state, found "
                       f"tensors {list(graph.inputs)}")

    arrays = _Arrays([], [], [], [])
    constants: dict[int, str] = {}

    def pointer(t: int, extra: int = 0) -> str:
        """C expression of tensor t's first byte (plus `extra` bytes)."""
        tensor = graph.tensor(t)
        if tensor.is_constant:
            if t not in constants:
                if tensor.dtype != "int8":
                    raise KwsError(f"{tensor.label()}: a constant {tensor.dtype} operand cannot "
                                   "be read by the int8 kernels")
                constants[t] = arrays.add_int8(f"kws_const_{t}", tensor.data,
                                               f"constant {tensor.label()}")
            base, offset = constants[t], extra
        else:
            p = plan.placements[t]
            root = plan.root(t)
            if root in args:
                base, offset = args[root], p.offset - plan.placements[root].offset + extra
            else:
                base, offset = "kws_scratch", p.offset + extra
        return base if offset == 0 else f"{base} + {offset}"

    def location(t: int) -> tuple[str, int]:
        """(buffer, byte offset) of a non-constant tensor."""
        p = plan.placements[t]
        root = plan.root(t)
        if root in args:
            return args[root], p.offset - plan.placements[root].offset
        return "kws_scratch", p.offset

    structs, steps, requant_arrays = [], [], []
    region: list = []  # (op, params) of the element-wise ops fused so far

    def flush() -> None:
        if region:
            steps.extend(_elementwise_steps(graph, region, pointer, location, arrays, structs,
                                            specialize=specialize, fuse=fuse))
            region.clear()

    for op, params in zip(graph.ops, ref.params):
        n = op.index
        label = params.label
        if _is_elementwise(graph, op, params):
            size = graph.tensor(op.outputs[0]).elements
            if region and graph.tensor(region[0][0].outputs[0]).elements != size:
                flush()
            region.append((op, params))
            continue
        if isinstance(params, native_ops.CopyParams) and op.name in COPY_OPS and \
                all(plan.placements[t].alias_of is not None for t in op.outputs) and \
                not any(t in o.outputs for o, _ in region for t in op.inputs):
            # free (aliased) and reads nothing the open region keeps in registers
            steps.append({"kind": "copy", "label": label, "copies": [],
                          "note": "; ".join(f"output {j} is an alias at {pointer(t)}"
                                            for j, t in enumerate(op.outputs))})
            continue
        flush()
        if isinstance(params, native_ops.FullyConnectedParams):
            bound = int(np.abs(params.folded_bias.astype(np.int64)).max(initial=0)) + \
                params.accum_depth * 128 * 128
            if bound > INT32_MAX:
                raise KwsError(f"{label}: the int32 accumulator could overflow "
                               f"(accumulation depth {params.accum_depth})")
            fast = special.fc_channels(params) if specialize else None
            s_name = identifier(f"kws_p_{n}")
            if fast is None or not fast.full_range:
                structs.append({"type": "kws_fc_params_t", "name": s_name, "comment": label,
                                "fields": [("output_offset", c_int32(params.output_offset)),
                                           ("activation_min", c_int32(params.activation_min)),
                                           ("activation_max", c_int32(params.activation_max))]})
            common = {"label": label, "input": pointer(op.inputs[0]), "params": s_name,
                      "batches": params.batches, "accum_depth": params.accum_depth,
                      "output_depth": params.output_depth, "output": pointer(op.outputs[0])}
            if fast is not None:
                shape = f"[{params.output_depth}][{params.accum_depth}]"
                if fast.paired:
                    w = arrays.add_int16(f"kws_w_{n}", special.pair_weights(params.weights),
                                         f"{label}: weights {shape}, rows paired, 2^8 * odd + "
                                         "even per int16 (special.pair_weights)")
                    b = arrays.add_int32(f"kws_b_{n}", fast.bias,
                                         f"{label}: bias + input_offset ({params.input_offset}) "
                                         "* row sums; odd rows of each group of 4: even + 2^8 * "
                                         "odd (special.pair_bias)")
                else:
                    w = arrays.add_int8(f"kws_w_{n}", special.interleave_weights(params.weights),
                                        f"{label}: weights {shape}, {special.FC_GROUP} rows "
                                        "interleaved (special.interleave_weights)")
                    b = arrays.add_int32(f"kws_b_{n}", fast.bias,
                                         f"{label}: bias + input_offset ({params.input_offset}) "
                                         "* row sums")
                q_name = identifier(f"kws_q_{n}")
                requant_arrays.append({
                    "name": q_name, "size": len(fast.requant),
                    "comment": f"{label}: 2m - 2^32, rounding constant with the output zero "
                               "point, right shift; " + ("one for all channels (per-tensor)"
                                                         if fast.shared else "per channel"),
                    "rows": ["{" + ", ".join(c_int32(v) for v in row) + "},"
                             for row in fast.requant]})
                steps.append({**common, "kind": "fc_fast_int8" if fast.full_range else "fc_fast",
                              "weights": w, "bias": b, "requant": q_name,
                              "function": fc_fast_function(fast.shared, fast.full_range,
                                                           params.accum_depth,
                                                           params.output_depth, fast.paired)})
                continue
            w = arrays.add_int8(f"kws_w_{n}", params.weights,
                                f"{label}: weights [{params.output_depth}][{params.accum_depth}]")
            b = arrays.add_int32(f"kws_b_{n}", params.folded_bias,
                                 f"{label}: bias + input_offset ({params.input_offset}) * row sums")
            step = {**common, "kind": "fc_per_channel" if params.per_channel else "fc_per_tensor",
                    "weights": w, "bias": b}
            if params.per_channel:
                step["multiplier"] = arrays.add_int32(f"kws_m_{n}", params.multiplier,
                                                      f"{label}: per-channel multipliers")
                step["shift"] = arrays.add_int32(f"kws_s_{n}", params.shift,
                                                 f"{label}: per-channel shifts (> 0: left)")
            else:
                step["multiplier"] = c_int32(params.multiplier[0])
                step["shift"] = c_int32(params.shift[0])
            steps.append(step)
        elif isinstance(params, (native_ops.AddSubParams, native_ops.MulParams,
                                 native_ops.LutParams)):
            # an element-wise op the fused loops cannot take (general broadcasting)
            raise KwsError(f"{label}: general broadcasting of shapes "
                           f"{[list(s) for s in params.input_shapes]} is not supported by "
                           "the generated C (only equal shapes or a scalar operand)")
        elif isinstance(params, native_ops.CopyParams) and op.name in COPY_OPS:
            copies, aliased = [], []
            for j, out_t in enumerate(op.outputs):
                if plan.placements[out_t].alias_of is not None:
                    aliased.append(f"output {j} is an alias at {pointer(out_t)}")
                    continue
                for seg in params.segments[j]:
                    copies.append({"dst": pointer(out_t, seg.dst_start),
                                   "src": pointer(op.inputs[seg.input_pos], seg.src_start),
                                   "length": seg.length})
            steps.append({"kind": "copy", "label": label, "copies": copies,
                          "note": "; ".join(aliased) if aliased else "copies"})
        else:  # prepare() accepted an op this generator does not know
            raise KwsError(f"{label} is not supported by the native C generator")
    flush()

    logits_t, new_state_t = io["logits"].tensor, io["new_state"].tensor
    fast_steps = [s for s in steps if s.get("kind", "").startswith("fc_fast")]
    return {
        "frame_size": ref.frame_size,
        "state_size": ref.state_size,
        "labels": ref.labels,
        "scratch_bytes": max(plan.total_bytes, 1),
        "alignment": ALIGNMENT,
        "state_zero_point": io["state"].zero_point,
        "frame_scale": c_float(io["frame"].scale),
        "frame_zero_point": io["frame"].zero_point,
        "logits_scale": c_float(io["logits"].scale),
        "logits_zero_point": io["logits"].zero_point,
        "op_count": len(graph.ops),
        "op_summary": ", ".join(graph.op_names),
        "int8_arrays": arrays.int8,
        "int16_arrays": arrays.int16,
        "uint8_arrays": arrays.uint8,
        "int32_arrays": arrays.int32,
        "requant_arrays": requant_arrays,
        # the model calls only depth-specialized fast FULLY_CONNECTEDs; the generic ones
        # (any depth, for kernel tests) are compiled only when a caller asks for them
        "fc_fast_variants": [],
        "fc_fast_functions": list({s["function"]["name"]: s["function"]
                                   for s in fast_steps}.values()),
        "fc_wide_words": max([2 * (s["accum_depth"] // 4) for s in fast_steps] + [1]),
        "structs": structs,
        "steps": steps,
        "new_state": pointer(new_state_t),
        "logits": pointer(logits_t),
    }


FC_FAST_VARIANTS = {
    False: {"suffix": "", "stride": 1,
            "comment": "requant[c]: one requantization per output channel (per-channel weights)"},
    True: {"suffix": "_shared", "stride": 0,
           "comment": "requant[0] for every output channel (per-tensor weights: 12 bytes of "
                      "flash per channel less)"},
}
FC_LAYOUTS = {
    False: {"suffix": "", "wtype": "int8_t", "body": "kws_fc_fast_body",
            "comment": "int8 weights, 4 rows interleaved"},
    True: {"suffix": "_pair", "wtype": "int16_t", "body": "kws_fc_pair_body",
           "comment": "int16 weights, rows paired (1 SXTB16 per 4 MACs)"},
}


def fc_fast_variant(shared: bool, paired: bool) -> dict:
    """The any-shape fast FULLY_CONNECTED of one requantization storage and weight layout (only
    compiled for kernel tests; a model calls the shape-specialized ones)."""
    v, layout = FC_FAST_VARIANTS[shared], FC_LAYOUTS[paired]
    return {"suffix": v["suffix"] + layout["suffix"], "stride": v["stride"],
            "wtype": layout["wtype"], "body": layout["body"],
            "comment": f"{v['comment']}; {layout['comment']}"}


def fc_fast_function(shared: bool, full_range: bool, depth: int, out_depth: int,
                     paired: bool = False) -> dict:
    """A fast FULLY_CONNECTED compiled for one shape: with the accumulation and output depths
    constants the compiler unrolls the 4-input blocks, drops the tail loops and the tests the
    generic kernel makes per group of 4 rows, and keeps the loop state in registers (~15% of a
    GRU step). `paired`: the row-pair weight layout (special.pair_weights)."""
    v = fc_fast_variant(shared, paired)
    kind = "_int8" if full_range else ""
    return {"name": f"kws_fc_fast{kind}{v['suffix']}_{int(depth)}x{int(out_depth)}",
            "int8": full_range, "stride": v["stride"], "depth": int(depth),
            "out_depth": int(out_depth), "wtype": v["wtype"], "body": v["body"],
            "comment": f"{v['comment']}; {int(depth)} inputs, {int(out_depth)} outputs"
                       + ("; int8 output range" if full_range else "")}


def _is_elementwise(graph, op, params) -> bool:
    """An op the fused element-wise loops run: LOGISTIC/TANH, or ADD/SUB/MUL of equal shapes
    or with one scalar operand."""
    if isinstance(params, native_ops.LutParams):
        return True
    return isinstance(params, (native_ops.AddSubParams, native_ops.MulParams)) and \
        params.broadcast != "general"


def _offset(x: str, offset: int) -> str:
    return f"({x} + {_lit(offset)})" if offset else x


def _lit(value: int) -> str:
    text = c_int32(value)
    return f"({text})" if text.startswith("-") or text.startswith("(") else text


def _clamped(inner: str, shift: int, lo: int, hi: int) -> str:
    value = f"({inner}) >> {shift}" if shift else f"({inner})"
    if (lo, hi) == (-128, 127):
        return f"kws_sat8({value})"
    return f"kws_clamp({value}, {_lit(lo)}, {_lit(hi)})"


def _table_middle(table: str, pre: list[str], ctype: str = "int8_t", offset: int = 0) -> str:
    """A pointer to entry 128 - offset of a 256-entry table, declared before the loop: indexed
    by the int8 value itself (plus `offset`, when the index is a table output stored with an
    offset folded in), one register-offset load per lookup (no `+ 128` add)."""
    if not -128 <= offset <= 128:
        raise KwsError(f"table index offset {offset} outside [-128, 128]")
    name = f"{table}_mid"
    pre.append(f"const {ctype} *const {name} = {table} + {128 - offset};")
    return name


def _table_offsets(graph, items, inside: set, specialize: bool) -> dict[int, int]:
    """{tensor: offset} for the outputs of the fused loop's table lookups whose table can hold
    value + offset: every reader is in the loop and is either another lookup (its index
    pointer moves by the offset, for free) or a fast MUL that adds this very input offset
    (x + o1) to it, which then costs nothing. The lookups are exact whatever the stored values;
    the MUL sees the same (x + o1)."""
    ops_by_index = {op.index: (op, p) for op, p in items}
    offsets: dict[int, int] = {}
    for op, p in items:
        out = op.outputs[0]
        if not _is_table(graph, op, p) or out in graph.outputs:
            continue
        wanted = set()
        for c in graph.consumers(out):
            if c not in inside:
                wanted = None
                break
            cop, cp = ops_by_index[c]
            if _is_table(graph, cop, cp):
                continue
            form = special.mul_fast(cp) if specialize and isinstance(cp, native_ops.MulParams) \
                else None
            if form is None or list(cop.inputs[:2]).count(out) != 1:
                wanted = None
                break
            wanted.add(form.o1 if cop.inputs[0] == out else form.o2)
        if wanted and len(wanted) == 1 and next(iter(wanted)) != 0:
            offsets[out] = next(iter(wanted))
    return offsets


def _is_table(graph, op, p) -> bool:
    """A fused-loop op computed as a 256-entry table: LOGISTIC/TANH, or ADD/SUB/MUL with a
    constant scalar operand."""
    if isinstance(p, native_ops.LutParams):
        return True
    return isinstance(p, (native_ops.AddSubParams, native_ops.MulParams)) and any(
        graph.tensor(t).is_constant and graph.tensor(t).elements == 1 for t in op.inputs[:2])


class _Unsafe(Exception):
    """A fused loop would overwrite bytes it still has to read."""


def _loop_step(graph, items, pointer, location, arrays, structs, specialize: bool) -> dict:
    """One C loop over the elements of consecutive element-wise ops: operands read once from
    memory, intermediate values in int32 locals (each op's int8 rounding and clamp kept),
    stores only for the tensors read after the loop."""
    inside = {op.index for op, _ in items}
    n = graph.tensor(items[0][0].outputs[0]).elements
    pre, loads, body, stores = [], [], [], []
    folded = _table_offsets(graph, items, inside, specialize)  # local = value + offset
    names: dict[int, str] = {}
    reads: list[int] = []
    forms: list[str] = []

    def value(t: int) -> str:
        if t in names:
            return names[t]
        tensor = graph.tensor(t)
        if tensor.elements == 1:
            name = f"s{t}"
            pre.append(f"const int32_t {name} = ({pointer(t)})[0];")
        else:
            name = f"x{t}"
            loads.append(f"const int32_t {name} = ({pointer(t)})[i];")
            if not tensor.is_constant:
                reads.append(t)
        names[t] = name
        return name

    for op, p in items:
        n_op = op.index
        out = op.outputs[0]
        off = folded.get(out, 0)
        plus = f" + {off} (folded for its readers)" if off else ""
        if isinstance(p, native_ops.LutParams):
            x_t = op.inputs[0]
            table, ctype = arrays.add_table(
                f"kws_t_{n_op}", special.natural_lut(p.table).astype(np.int64) + off,
                f"{p.label}: table[x + 128]{plus} (input zero point {p.input_zero_point})")
            expr = (f"(int32_t){_table_middle(table, pre, ctype, folded.get(x_t, 0))}"
                    f"[{value(x_t)}]")
            forms.append(f"{p.label}: table{plus}")
        else:
            t1, t2 = op.inputs[:2]
            const = [graph.tensor(t).is_constant and graph.tensor(t).elements == 1
                     for t in (t1, t2)]
            if any(const):
                pos = 0 if const[0] else 1
                c_value = int(np.asarray(graph.tensor((t1, t2)[pos]).data).ravel()[0])
                x_t = (t1, t2)[1 - pos]
                table, ctype = arrays.add_table(
                    f"kws_t_{n_op}", special.unary_table(p, c_value, pos).astype(np.int64) + off,
                    f"{p.label} with operand {pos + 1} = {c_value}: table[x + 128]{plus}")
                expr = (f"(int32_t){_table_middle(table, pre, ctype, folded.get(x_t, 0))}"
                        f"[{value(x_t)}]")
                forms.append(f"{p.label}: table{plus}")
            elif isinstance(p, native_ops.AddSubParams):
                form = special.affine_add_sub(p) if specialize else None
                x, y = value(t1), value(t2)
                if form is not None:
                    expr = _clamped(f"{_lit(form.a)} * {x} + ({_lit(form.b)} * {y} + "
                                    f"{_lit(form.c)})", form.k, form.lo, form.hi)
                    forms.append(f"{p.label}: affine >> {form.k}")
                else:
                    expr = (f"kws_add_sub_element({x}, {y}, &{_params_struct(p, n_op, structs)}, "
                            f"{1 if p.op == 'SUB' else 0})")
                    forms.append(f"{p.label}: generic")
            else:
                form = special.mul_fast(p) if specialize else None
                x, y = value(t1), value(t2)
                if form is not None:
                    product = (f"{_offset(x, form.o1 - folded.get(t1, 0))} * "
                               f"{_offset(y, form.o2 - folded.get(t2, 0))}")
                    expr = _clamped(f"kws_rdbp_fast(kws_srdhm_fast({product}, "
                                    f"{_lit(form.multiplier2)}), {_lit(form.round)}, "
                                    f"{form.shift})", 0, form.lo, form.hi)
                    forms.append(f"{p.label}: fast requantization")
                else:
                    expr = f"kws_mul_element({x}, {y}, &{_params_struct(p, n_op, structs)})"
                    forms.append(f"{p.label}: generic")
        body.append(f"const int32_t v{out} = {expr};")
        names[out] = f"v{out}"

    stored = []
    for op, _ in items:
        for t in op.outputs:
            if t in graph.outputs or any(c not in inside for c in graph.consumers(t)):
                stores.append(f"({pointer(t)})[i] = (int8_t){names[t]};")
                stored.append(t)
    # Element i is read (all loads first) before element i is written, so a store may share
    # bytes with a load only at the same or a lower offset (it then hits elements already read).
    for t in stored:
        base, off = location(t)
        for u in reads:
            ubase, uoff = location(u)
            if base == ubase and off < uoff + n and uoff < off + n and off > uoff:
                raise _Unsafe(f"tensor {t} would overwrite tensor {u}")
        for u in stored:
            ubase, uoff = location(u)
            if u != t and base == ubase and off < uoff + n and uoff < off + n:
                raise _Unsafe(f"tensors {t} and {u} share bytes")
    lines = loads + body + stores
    two = _two_lanes(lines, [v for v in names.values() if v[0] in "xv"]) if n % 2 == 0 else None
    return {"kind": "loop", "label": "ELEMENTWISE LOOP: " + ", ".join(p.label for _, p in items),
            "forms": forms, "n": n, "pre": pre, "body": lines, "two_lanes": two}


def _two_lanes(lines: list[str], local_names: list[str]) -> list[str]:
    """The loop body for elements i and i + 1, statement by statement side by side: a constant
    the compiler cannot keep in a register is then loaded once for two elements, and the loop
    test runs once per two (about 3 instructions per element less on the M4; compiled where
    kws_kernels.h defines KWS_TWO_LANES). Each lane keeps its own locals (suffix _a / _b);
    every load still comes before every store, and element i + 1 is stored after element i, so
    the memory plan's safety rule (_Unsafe) still holds."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, local_names)) + r")\b")
    out = []
    for line in lines:
        for suffix, index in (("_a", "[i]"), ("_b", "[i + 1u]")):
            out.append(pattern.sub(lambda m: m.group(1) + suffix, line).replace("[i]", index))
    return out


def _params_struct(p, n_op: int, structs: list) -> str:
    name = identifier(f"kws_p_{n_op}")
    if isinstance(p, native_ops.AddSubParams):
        names = ("input1_offset", "input2_offset", "output_offset", "left_shift",
                 "input1_multiplier", "input1_shift", "input2_multiplier", "input2_shift",
                 "output_multiplier", "output_shift", "activation_min", "activation_max")
        ctype = "kws_add_sub_params_t"
    else:
        names = ("input1_offset", "input2_offset", "output_offset", "output_multiplier",
                 "output_shift", "activation_min", "activation_max")
        ctype = "kws_mul_params_t"
    structs.append({"type": ctype, "name": name, "comment": p.label,
                    "fields": [(f, c_int32(getattr(p, f))) for f in names]})
    return name


def _elementwise_steps(graph, region, pointer, location, arrays, structs, *, specialize: bool,
                       fuse: bool) -> list[dict]:
    """The loops of a run of consecutive element-wise ops of one size: one fused loop when
    that is safe for the memory plan, else one loop per op (always safe: the plan never lets
    an op's output share bytes with its inputs)."""
    if fuse and len(region) > 1:
        mark = (len(arrays.int8), len(arrays.uint8), len(arrays.int16), len(structs))
        try:
            return [_loop_step(graph, region, pointer, location, arrays, structs, specialize)]
        except _Unsafe:
            del arrays.int8[mark[0]:], arrays.uint8[mark[1]:], arrays.int16[mark[2]:]
            del structs[mark[3]:]
    return [_loop_step(graph, [item], pointer, location, arrays, structs, specialize)
            for item in region]


def sources(tflite_bytes: bytes, digest: str | None = None, *, specialize: bool = True,
            fuse: bool = True) -> dict[str, str]:
    """{file name: text} of the model's C code. `digest` (the bundle's sha256, named in every
    banner) defaults to the sha256 of the .tflite bytes; `specialize` and `fuse` as in
    `context`."""
    ctx = context(tflite_bytes, specialize=specialize, fuse=fuse)
    digest = digest or hashlib.sha256(bytes(tflite_bytes)).hexdigest()
    return {name: render(tpl, ctx, digest) for name, tpl in TEMPLATES.items()}
