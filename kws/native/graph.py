"""A .tflite file as a small typed graph: what the native backend reads instead of an interpreter.

Only what the integer kernels need is kept: per tensor its shape, dtype, quantization and (for
constants) its data; per op its builtin name, operand tensor indices and the options that change
its arithmetic or its data movement. Constant operands that are really parameters (SPLIT's axis,
STRIDED_SLICE's begin/end/strides, SPLIT_V's sizes, RESHAPE's shape) are read into the options
here, so later stages never look at the flatbuffer again.

Anything outside that set (another builtin, a custom op, several subgraphs, an op that reads a
tensor nobody wrote yet) is a KwsError naming the op, before any arithmetic is attempted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from kws.errors import KwsError
from kws.export.state_quant import (
    _NUMPY_DTYPES,
    _TYPE_NAMES,
    _is_constant,
    _scales,
    _text,
    _zero_points,
    builtin_name,
    read_model,
)

# Ops the native backend evaluates. Arithmetic ones requantize; the others move int8 bytes.
ARITHMETIC_OPS = frozenset({"FULLY_CONNECTED", "ADD", "SUB", "MUL", "LOGISTIC", "TANH"})
COPY_OPS = frozenset({"SPLIT", "SPLIT_V", "STRIDED_SLICE", "CONCATENATION", "RESHAPE"})
SUPPORTED_OPS = ARITHMETIC_OPS | COPY_OPS

_ACTIVATION_NAMES = {v: k for k, v in vars(schema.ActivationFunctionType).items()
                     if not k.startswith("_")}

# Reader bounds (a corrupt file is a KwsError, never an IndexError or a huge allocation): no
# microcontroller model comes near these.
MAX_TENSOR_BYTES = 1 << 24
# Operands each op needs at least (inputs, outputs); FULLY_CONNECTED's bias is optional.
_MIN_OPERANDS = {
    "FULLY_CONNECTED": (2, 1), "ADD": (2, 1), "SUB": (2, 1), "MUL": (2, 1), "LOGISTIC": (1, 1),
    "TANH": (1, 1), "RESHAPE": (1, 1), "SPLIT": (2, 1), "SPLIT_V": (3, 1),
    "CONCATENATION": (1, 1), "STRIDED_SLICE": (4, 1),
}
# The builtin options class each op's options must be (when present).
_OPTIONS_TYPES = {
    "FULLY_CONNECTED": schema.FullyConnectedOptionsT, "ADD": schema.AddOptionsT,
    "SUB": schema.SubOptionsT, "MUL": schema.MulOptionsT, "SPLIT": schema.SplitOptionsT,
    "SPLIT_V": schema.SplitVOptionsT, "CONCATENATION": schema.ConcatenationOptionsT,
    "STRIDED_SLICE": schema.StridedSliceOptionsT, "RESHAPE": schema.ReshapeOptionsT,
}


def _name(value, what: str) -> str:
    try:
        return _text(value)
    except UnicodeDecodeError:
        raise KwsError(f"{what}: its name is not UTF-8 text") from None


@dataclass(frozen=True, eq=False)
class Tensor:
    """One subgraph tensor. `scales`/`zero_points` hold one entry per tensor or one per channel
    along `quantized_dimension`; `data` is the constant value (shaped) or None."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int
    data: np.ndarray | None

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.elements * np.dtype(self.dtype).itemsize

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    @property
    def scale(self) -> float:
        """The per-tensor scale as the float32 value TFLite kernels read (params.scale)."""
        if len(self.scales) != 1:
            raise KwsError(f"tensor {self.index} ({self.name}) has {len(self.scales)} scales, "
                           "expected one per-tensor scale")
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0] if self.zero_points else 0

    def label(self) -> str:
        return f"tensor {self.index} ({self.name})"


