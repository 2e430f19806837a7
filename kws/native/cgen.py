"""The C half of the native backend: the int8 step model compiled into plain C99.

`sources(tflite_bytes, digest)` returns {file name: text}: `kws_model.h` (the model API shared
with the TFLM backend), `kws_model.c` (weights as const arrays, every requantization constant,
the op sequence as kernel calls on one static scratch buffer) and `kws_kernels.h/.c` (portable
int8 kernels). No interpreter, no malloc, no floating point at run time.

Everything is computed here from the very objects `NativeReference` runs on (graph.parse_model,
ops.prepare, interpret.plan_memory), so "generated C == NativeReference == TFLM" compares the
same integers:

- FULLY_CONNECTED: weights `kws_w_<op>` (int8, 16-byte aligned), biases `kws_b_<op>` with the
  input offset pre-folded (bias + input_offset * row sum, int32), per-channel multipliers and
  shifts `kws_m_<op>` / `kws_s_<op>` (per-tensor ones are passed as two integers).
- ADD / SUB / MUL: one const params struct each (`kws_p_<op>`); a scalar operand is read with
  stride 0; a constant operand is an int8 array `kws_const_<tensor>`.
- LOGISTIC / TANH: 256-byte tables `kws_lut_<op>` indexed by (uint8_t)x.
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

from kws.codegen.carrays import c_float, int_rows
from kws.codegen.render import render
from kws.errors import KwsError
from kws.native import ops as native_ops
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


def context(tflite_bytes: bytes) -> dict:
    """Every value the model templates print (KwsError for anything the C code cannot run)."""
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

    arrays = _Arrays([], [])
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

    structs, steps = [], []
    for op, params in zip(graph.ops, ref.params):
        n = op.index
        label = params.label
        if isinstance(params, native_ops.FullyConnectedParams):
            bound = int(np.abs(params.folded_bias.astype(np.int64)).max(initial=0)) + \
                params.accum_depth * 128 * 128
            if bound > INT32_MAX:
                raise KwsError(f"{label}: the int32 accumulator could overflow "
                               f"(accumulation depth {params.accum_depth})")
            w = arrays.add_int8(f"kws_w_{n}", params.weights,
                                f"{label}: weights [{params.output_depth}][{params.accum_depth}]")
            b = arrays.add_int32(f"kws_b_{n}", params.folded_bias,
                                 f"{label}: bias + input_offset ({params.input_offset}) * row sums")
            s_name = identifier(f"kws_p_{n}")
            structs.append({"type": "kws_fc_params_t", "name": s_name, "comment": label,
                            "fields": [("output_offset", c_int32(params.output_offset)),
                                       ("activation_min", c_int32(params.activation_min)),
                                       ("activation_max", c_int32(params.activation_max))]})
            step = {"kind": "fc_per_channel" if params.per_channel else "fc_per_tensor",
                    "label": label, "input": pointer(op.inputs[0]), "weights": w, "bias": b,
                    "params": s_name, "batches": params.batches,
                    "accum_depth": params.accum_depth, "output_depth": params.output_depth,
                    "output": pointer(op.outputs[0])}
            if params.per_channel:
                step["multiplier"] = arrays.add_int32(f"kws_m_{n}", params.multiplier,
                                                      f"{label}: per-channel multipliers")
                step["shift"] = arrays.add_int32(f"kws_s_{n}", params.shift,
                                                 f"{label}: per-channel shifts (> 0: left)")
            else:
                step["multiplier"] = c_int32(params.multiplier[0])
                step["shift"] = c_int32(params.shift[0])
            steps.append(step)
        elif isinstance(params, (native_ops.AddSubParams, native_ops.MulParams)):
            if params.broadcast == "general":
                raise KwsError(f"{label}: general broadcasting of shapes "
                               f"{[list(s) for s in params.input_shapes]} is not supported by "
                               "the generated C (only equal shapes or a scalar operand)")
            s_name = identifier(f"kws_p_{n}")
            if isinstance(params, native_ops.AddSubParams):
                names = ("input1_offset", "input2_offset", "output_offset", "left_shift",
                         "input1_multiplier", "input1_shift", "input2_multiplier",
                         "input2_shift", "output_multiplier", "output_shift", "activation_min",
                         "activation_max")
                ctype, kind = "kws_add_sub_params_t", "add_sub"
            else:
                names = ("input1_offset", "input2_offset", "output_offset", "output_multiplier",
                         "output_shift", "activation_min", "activation_max")
                ctype, kind = "kws_mul_params_t", "mul"
            structs.append({"type": ctype, "name": s_name, "comment": label,
                            "fields": [(f, c_int32(getattr(params, f))) for f in names]})
            out = graph.tensor(op.outputs[0])
            steps.append({"kind": kind, "label": label, "params": s_name,
                          "input1": pointer(op.inputs[0]),
                          "stride1": 0 if params.broadcast == "input1_scalar" else 1,
                          "input2": pointer(op.inputs[1]),
                          "stride2": 0 if params.broadcast == "input2_scalar" else 1,
                          "subtract": 1 if params.op == "SUB" else 0,
                          "n": out.elements, "output": pointer(op.outputs[0])})
        elif isinstance(params, native_ops.LutParams):
            table = arrays.add_int8(f"kws_lut_{n}", params.table,
                                    f"{label}: table[(uint8_t)x] (input zero point "
                                    f"{params.input_zero_point})")
            steps.append({"kind": "lut", "label": label, "table": table,
                          "input": pointer(op.inputs[0]), "n": graph.tensor(op.outputs[0]).elements,
                          "output": pointer(op.outputs[0])})
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

    logits_t, new_state_t = io["logits"].tensor, io["new_state"].tensor
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
        "int32_arrays": arrays.int32,
        "structs": structs,
        "steps": steps,
        "new_state": pointer(new_state_t),
        "logits": pointer(logits_t),
    }


def sources(tflite_bytes: bytes, digest: str | None = None) -> dict[str, str]:
    """{file name: text} of the model's C code. `digest` (the bundle's sha256, named in every
    banner) defaults to the sha256 of the .tflite bytes."""
    ctx = context(tflite_bytes)
    digest = digest or hashlib.sha256(bytes(tflite_bytes)).hexdigest()
    return {name: render(tpl, ctx, digest) for name, tpl in TEMPLATES.items()}
