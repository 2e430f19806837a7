"""The whole int8 step model on the native kernels, executed in one scratch buffer exactly as the
generated C code will run it (emulation level L3's numerics, in Python).

Memory plan. Every non-constant tensor (model inputs and outputs included, as in a TFLM arena)
gets a byte offset in one int8 scratch buffer:

- Liveness over the op order: a tensor is live from the op that writes it (model inputs: from
  before the first op) to the last op that reads it (model outputs: to after the last op, so
  the caller can read them and copy new_state into state).
- Aliasing (on by default): an output of SPLIT / SPLIT_V / STRIDED_SLICE / RESHAPE /
  CONCATENATION that is one contiguous run of a non-constant input is not copied at all; it
  lives inside that input's bytes, and the input's lifetime is extended to cover it. In the GRU
  step model every SPLIT and STRIDED_SLICE output is such a run, so those ops cost nothing.
- Placement: greedy first-fit by size (largest first), each buffer at the lowest offset aligned
  to `alignment` bytes that overlaps no buffer with an intersecting lifetime (TFLM's greedy
  planner does the same). Aliased tensors share their root's bytes and need no alignment
  (every kernel reads them as int8).

Execution really uses that plan: inputs are written into their slots, each op reads its
operands from the buffer and writes its outputs back, and `new_state` is copied into the state
slot between steps; bytes that hold no live value are filled with random garbage before each
step, so an overlapping or otherwise wrong plan changes the results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws.errors import KwsError
from kws.export.tflm import _StepModel
from kws.native import ops as native_ops
from kws.native.graph import COPY_OPS, Graph, parse_model

BEFORE_FIRST_OP = -1


@dataclass(frozen=True)
class Placement:
    """Where one tensor lives: bytes [offset, offset + nbytes) of the scratch buffer, live from
    op `first` to op `last` inclusive (-1 = before the first op, len(ops) = after the last).
    `alias_of` names the tensor whose bytes it shares (None for a buffer of its own)."""

    tensor: int
    offset: int
    nbytes: int
    first: int
    last: int
    alias_of: int | None = None

    @property
    def end(self) -> int:
        return self.offset + self.nbytes

    def live_with(self, other: Placement) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True, eq=False)
class MemoryPlan:
    placements: dict[int, Placement]
    total_bytes: int
    alignment: int
    aliasing: bool

    @property
    def offsets(self) -> dict[int, int]:
        return {t: p.offset for t, p in self.placements.items()}

    def root(self, tensor: int) -> int:
        p = self.placements[tensor]
        return tensor if p.alias_of is None else p.alias_of

    def conflicts(self) -> list[tuple[int, int]]:
        """Pairs of tensors that are live at the same time, share bytes and are not views of
        the same root buffer. Empty for a correct plan."""
        items = sorted(self.placements.values(), key=lambda p: p.offset)
        bad = []
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                if b.offset >= a.end:
                    break
                if a.nbytes and b.nbytes and a.live_with(b) and \
                        self.root(a.tensor) != self.root(b.tensor):
                    bad.append((a.tensor, b.tensor))
        return bad

    @property
    def lower_bound(self) -> int:
        """The most bytes live at any one time (no plan for this liveness can be smaller)."""
        roots = [p for p in self.placements.values() if p.alias_of is None]
        times = {p.first for p in roots}
        return max((sum(p.nbytes for p in roots if p.first <= t <= p.last) for t in times),
                   default=0)

    def check(self) -> None:
        bad = self.conflicts()
        if bad:
            raise KwsError(f"memory plan overlaps live tensors: {bad[:5]}")
        for p in self.placements.values():
            if p.offset < 0 or p.end > self.total_bytes:
                raise KwsError(f"memory plan puts tensor {p.tensor} outside the scratch buffer")
            if p.alias_of is None and p.offset % self.alignment:
                raise KwsError(f"memory plan misaligns tensor {p.tensor}")


def _align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def plan_memory(graph: Graph, params: list, alias: bool = True, alignment: int = 16
                ) -> MemoryPlan:
    """Liveness analysis + greedy first-fit placement of every non-constant tensor (see module
    docstring). `params` are the prepared ops (their copy segments decide aliasing)."""
    if alignment < 1 or alignment & (alignment - 1):
        raise KwsError(f"alignment must be a power of two, got {alignment}")
    n_ops = len(graph.ops)
    first: dict[int, int] = {t: BEFORE_FIRST_OP for t in graph.inputs}
    last: dict[int, int] = {}
    for op in graph.ops:
        for t in op.inputs:
            if t >= 0 and not graph.tensor(t).is_constant:
                last[t] = max(last.get(t, BEFORE_FIRST_OP), op.index)
        for t in op.outputs:
            first[t] = op.index
    for t in graph.outputs:
        if t in first:
            last[t] = n_ops
    for t, start in first.items():
        last.setdefault(t, start)

    # Aliases: (root tensor, byte offset inside the root).
    alias_of: dict[int, tuple[int, int]] = {}
    if alias:
        for op, p in zip(graph.ops, params):
            if op.name not in COPY_OPS:
                continue
            for j, out in enumerate(op.outputs):
                hit = p.alias(j)
                if hit is None:
                    continue
                src = op.inputs[hit[0]]
                if graph.tensor(src).is_constant:
                    continue
                root, base = alias_of.get(src, (src, 0))
                alias_of[out] = (root, base + hit[1] * np.dtype(graph.tensor(src).dtype).itemsize)

    span = {t: [first[t], last[t]] for t in first if t not in alias_of}
    for t, (root, _) in alias_of.items():
        span[root][0] = min(span[root][0], first[t])
        span[root][1] = max(span[root][1], last[t])

    roots = sorted(span, key=lambda t: (-graph.tensor(t).nbytes, span[t][0], t))
    placed: list[Placement] = []
    placements: dict[int, Placement] = {}
    for t in roots:
        size = graph.tensor(t).nbytes
        me = Placement(t, 0, size, span[t][0], span[t][1])
        busy = sorted((p.offset, p.end) for p in placed if p.live_with(me) and p.nbytes)
        offset = 0
        for start, stop in busy:
            if offset + size <= start:
                break
            offset = max(offset, _align(stop, alignment))
        me = Placement(t, offset, size, span[t][0], span[t][1])
        placed.append(me)
        placements[t] = me
    for t, (root, offset) in alias_of.items():
        placements[t] = Placement(t, placements[root].offset + offset, graph.tensor(t).nbytes,
                                  first[t], last[t], alias_of=root)
    total = _align(max((p.end for p in placed), default=0), alignment)
    plan = MemoryPlan(placements=dict(sorted(placements.items())), total_bytes=total,
                      alignment=alignment, aliasing=alias)
    plan.check()
    return plan


class NativeReference(_StepModel):
    """The step model on the native integer kernels, bit-exact with TflmStepModel.

    `step(frame_i8, state_i8) -> (new_state, logits)`, `run_clip`, `run_clips` behave as in
    kws.export.tflm (zero state at the state zero point, new_state copied back, last logits).
    `alias=False` gives every tensor its own bytes (no copy elision); `poison=False` skips the
    garbage fill of dead bytes (a little faster, but a wrong plan may then go unnoticed)."""

    def __init__(self, tflite_bytes: bytes, alias: bool = True, alignment: int = 16,
                 poison: bool = True, seed: int = 0):
        super().__init__(tflite_bytes)
        self.graph: Graph = parse_model(self.model_bytes)
        self.params = [native_ops.prepare(self.graph, op) for op in self.graph.ops]
        self.plan = plan_memory(self.graph, self.params, alias=alias, alignment=alignment)
        self.poison = poison
        self._rng = np.random.default_rng(seed)
        self._slots = {t: (p.offset, p.end) for t, p in self.plan.placements.items()}
        # A copy op whose every output is an alias has nothing left to do at run time.
        self._skip = {op.index for op in self.graph.ops
                      if op.outputs and all(self.plan.placements[t].alias_of is not None
                                            for t in op.outputs)}
        state_start, state_end = self._slots[self.io["state"].tensor]
        keep = np.ones(self.plan.total_bytes, bool)
        keep[state_start:state_end] = False
        self._poison_bytes = np.flatnonzero(keep)

    def memory_plan(self) -> MemoryPlan:
        """Offsets of every non-constant tensor in the scratch buffer and its total size."""
        return self.plan

    @property
    def scratch_bytes(self) -> int:
        return self.plan.total_bytes

    # -- execution on one scratch buffer per clip ([N, scratch_bytes]) -------------------------

    def _view(self, arena: np.ndarray, tensor: int) -> np.ndarray:
        start, end = self._slots[tensor]
        return arena[:, start:end].reshape((arena.shape[0],) + self.graph.tensor(tensor).shape)

    def _write(self, arena: np.ndarray, tensor: int, values: np.ndarray) -> None:
        start, end = self._slots[tensor]
        arena[:, start:end] = np.asarray(values, np.int8).reshape(arena.shape[0], end - start)

    def _poison(self, arena: np.ndarray) -> None:
        if self.poison and self._poison_bytes.size:
            arena[:, self._poison_bytes] = self._rng.integers(
                -128, 128, (arena.shape[0], self._poison_bytes.size), dtype=np.int8)

    def _execute(self, arena: np.ndarray) -> None:
        """Run every op once; inputs already sit in their slots."""
        graph = self.graph
        for op, params in zip(graph.ops, self.params):
            if op.index in self._skip:
                continue
            operands = []
            for t in op.inputs:
                if t < 0:
                    operands.append(None)
                elif graph.tensor(t).is_constant:
                    operands.append(graph.tensor(t).data)
                else:
                    operands.append(self._view(arena, t))
            results = native_ops.evaluate(params, operands)
            for t, value in zip(op.outputs, results):
                if self.plan.placements[t].alias_of is None:
                    self._write(arena, t, value)

    def _step_arena(self, arena: np.ndarray, frames: np.ndarray) -> None:
        """One time step for every row: frame in, ops, new_state copied into the state slot."""
        self._poison(arena)
        self._write(arena, self.io["frame"].tensor, frames)
        self._execute(arena)
        ns_start, ns_end = self._slots[self.io["new_state"].tensor]
        st_start, st_end = self._slots[self.io["state"].tensor]
        arena[:, st_start:st_end] = arena[:, ns_start:ns_end].copy()  # memmove semantics

    def _invoke(self, frame: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        arena = np.zeros((1, self.plan.total_bytes), np.int8)
        self._poison(arena)
        self._write(arena, self.io["state"].tensor, state)
        self._write(arena, self.io["frame"].tensor, frame)
        self._execute(arena)
        new_state = self._view(arena, self.io["new_state"].tensor).copy()
        logits = self._view(arena, self.io["logits"].tensor).copy()
        return new_state.reshape(1, -1), logits.reshape(1, -1)

    def run_clips(self, frames_i8) -> np.ndarray:
        """Logits [N, C] int8 after one step per frame of [N, T, F] clips, each clip from the
        zero state with new_state fed back by copy (as TflmStepModel.run_clips). The clips run
        side by side, one scratch buffer each."""
        frames = self._checked_clips(frames_i8)
        if not self.state_shared:
            raise KwsError("new_state and state are quantized differently, so a plain copy "
                           "would be wrong; run share_state_quantization on the model first")
        n = frames.shape[0]
        arena = np.zeros((n, self.plan.total_bytes), np.int8)
        self._write(arena, self.io["state"].tensor,
                    np.broadcast_to(self.zero_state(), (n, self.state_size)))
        for t in range(frames.shape[1]):
            self._step_arena(arena, frames[:, t])
        return self._view(arena, self.io["logits"].tensor).reshape(n, self.labels).copy()

    def run_clip(self, frames_i8) -> np.ndarray:
        frames = np.asarray(frames_i8)
        if frames.ndim != 2:
            raise KwsError(f"frames must have shape [T>0, {self.frame_size}], got {frames.shape}")
        return self.run_clips(frames[None])[0]
