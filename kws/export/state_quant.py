"""One int8 quantization for the GRU state on both sides of the step model.

The device runs the step model once per feature frame and feeds `new_state` back as the next
`state`. That is a plain byte copy only if both tensors carry the same (scale, zero point), but
the converter calibrates them separately (seen: 0.00784/-1 in, 0.00784/0 or 0.00758/-1 out). The
state is a GRU hidden vector in [-1, 1], so both get 1/128 with zero point 0 here, by editing the
flatbuffer (the schema module shipped in the tflite-micro wheel) rather than by re-calibrating.

What may change when a tensor's quantization changes, by the kind of op touching it:

- ADD, SUB, MUL, QUANTIZE, DEQUANTIZE, LOGISTIC/TANH inputs, FULLY_CONNECTED outputs: nothing.
  These kernels compute their requantization multipliers from the tensors' scales in Prepare.
- FULLY_CONNECTED input 0: its int32 bias was quantized with input_scale * weight_scale and is
  added to the accumulator as is, so the bias values are rescaled by old/new input scale (the
  weight scale cancels, per channel or not) and the bias tensor's scales are rewritten.
- Ops that move bytes without requantizing (SPLIT, STRIDED_SLICE, RESHAPE, CONCATENATION, ...):
  every int8 operand must keep one shared quantization, so the change is *propagated* to their
  other int8 operands and from there on through the graph. This is what a multi-layer step
  model needs (the state is sliced per layer and the new states are concatenated; each layer's
  hidden vector is then also in [-1, 1]). Propagation stops with a KwsError if it would reach a
  constant, another model input/output or an op not listed here, instead of half-editing.
- LOGISTIC/TANH outputs have a fixed int8 quantization; reaching one with another is an error.

Everything else in the model (ops, weights, other tensors, metadata, signatures) is repacked
unchanged; constant buffers stay 16-byte aligned as the converter writes them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from kws.errors import KwsError

STATE_SCALE = 1.0 / 128.0
STATE_ZERO_POINT = 0
FILE_IDENTIFIER = b"TFL3"
BUFFER_ALIGNMENT = 16

ROLES = ("frame", "state", "new_state", "logits")

_BUILTIN_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_NUMPY_DTYPES = {
    "INT8": "int8", "UINT8": "uint8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FLOAT32": "float32", "FLOAT16": "float16", "BOOL": "bool",
}

# Kernels that derive all requantization constants from their operands' scales in Prepare.
_RESCALED_AT_PREPARE = frozenset({"ADD", "SUB", "MUL", "QUANTIZE", "DEQUANTIZE"})
# Unary kernels that read the input scale in Prepare but whose int8 output quantization is fixed.
_FIXED_INT8_OUTPUT = {"LOGISTIC": (1.0 / 256.0, -128), "TANH": (1.0 / 128.0, 0)}
# Kernels that copy int8 values without requantizing: all int8 operands share one quantization.
_TIED = frozenset({
    "SPLIT", "SPLIT_V", "STRIDED_SLICE", "SLICE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS",
    "CONCATENATION", "PACK", "UNPACK", "TRANSPOSE", "GATHER",
})


# ---------------------------------------------------------------------------------------------
# Reading the flatbuffer


def read_model(tflite_bytes: bytes) -> schema.ModelT:
    """The model as mutable schema objects; KwsError if the bytes are not a TFLite flatbuffer."""
    data = bytes(tflite_bytes)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise KwsError("not a TFLite model: the flatbuffer identifier is not TFL3")
    try:
        return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # a truncated or corrupt buffer fails anywhere inside the reader
        raise KwsError(f"cannot read the TFLite flatbuffer: {exc}") from exc


def builtin_name(model: schema.ModelT, opcode_index: int) -> str:
    """Builtin operator name (e.g. FULLY_CONNECTED) of an operator code, custom code if custom."""
    code = model.operatorCodes[opcode_index]
    # Codes above 127 live in builtinCode; the deprecated int8 field holds 127 for them.
    value = max(code.builtinCode, code.deprecatedBuiltinCode)
    if value == schema.BuiltinOperator.CUSTOM and code.customCode:
        return code.customCode.decode()
    return _BUILTIN_NAMES.get(value, f"BUILTIN_{value}")


def op_names(tflite_bytes: bytes | schema.ModelT) -> list[str]:
    """The model's ops in order of first appearance (what an op resolver must register)."""
    model = tflite_bytes if isinstance(tflite_bytes, schema.ModelT) else read_model(tflite_bytes)
    names: list[str] = []
    for graph in model.subgraphs or []:
        for op in graph.operators or []:
            name = builtin_name(model, op.opcodeIndex)
            if name not in names:
                names.append(name)
    return names