@dataclass(frozen=True)
class OpOptions:
    """The builtin options the native kernels use (unused fields keep their defaults)."""

    fused_activation: str = "NONE"
    # FULLY_CONNECTED
    keep_num_dims: bool = False
    # SPLIT, SPLIT_V, CONCATENATION (normalized to a non-negative axis)
    axis: int | None = None
    num_splits: int | None = None
    size_splits: tuple[int, ...] | None = None
    # STRIDED_SLICE
    begin: tuple[int, ...] | None = None
    end: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None
    begin_mask: int = 0
    end_mask: int = 0
    shrink_axis_mask: int = 0
    offset: bool = False


@dataclass(frozen=True)
class Op:
    """One operator in execution order. `inputs` may hold -1 for an omitted optional operand
    (a FULLY_CONNECTED without bias)."""

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: OpOptions = field(default_factory=OpOptions)

    def label(self) -> str:
        return f"{self.name} (op {self.index})"


@dataclass(frozen=True, eq=False)
class Graph:
    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    @property
    def op_names(self) -> list[str]:
        """Builtin names in order of first appearance."""
        names: list[str] = []
        for op in self.ops:
            if op.name not in names:
                names.append(op.name)
        return names

    def consumers(self, index: int) -> list[int]:
        """Indices of the ops reading tensor `index`."""
        return [op.index for op in self.ops if index in op.inputs]


def _tensor(model, graph, index: int) -> Tensor:
    t = graph.tensors[index]
    name = _name(t.name, f"tensor {index}")
    type_name = _TYPE_NAMES.get(t.type, str(t.type))
    if type_name not in _NUMPY_DTYPES:
        raise KwsError(f"tensor {index} ({name}) has type {type_name}, which the native "
                       "backend does not handle")
    dtype = _NUMPY_DTYPES[type_name]
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
    itemsize = np.dtype(dtype).itemsize
    if any(d < 0 for d in shape) or (
            itemsize * int(np.prod([min(d, MAX_TENSOR_BYTES + 1) for d in shape], dtype=object))
            > MAX_TENSOR_BYTES):
        raise KwsError(f"tensor {index} ({name}) has shape {list(shape)}: negative (dynamic) "
                       f"sizes or more than {MAX_TENSOR_BYTES} bytes are not supported")
    data = None
    if model.buffers is not None and _is_constant(model, t):
        raw = np.asarray(model.buffers[t.buffer].data, np.uint8).tobytes()
        if len(raw) % itemsize:
            raise KwsError(f"constant tensor {index} ({name}) holds {len(raw)} bytes, not a "
                           f"whole number of {dtype} values")
        values = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))
        expected = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if values.size != expected:
            raise KwsError(f"constant tensor {index} ({name}) holds {values.size} values "
                           f"for shape {list(shape)}")
        data = values.astype(dtype).reshape(shape)
        data.setflags(write=False)
    q = t.quantization
    scales = tuple(float(np.float32(s)) for s in _scales(t))
    zero_points = tuple(int(z) for z in _zero_points(t))
    quantized_dimension = int(q.quantizedDimension) if q is not None else 0
    if not all(np.isfinite(s) and s > 0 for s in scales):
        raise KwsError(f"tensor {index} ({name}) has a scale that is not a positive finite "
                       "number")
    if not all(-(1 << 31) <= z < (1 << 31) for z in zero_points):
        raise KwsError(f"tensor {index} ({name}) has a zero point outside int32")
    if len(scales) > 1 and not 0 <= quantized_dimension < len(shape):
        raise KwsError(f"tensor {index} ({name}) is quantized per channel along dimension "
                       f"{quantized_dimension}, which its shape {list(shape)} does not have")
    return Tensor(
        index=index, name=name, shape=shape, dtype=dtype, scales=scales,
        zero_points=zero_points, quantized_dimension=quantized_dimension, data=data,
    )


