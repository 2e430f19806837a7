"""The Python half of the `native` inference backend: the int8 step model evaluated op by op with
integer arithmetic that is bit-exact with the tflite-micro interpreter (DESIGN.md, "Two
inference backends").

Everything the C kernels will need is computed here, in Python, once: requantization
multipliers and shifts, offsets, activation ranges, 256-entry LOGISTIC/TANH tables, copy
segments for SPLIT/STRIDED_SLICE, and one scratch-buffer layout for all intermediate tensors.
The evaluation in this package then uses only those integers, so "Python native == TFLM" is a
statement about the very numbers the C code is generated from.

Modules, bottom up:

- `qmath`: TFLite/gemmlowp fixed-point primitives (QuantizeMultiplier,
  SaturatingRoundingDoublingHighMul, RoundingDivideByPOT, the gemmlowp logistic/tanh), numpy
  int64 emulating C int32.
- `graph`: a .tflite file as a small typed graph (tensors, ops in execution order, options).
- `ops`: per op `prepare` (every integer constant) and `evaluate` (integer math only).
- `interpret`: `NativeReference`, the whole step model on one int8 scratch buffer laid out by
  a liveness-based memory plan.
- `special`: generate-time specializations of the kernels (affine ADD/SUB, fast MUL and
  FULLY_CONNECTED requantization, tables), each proven exact on every input before use.
- `oracle`: one-op .tflite models built from scratch and run in the tflite-micro interpreter,
  so every kernel can be checked against TFLM exhaustively.
"""