def _text(value) -> str:
    # names come from an untrusted file: never let bad UTF-8 escape as an exception
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


def _scales(tensor) -> list[float]:
    q = tensor.quantization
    return [] if q is None or q.scale is None else [float(s) for s in q.scale]


def _zero_points(tensor) -> list[int]:
    q = tensor.quantization
    return [] if q is None or q.zeroPoint is None else [int(z) for z in q.zeroPoint]


@dataclass(frozen=True)
class IoTensor:
    """One input or output of the step model.

    `position` is the index in the subgraph's input (or output) list, which is what the
    tflite-micro interpreter's set_input/get_output take; `tensor` is the subgraph tensor index
    (what share_state_quantization and tf.lite's set_tensor/get_tensor take).
    """

    role: str
    position: int
    tensor: int
    name: str
    signature_name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    @property
    def width(self) -> int:
        return self.shape[-1]

    def quantize(self, values) -> np.ndarray:
        """Float values -> int8 exactly as the device's feature code quantizes a frame."""
        from kws.features.reference import quantize  # imports librosa; only when needed

        if self.dtype != "int8" or self.scale <= 0:
            raise KwsError(f"{self.role} tensor is {self.dtype}, not quantized int8")
        return quantize(values, self.scale, self.zero_point)

    def dequantize(self, values) -> np.ndarray:
        return (np.asarray(values, np.float32) - self.zero_point) * np.float32(self.scale)


def _io_tensor(graph, role, position, index, signature_names) -> IoTensor:
    t = graph.tensors[index]
    scales, zps = _scales(t), _zero_points(t)
    type_name = _TYPE_NAMES.get(t.type, str(t.type))
    return IoTensor(
        role=role, position=position, tensor=int(index), name=_text(t.name),
        signature_name=signature_names.get(int(index), ""),
        shape=tuple(int(d) for d in (t.shape if t.shape is not None else [])),
        dtype=_NUMPY_DTYPES.get(type_name, type_name.lower()),
        scale=scales[0] if len(scales) == 1 else 0.0,
        zero_point=zps[0] if len(zps) == 1 else 0,
    )


def _name_hint(names: tuple[str, str], is_input: bool) -> str | None:
    """The role a tensor's signature/tensor names suggest, or None."""
    signature_name, tensor_name = (n.lower() for n in names)
    if is_input:
        for role in ("frame", "state"):
            if signature_name == role or tensor_name.endswith(f"_{role}:0") or tensor_name == role:
                return role
        return None
    if "logit" in signature_name or "logit" in tensor_name:
        return "logits"
    # (converter output tensors are called StatefulPartitionedCall:k, so no bare "state" there)
    if "state" in signature_name or "new_state" in tensor_name:
        return "new_state"
    # Keras exports outputs as output_<k> in model order, and the step model is (h, logits).
    return {"output_0": "new_state", "output_1": "logits"}.get(signature_name)


