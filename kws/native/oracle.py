"""One-op .tflite models built from scratch and run in the tflite-micro interpreter: the judge
every native kernel is checked against.

`build_op_model` writes a model with one subgraph and one operator through the schema object
API (ModelT) of the tflite-micro wheel; operands are `TensorSpec`s (shape, type, quantization,
optional constant data). `OpOracle` loads it into the tflite-micro Python interpreter and runs
it on arrays. Helpers make the common cases one call: `unary_model` (LOGISTIC, TANH),
`binary_model` (ADD, SUB, MUL, optionally with a constant operand), `fully_connected_model`,
and `from_graph_op`, which re-creates any op of a parsed model with its real quantization and
constants (optionally with a larger batch).

Inputs of the one-op model are its non-constant operands, in operand order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from kws.errors import KwsError
from kws.export.state_quant import pack_model, read_model
from kws.export.tflm import captured_stderr
from kws.native.graph import Graph, Op

_TYPES = {"int8": schema.TensorType.INT8, "int32": schema.TensorType.INT32,
          "int16": schema.TensorType.INT16, "float32": schema.TensorType.FLOAT32}
_ACTIVATION = {k: v for k, v in vars(schema.ActivationFunctionType).items()
               if not k.startswith("_")}


@dataclass
class TensorSpec:
    """One operand. `scale`/`zero_point` may be sequences (per channel along
    `quantized_dimension`); `data` makes it a constant."""

    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: float | tuple[float, ...] | None = None
    zero_point: int | tuple[int, ...] | None = None
    quantized_dimension: int = 0
    data: np.ndarray | None = None
    name: str = ""


@dataclass
class OpSpec:
    """The operator: builtin name, operand lists (indices into the tensor list, -1 = omitted)
    and its builtin options (schema option object, or None)."""

    name: str
    inputs: list[int]
    outputs: list[int]
    options: object | None = None
    extra: dict = field(default_factory=dict)


def _options_type(name: str) -> int:
    camel = "".join(part.capitalize() for part in name.split("_"))
    if name == "FULLY_CONNECTED":
        camel = "FullyConnected"
    if name == "STRIDED_SLICE":
        camel = "StridedSlice"
    return getattr(schema.BuiltinOptions, f"{camel}Options", schema.BuiltinOptions.NONE)


def _quantization(spec: TensorSpec):
    if spec.scale is None:
        return None
    q = schema.QuantizationParametersT()
    q.scale = np.atleast_1d(np.asarray(spec.scale, np.float32))
    zp = 0 if spec.zero_point is None else spec.zero_point
    q.zeroPoint = np.broadcast_to(np.atleast_1d(np.asarray(zp, np.int64)), q.scale.shape).copy()
    q.quantizedDimension = int(spec.quantized_dimension)
    return q


def build_op_model(tensors: list[TensorSpec], op: OpSpec) -> bytes:
    """A .tflite with one subgraph holding `tensors` and the single operator `op`."""
    code_value = getattr(schema.BuiltinOperator, op.name, None)
    if code_value is None:
        raise KwsError(f"unknown builtin operator {op.name}")
    model = schema.ModelT()
    model.version = 3
    model.description = f"kws native oracle: {op.name}"
    code = schema.OperatorCodeT()
    code.builtinCode = code_value
    code.deprecatedBuiltinCode = min(code_value, 127)
    code.version = 1
    model.operatorCodes = [code]
    model.buffers = [schema.BufferT()]  # buffer 0: the empty sentinel
    graph = schema.SubGraphT()
    graph.tensors = []
    for i, spec in enumerate(tensors):
        t = schema.TensorT()
        t.shape = np.asarray(spec.shape, np.int32)
        t.type = _TYPES[spec.dtype]
        t.name = spec.name or f"t{i}"
        t.quantization = _quantization(spec)
        t.buffer = 0
        if spec.data is not None:
            buf = schema.BufferT()
            data = np.ascontiguousarray(np.asarray(spec.data, spec.dtype).reshape(spec.shape))
            buf.data = np.frombuffer(data.astype(np.dtype(spec.dtype).newbyteorder("<"))
                                     .tobytes(), np.uint8).copy()
            model.buffers.append(buf)
            t.buffer = len(model.buffers) - 1
        graph.tensors.append(t)
    operator = schema.OperatorT()
    operator.opcodeIndex = 0
    operator.inputs = np.asarray(op.inputs, np.int32)
    operator.outputs = np.asarray(op.outputs, np.int32)
    if op.options is not None:
        operator.builtinOptionsType = _options_type(op.name)
        operator.builtinOptions = op.options
    graph.operators = [operator]
    graph.inputs = np.asarray([i for i in op.inputs if i >= 0 and tensors[i].data is None],
                              np.int32)
    graph.outputs = np.asarray(op.outputs, np.int32)
    graph.name = "main"
    model.subgraphs = [graph]
    return pack_model(model)


class OpOracle:
    """A one-op model loaded in the tflite-micro interpreter."""

    def __init__(self, model_bytes: bytes, arena_bytes: int | None = None):
        from tflite_micro.python.tflite_micro import runtime

        self.model_bytes = bytes(model_bytes)
        graph = read_model(self.model_bytes).subgraphs[0]
        self.num_inputs, self.num_outputs = len(graph.inputs), len(graph.outputs)
        activations = sum(int(np.prod(t.shape, dtype=np.int64)) * 4 for t in graph.tensors)
        arena = arena_bytes or 2 * len(self.model_bytes) + 2 * activations + (1 << 16)
        with captured_stderr() as log:
            try:
                self._interpreter = runtime.Interpreter.from_bytes(self.model_bytes,
                                                                   arena_size=arena)
            except RuntimeError as exc:
                self._interpreter, error = None, exc
        if self._interpreter is None:
            detail = log[0].decode(errors="replace").strip().splitlines()
            raise KwsError(f"tflite-micro rejects the one-op model: "
                           f"{detail[-1] if detail else error}")

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Set the model inputs (in order), invoke once, return copies of all outputs."""
        if len(inputs) != self.num_inputs:
            raise KwsError(f"the one-op model takes {self.num_inputs} inputs, got {len(inputs)}")
        it = self._interpreter
        for i, x in enumerate(inputs):
            details = it.get_input_details(i)
            it.set_input(np.ascontiguousarray(np.asarray(x, details["dtype"])
                                              .reshape(details["shape"])), i)
        it.invoke()
        return [np.array(it.get_output(i)) for i in range(self.num_outputs)]