def _constant_ints(tensors, index: int, op_label: str, what: str) -> tuple[int, ...]:
    if index < 0 or tensors[index].data is None:
        raise KwsError(f"{op_label}: its {what} must be a constant tensor")
    if not np.issubdtype(tensors[index].data.dtype, np.integer):
        raise KwsError(f"{op_label}: its {what} must be an integer tensor, not "
                       f"{tensors[index].dtype}")
    return tuple(int(v) for v in np.asarray(tensors[index].data).reshape(-1))


def _constant_scalar(tensors, index: int, op_label: str, what: str) -> int:
    values = _constant_ints(tensors, index, op_label, what)
    if len(values) != 1:
        raise KwsError(f"{op_label}: its {what} must hold one value, found {len(values)}")
    return values[0]


def _activation(opts, op_label: str) -> str:
    code = int(getattr(opts, "fusedActivationFunction", 0) or 0) if opts is not None else 0
    name = _ACTIVATION_NAMES.get(code, f"ACTIVATION_{code}")
    if name not in ("NONE", "RELU", "RELU_N1_TO_1", "RELU6"):
        raise KwsError(f"{op_label}: fused activation {name} is not supported by the native "
                       "backend")
    return name


def _positive_axis(axis: int, rank: int, op_label: str) -> int:
    if not -rank <= axis < rank:
        raise KwsError(f"{op_label}: axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _options(name: str, op, tensors, inputs: tuple[int, ...], op_label: str) -> OpOptions:
    opts = op.builtinOptions
    if opts is not None and name in _OPTIONS_TYPES and not isinstance(opts, _OPTIONS_TYPES[name]):
        raise KwsError(f"{op_label}: its options are {type(opts).__name__[:-1]}, not "
                       f"{_OPTIONS_TYPES[name].__name__[:-1]}")
    if name == "FULLY_CONNECTED":
        if opts is not None and int(getattr(opts, "weightsFormat", 0) or 0) != 0:
            raise KwsError(f"{op_label}: shuffled weights format is not supported")
        if opts is not None and getattr(opts, "asymmetricQuantizeInputs", False):
            raise KwsError(f"{op_label}: hybrid (asymmetric input) quantization is not supported")
        return OpOptions(fused_activation=_activation(opts, op_label),
                         keep_num_dims=bool(getattr(opts, "keepNumDims", False)))
    if name in ("ADD", "SUB", "MUL"):
        return OpOptions(fused_activation=_activation(opts, op_label))
    if name in ("LOGISTIC", "TANH", "RESHAPE"):
        return OpOptions()
    if name == "SPLIT":
        axis = _constant_scalar(tensors, inputs[0], op_label, "axis")
        rank = len(tensors[inputs[1]].shape)
        return OpOptions(axis=_positive_axis(axis, rank, op_label),
                         num_splits=int(getattr(opts, "numSplits", 0) or 0))
    if name == "SPLIT_V":
        sizes = _constant_ints(tensors, inputs[1], op_label, "size_splits")
        axis = _constant_scalar(tensors, inputs[2], op_label, "axis")
        rank = len(tensors[inputs[0]].shape)
        return OpOptions(axis=_positive_axis(axis, rank, op_label), size_splits=sizes,
                         num_splits=int(getattr(opts, "numSplits", 0) or len(sizes)))
    if name == "CONCATENATION":
        rank = len(tensors[inputs[0]].shape)
        return OpOptions(fused_activation=_activation(opts, op_label),
                         axis=_positive_axis(int(getattr(opts, "axis", 0) or 0), rank, op_label))
    if name == "STRIDED_SLICE":
        if opts is not None and (int(opts.ellipsisMask or 0) or int(opts.newAxisMask or 0)):
            raise KwsError(f"{op_label}: ellipsis and new-axis masks are not supported")
        if opts is not None and getattr(opts, "offset", False):
            # tflite-micro (the wheel measured here) ignores the flag, so no result could be
            # both TFLM's and what the flag means.
            raise KwsError(f"{op_label}: offset=True is not supported (tflite-micro ignores it)")
        return OpOptions(
            begin=_constant_ints(tensors, inputs[1], op_label, "begin"),
            end=_constant_ints(tensors, inputs[2], op_label, "end"),
            strides=_constant_ints(tensors, inputs[3], op_label, "strides"),
            begin_mask=int(getattr(opts, "beginMask", 0) or 0),
            end_mask=int(getattr(opts, "endMask", 0) or 0),
            shrink_axis_mask=int(getattr(opts, "shrinkAxisMask", 0) or 0),
            offset=bool(getattr(opts, "offset", False)),
        )
    raise KwsError(f"{op_label}: not supported by the native backend")


def _check_indices(indices, n_tensors: int, what: str, optional: bool = False) -> None:
    """Every index names a tensor (-1, an omitted operand, only where `optional`)."""
    for i in indices:
        if not (0 <= i < n_tensors or (optional and i == -1)):
            raise KwsError(f"{what} refer to tensor {i}, but the model has {n_tensors} tensors")


def parse_model(tflite_bytes: bytes | schema.ModelT) -> Graph:
    """The model's single subgraph as a Graph; KwsError for anything the backend cannot run."""
    model = tflite_bytes if isinstance(tflite_bytes, schema.ModelT) else read_model(tflite_bytes)
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise KwsError(f"the native backend runs models with one subgraph, found "
                       f"{len(model.subgraphs or [])}")
    sub = model.subgraphs[0]
    tensors = tuple(_tensor(model, sub, i) for i in range(len(sub.tensors or [])))
    inputs = tuple(int(i) for i in (sub.inputs if sub.inputs is not None else []))
    outputs = tuple(int(i) for i in (sub.outputs if sub.outputs is not None else []))
    _check_indices(inputs, len(tensors), "the model inputs")
    _check_indices(outputs, len(tensors), "the model outputs")
    n_codes = len(model.operatorCodes or [])

    written = set(inputs)
    ops = []
    for index, op in enumerate(sub.operators or []):
        if not 0 <= op.opcodeIndex < n_codes:
            raise KwsError(f"op {index} has operator code {op.opcodeIndex}, but the model has "
                           f"{n_codes}")
        try:
            name = builtin_name(model, op.opcodeIndex)
        except UnicodeDecodeError:
            raise KwsError(f"op {index}: its custom code is not UTF-8 text") from None
        label = f"{name} (op {index})"
        if name not in SUPPORTED_OPS:
            raise KwsError(f"{label} is not supported by the native backend (it runs "
                           f"{', '.join(sorted(SUPPORTED_OPS))})")
        op_inputs = tuple(int(i) for i in (op.inputs if op.inputs is not None else []))
        op_outputs = tuple(int(i) for i in (op.outputs if op.outputs is not None else []))
        _check_indices(op_inputs, len(tensors), f"{label} inputs", optional=True)
        _check_indices(op_outputs, len(tensors), f"{label} outputs")
        min_inputs, min_outputs = _MIN_OPERANDS[name]
        if len(op_inputs) < min_inputs or len(op_outputs) < min_outputs:
            raise KwsError(f"{label} has {len(op_inputs)} inputs and {len(op_outputs)} outputs; "
                           f"it needs at least {min_inputs} and {min_outputs}")
        for t in op_inputs:
            if t >= 0 and not tensors[t].is_constant and t not in written:
                raise KwsError(f"{label} reads {tensors[t].label()} before any op writes it; "
                               "the operators are not in execution order")
        for t in op_outputs:
            if tensors[t].is_constant or t in written:
                raise KwsError(f"{label} writes {tensors[t].label()}, which is a constant, a "
                               "model input or written twice")
            written.add(t)
        ops.append(Op(index=index, name=name, inputs=op_inputs, outputs=op_outputs,
                      options=_options(name, op, tensors, op_inputs, label)))
    for t in outputs:
        if t not in written and not tensors[t].is_constant:
            raise KwsError(f"model output {tensors[t].label()} is never written")
    return Graph(tensors=tensors, ops=tuple(ops), inputs=inputs, outputs=outputs)