def find_io(tflite_bytes: bytes | schema.ModelT) -> dict[str, IoTensor]:
    """Which model input is `frame`/`state` and which output is `new_state`/`logits`.

    Shapes decide first (inputs [1,F], [1,H]; outputs [1,H], [1,C]: the state input and the
    new_state output have the same width); signature and tensor names break ties (F == H or
    H == C). Raises KwsError when the model is not a two-in, two-out step model or stays ambiguous.
    """
    model = tflite_bytes if isinstance(tflite_bytes, schema.ModelT) else read_model(tflite_bytes)
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise KwsError(f"step model must have one subgraph, found {len(model.subgraphs or [])}")
    graph = model.subgraphs[0]
    inputs = [int(i) for i in (graph.inputs if graph.inputs is not None else [])]
    outputs = [int(i) for i in (graph.outputs if graph.outputs is not None else [])]
    if len(inputs) != 2 or len(outputs) != 2:
        raise KwsError(f"step model must have 2 inputs and 2 outputs, found {len(inputs)} and "
                       f"{len(outputs)}")
    signature_names: dict[int, str] = {}
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex == 0:
            for entry in list(sig.inputs or []) + list(sig.outputs or []):
                signature_names[int(entry.tensorIndex)] = _text(entry.name)

    def widths(indices):
        result = []
        for index in indices:
            if not 0 <= index < len(graph.tensors or []):
                raise KwsError(f"step model input/output {index} names no tensor")
            if graph.tensors[index].shape is None:
                raise KwsError(f"step model tensor {_text(graph.tensors[index].name)} has no "
                               "shape, expected [1, n]")
            shape = [int(d) for d in graph.tensors[index].shape]
            if len(shape) != 2 or shape[0] != 1:
                raise KwsError(f"step model tensor {_text(graph.tensors[index].name)} has shape "
                               f"{shape}, expected [1, n]")
            result.append(shape[1])
        return result

    in_w, out_w = widths(inputs), widths(outputs)
    hints_in = [_name_hint((signature_names.get(i, ""), _text(graph.tensors[i].name)), True)
                for i in inputs]
    hints_out = [_name_hint((signature_names.get(i, ""), _text(graph.tensors[i].name)), False)
                 for i in outputs]

    candidates = []
    for state_pos in (0, 1):
        for new_state_pos in (0, 1):
            if in_w[state_pos] != out_w[new_state_pos]:
                continue
            roles_in = {state_pos: "state", 1 - state_pos: "frame"}
            roles_out = {new_state_pos: "new_state", 1 - new_state_pos: "logits"}
            score = sum((h == roles_in[p]) - (h is not None and h != roles_in[p])
                        for p, h in enumerate(hints_in))
            score += sum((h == roles_out[p]) - (h is not None and h != roles_out[p])
                         for p, h in enumerate(hints_out))
            candidates.append((score, state_pos, new_state_pos))
    if not candidates:
        raise KwsError(f"no model input has the width of a model output (inputs {in_w}, outputs "
                       f"{out_w}): not a step model with a state")
    candidates.sort(reverse=True)
    if len(candidates) > 1 and candidates[0][0] == candidates[1][0]:
        raise KwsError(f"cannot tell the step model's inputs/outputs apart (inputs {in_w}, "
                       f"outputs {out_w}); name them frame/state and new_state/logits")
    _, state_pos, new_state_pos = candidates[0]
    return {
        "frame": _io_tensor(graph, "frame", 1 - state_pos, inputs[1 - state_pos], signature_names),
        "state": _io_tensor(graph, "state", state_pos, inputs[state_pos], signature_names),
        "new_state": _io_tensor(graph, "new_state", new_state_pos, outputs[new_state_pos],
                                signature_names),
        "logits": _io_tensor(graph, "logits", 1 - new_state_pos, outputs[1 - new_state_pos],
                             signature_names),
    }


# ---------------------------------------------------------------------------------------------
# Writing the flatbuffer


class _AlignedBufferT(schema.BufferT):
    """BufferT whose data vector starts on a 16-byte boundary, as the converter writes it
    (the generated Pack aligns byte vectors to 1, which would leave int32 biases misaligned)."""

    @classmethod
    def of(cls, buffer: schema.BufferT) -> _AlignedBufferT:
        aligned = cls()
        aligned.data, aligned.offset, aligned.size = buffer.data, buffer.offset, buffer.size
        return aligned

    def Pack(self, builder):
        data = None
        if self.data is not None:
            raw = np.ascontiguousarray(np.asarray(self.data, dtype=np.uint8).reshape(-1))
            builder.Prep(BUFFER_ALIGNMENT, raw.size)  # vector body ends up 16-aligned
            data = builder.CreateNumpyVector(raw)
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def pack_model(model: schema.ModelT) -> bytes:
    """Serialize schema objects back to .tflite bytes (identifier TFL3, aligned buffers)."""
    if any(b.offset and b.offset > 1 for b in model.buffers or []):
        raise KwsError("model keeps buffers outside the flatbuffer (>2 GB layout); not supported")
    model.buffers = [_AlignedBufferT.of(b) for b in model.buffers or []]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def _tensor_label(graph, index: int) -> str:
    return f"tensor {index} ({_text(graph.tensors[index].name)})"