def run_op(tensors: list[TensorSpec], op: OpSpec, *inputs: np.ndarray) -> list[np.ndarray]:
    """Build, load and run a one-op model in one call."""
    return OpOracle(build_op_model(tensors, op)).run(*inputs)


# ---------------------------------------------------------------------------------------------
# Common one-op models


def _activation_options(cls, activation: str):
    opts = cls()
    opts.fusedActivationFunction = _ACTIVATION[activation]
    return opts


def unary_model(op_name: str, input_quant: tuple[float, int], output_quant: tuple[float, int],
                size: int = 256) -> bytes:
    """LOGISTIC / TANH on a [1, size] int8 vector."""
    tensors = [TensorSpec((1, size), scale=input_quant[0], zero_point=input_quant[1]),
               TensorSpec((1, size), scale=output_quant[0], zero_point=output_quant[1])]
    return build_op_model(tensors, OpSpec(op_name, [0], [1]))


def binary_model(op_name: str, quant1: tuple[float, int], quant2: tuple[float, int],
                 output_quant: tuple[float, int], shape1=(1, 65536), shape2=(1, 65536),
                 output_shape=None, constant1=None, constant2=None,
                 activation: str = "NONE") -> bytes:
    """ADD / SUB / MUL; a `constantN` array makes that operand a constant."""
    output_shape = output_shape or tuple(np.broadcast_shapes(tuple(shape1), tuple(shape2)))
    tensors = [
        TensorSpec(tuple(shape1), scale=quant1[0], zero_point=quant1[1], data=constant1),
        TensorSpec(tuple(shape2), scale=quant2[0], zero_point=quant2[1], data=constant2),
        TensorSpec(tuple(output_shape), scale=output_quant[0], zero_point=output_quant[1]),
    ]
    cls = {"ADD": schema.AddOptionsT, "SUB": schema.SubOptionsT, "MUL": schema.MulOptionsT}
    return build_op_model(tensors, OpSpec(op_name, [0, 1], [2],
                                          _activation_options(cls[op_name], activation)))


def fully_connected_model(weights: np.ndarray, weight_scales, bias: np.ndarray | None,
                          input_quant: tuple[float, int], output_quant: tuple[float, int],
                          batch: int = 1, activation: str = "NONE") -> bytes:
    """FULLY_CONNECTED with int8 weights [N, K] (one scale, or one per output channel) and an
    optional int32 bias, on an int8 input [batch, K]."""
    n, k = weights.shape
    scales = tuple(np.atleast_1d(np.asarray(weight_scales, np.float32)).tolist())
    tensors = [
        TensorSpec((batch, k), scale=input_quant[0], zero_point=input_quant[1]),
        TensorSpec((n, k), scale=scales, zero_point=(0,) * len(scales), data=weights),
        TensorSpec((batch, n), scale=output_quant[0], zero_point=output_quant[1]),
    ]
    inputs = [0, 1, -1]
    if bias is not None:
        bias_scales = tuple(float(np.float32(input_quant[0]) * np.float32(s)) for s in scales)
        tensors.append(TensorSpec((n,), "int32", scale=bias_scales,
                                  zero_point=(0,) * len(scales), data=bias))
        inputs[2] = 3
    return build_op_model(tensors, OpSpec("FULLY_CONNECTED", inputs, [2],
                                          _activation_options(schema.FullyConnectedOptionsT,
                                                              activation)))


def _graph_options(op: Op):
    o = op.options
    if op.name == "FULLY_CONNECTED":
        opts = _activation_options(schema.FullyConnectedOptionsT, o.fused_activation)
        opts.keepNumDims = o.keep_num_dims
        return opts
    if op.name in ("ADD", "SUB", "MUL"):
        cls = {"ADD": schema.AddOptionsT, "SUB": schema.SubOptionsT, "MUL": schema.MulOptionsT}
        return _activation_options(cls[op.name], o.fused_activation)
    if op.name == "SPLIT":
        opts = schema.SplitOptionsT()
        opts.numSplits = o.num_splits
        return opts
    if op.name == "SPLIT_V":
        opts = schema.SplitVOptionsT()
        opts.numSplits = o.num_splits
        return opts
    if op.name == "CONCATENATION":
        opts = _activation_options(schema.ConcatenationOptionsT, o.fused_activation)
        opts.axis = o.axis
        return opts
    if op.name == "STRIDED_SLICE":
        opts = schema.StridedSliceOptionsT()
        opts.beginMask, opts.endMask = o.begin_mask, o.end_mask
        opts.shrinkAxisMask, opts.offset = o.shrink_axis_mask, o.offset
        opts.ellipsisMask = opts.newAxisMask = 0
        return opts
    return None


def from_graph_op(graph: Graph, op: Op, batch: int | None = None) -> bytes:
    """Op `op` of a parsed model alone in a model of its own, with the same tensor shapes,
    quantization and constants. `batch` replaces the leading dimension of FULLY_CONNECTED's
    input and output (to check many input rows in one invoke)."""
    indices = [t for t in list(op.inputs) + list(op.outputs) if t >= 0]
    remap = {t: i for i, t in enumerate(dict.fromkeys(indices))}
    specs = []
    for t in remap:
        tensor = graph.tensor(t)
        shape = tensor.shape
        if batch is not None and op.name == "FULLY_CONNECTED" and t in (op.inputs[0],
                                                                        op.outputs[0]):
            shape = (batch,) + tuple(shape[1:])
        specs.append(TensorSpec(
            shape=tuple(shape), dtype=tensor.dtype,
            scale=tensor.scales if tensor.scales else None,
            zero_point=tensor.zero_points if tensor.zero_points else None,
            quantized_dimension=tensor.quantized_dimension, data=tensor.data, name=tensor.name))
    spec = OpSpec(op.name, [remap[t] if t >= 0 else -1 for t in op.inputs],
                  [remap[t] for t in op.outputs], _graph_options(op))
    return build_op_model(specs, spec)