def _tied_tensors(model, graph, start: set[int], quant: tuple[float, int]) -> set[int]:
    """All tensors whose quantization must change with `start`, checking every op touched."""
    io = {int(i) for i in graph.inputs} | {int(i) for i in graph.outputs}
    uses: dict[int, list[tuple[int, str, int]]] = defaultdict(list)  # tensor -> (op, side, pos)
    for op_index, op in enumerate(graph.operators or []):
        for pos, t in enumerate(op.inputs if op.inputs is not None else []):
            if t >= 0:
                uses[int(t)].append((op_index, "input", pos))
        for pos, t in enumerate(op.outputs if op.outputs is not None else []):
            if t >= 0:
                uses[int(t)].append((op_index, "output", pos))

    changed = set(start)
    queue = sorted(start)
    while queue:
        t = queue.pop()
        for op_index, side, pos in uses[t]:
            op = graph.operators[op_index]
            name = builtin_name(model, op.opcodeIndex)
            where = f"{_tensor_label(graph, t)} is {side} {pos} of {name} (op {op_index})"
            if name in _TIED:
                operands = [int(u) for u in list(op.inputs) + list(op.outputs) if u >= 0]
                for u in operands:
                    if u in changed or graph.tensors[u].type != schema.TensorType.INT8:
                        continue
                    if u in io:
                        raise KwsError(f"cannot share the state quantization: {where}, which "
                                       f"ties it to model input/output {_tensor_label(graph, u)}")
                    if _is_constant(model, graph.tensors[u]):
                        raise KwsError(f"cannot share the state quantization: {where}, which "
                                       f"ties it to constant {_tensor_label(graph, u)}")
                    changed.add(u)
                    queue.append(u)
            elif name == "FULLY_CONNECTED":
                if side == "input" and pos != 0:
                    raise KwsError(f"cannot share the state quantization: {where} (weights)")
            elif name in _RESCALED_AT_PREPARE:
                pass
            elif name in _FIXED_INT8_OUTPUT:
                fixed_scale, fixed_zp = _FIXED_INT8_OUTPUT[name]
                if side == "output" and (not np.isclose(quant[0], fixed_scale, rtol=1e-6)
                                         or quant[1] != fixed_zp):
                    raise KwsError(f"cannot share the state quantization: {where}, whose int8 "
                                   f"output is fixed at scale {fixed_scale:g}, zero point "
                                   f"{fixed_zp}")
            else:
                raise KwsError(f"cannot share the state quantization: {where}, an op this "
                               f"fix-up does not know how to keep consistent")
    return changed


def _is_constant(model, tensor) -> bool:
    buffer = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
    return buffer is not None and buffer.data is not None and len(buffer.data) > 0


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _rescale_bias(model, graph, op_index: int, old_scale: np.float32, new_scale: np.float32,
                  buffer_users: dict[int, int]) -> None:
    """Requantize the int32 bias of a FULLY_CONNECTED whose input scale changes."""
    op = graph.operators[op_index]
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return  # no bias: the output multiplier is recomputed in Prepare
    bias_index, weight_index = int(op.inputs[2]), int(op.inputs[1])
    bias = graph.tensors[bias_index]
    label = f"bias {_tensor_label(graph, bias_index)} of FULLY_CONNECTED (op {op_index})"
    if bias.type != schema.TensorType.INT32:
        raise KwsError(f"cannot rescale {label}: type {_TYPE_NAMES.get(bias.type)}, not INT32")
    other_ops = [i for i, o in enumerate(graph.operators)
                 if i != op_index and bias_index in [int(t) for t in o.inputs]]
    if other_ops:
        raise KwsError(f"cannot rescale {label}: ops {other_ops} use the same bias tensor")
    weight_scales = np.asarray(_scales(graph.tensors[weight_index]), np.float64)
    if weight_scales.size == 0:
        raise KwsError(f"cannot rescale {label}: its weights carry no quantization")
    buffer = model.buffers[bias.buffer]
    if buffer.data is None or len(buffer.data) == 0:
        raise KwsError(f"cannot rescale {label}: it is not a constant")
    values = np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(), "<i4").astype(np.float64)
    # The accumulator adds bias_q, which stands for bias_q * in_scale * w_scale[c]: keep that
    # real value under the new input scale (w_scale cancels, per channel or per tensor).
    rescaled = _round_half_away(values * (np.float64(old_scale) / np.float64(new_scale)))
    info = np.iinfo(np.int32)
    if rescaled.min(initial=0) < info.min or rescaled.max(initial=0) > info.max:
        raise KwsError(f"cannot rescale {label}: values overflow int32 at the new input scale")
    if buffer_users[bias.buffer] > 1:
        # Another tensor reads the same buffer: give this bias its own instead of editing both.
        model.buffers.append(schema.BufferT())
        bias.buffer = len(model.buffers) - 1
        buffer_users[bias.buffer] = 1
        buffer = model.buffers[bias.buffer]
    buffer.data = np.frombuffer(rescaled.astype("<i4").tobytes(), np.uint8).copy()
    q = bias.quantization or schema.QuantizationParametersT()
    q.scale = (np.float64(new_scale) * weight_scales).astype(np.float32)
    q.zeroPoint = np.zeros(q.scale.size, np.int64)
    q.min = q.max = None
    bias.quantization = q


def share_state_quantization(tflite_bytes: bytes, state_input: int, state_output: int,
                             scale: float = STATE_SCALE, zero_point: int = STATE_ZERO_POINT
                             ) -> bytes:
    """Give the state input and the new_state output (subgraph tensor indices, see find_io) the
    same int8 quantization, keeping every kernel that depends on it consistent (module docstring).
    Returns the rewritten model; the input bytes are not modified."""
    model = read_model(tflite_bytes)
    if len(model.subgraphs or []) != 1:
        raise KwsError(f"step model must have one subgraph, found {len(model.subgraphs or [])}")
    graph = model.subgraphs[0]
    if state_input not in [int(i) for i in graph.inputs]:
        raise KwsError(f"state input {state_input} is not a model input {list(graph.inputs)}")
    if state_output not in [int(i) for i in graph.outputs]:
        raise KwsError(f"state output {state_output} is not a model output {list(graph.outputs)}")
    if not (scale > 0 and np.isfinite(scale)):
        raise KwsError(f"state scale must be a positive number, got {scale}")
    if not -128 <= zero_point <= 127 or int(zero_point) != zero_point:
        raise KwsError(f"state zero point must be an int8 value, got {zero_point}")
    for index in (state_input, state_output):
        t = graph.tensors[index]
        if t.type != schema.TensorType.INT8 or len(_scales(t)) != 1:
            raise KwsError(f"{_tensor_label(graph, index)} is not a per-tensor int8 tensor")
    in_shape = [int(d) for d in graph.tensors[state_input].shape]
    out_shape = [int(d) for d in graph.tensors[state_output].shape]
    if in_shape != out_shape:
        raise KwsError(f"state input shape {in_shape} differs from state output {out_shape}")

    new_scale, zero_point = np.float32(scale), int(zero_point)
    changed = _tied_tensors(model, graph, {state_input, state_output}, (float(new_scale),
                                                                         zero_point))
    for index in changed:
        if len(_scales(graph.tensors[index])) != 1:
            raise KwsError(f"{_tensor_label(graph, index)} is not per-tensor quantized")
    old_scales = {i: np.float32(_scales(graph.tensors[i])[0]) for i in changed}

    buffer_users: dict[int, int] = defaultdict(int)
    for g in model.subgraphs:
        for t in g.tensors:
            buffer_users[t.buffer] += 1
    for op_index, op in enumerate(graph.operators):
        if builtin_name(model, op.opcodeIndex) == "FULLY_CONNECTED" and int(op.inputs[0]) in changed:
            _rescale_bias(model, graph, op_index, old_scales[int(op.inputs[0])], new_scale,
                          buffer_users)
    for index in changed:
        q = graph.tensors[index].quantization
        q.scale = np.array([new_scale], np.float32)
        q.zeroPoint = np.array([zero_point], np.int64)
        q.min = q.max = None  # calibration range of the old scale; stale now
        q.quantizedDimension = 0
    return pack_model(model)
