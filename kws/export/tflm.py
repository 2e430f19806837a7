"""Run the int8 step model on the host the way the device runs it: one step per feature frame,
new_state copied back into state.

Two interpreters behind one API (emulation levels L1 and L2 of DESIGN.md):

- TflmStepModel: the tflite-micro Python interpreter (TFLM reference kernels). It also reports
  the tensor arena the model needs.
- TfliteStepModel: TensorFlow Lite's int8 interpreter, with its reference kernels by default
  (`reference=True`). It is *not* bit-exact with tflite-micro: TensorFlow's TFLite requantizes
  with one rounding (TFLITE_SINGLE_ROUNDING), the tflite-micro wheel with gemmlowp's two
  roundings, so FULLY_CONNECTED outputs are one step apart in ~0.1% of values, and that spreads
  through the recurrence. The reference kernels are the closer of the two kernel sets.

Arena size: the tflite-micro wrapper has no getter for it. `arena_used_bytes` is the total that
TFLM's RecordingMicroAllocator prints (PrintAllocations, to the process's stderr, captured here);
that is what TFLM's own `arena_used_bytes()` reports on a device. It excludes the scratch the
memory planner borrows during allocation, so an arena of exactly that size fails to allocate;
`arena_min_bytes` is the smallest `arena_size` that allocates, found by bisection. Both are
measured with 64-bit host pointers; on a 32-bit MCU the interpreter's structs are smaller, and
CMSIS-NN kernels may ask for other persistent/scratch buffers than the reference kernels here.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import warnings
from functools import cached_property

import numpy as np

from kws.errors import KwsError
from kws.export.state_quant import IoTensor, find_io, op_names, read_model

_ARENA_TOTAL = re.compile(rb"Arena allocation total (\d+) bytes")


@contextlib.contextmanager
def captured_stderr():
    """Redirect file descriptor 2 (where TFLM's C++ logging goes) into a buffer.

    Yields a list that holds the captured bytes once the block exits. Process-wide, so not for
    use from several threads at once."""
    captured: list[bytes] = []
    sys.stderr.flush()  # Python's own pending text stays out of the capture
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read())


class _StepModel:
    """Shared clip logic over a backend's `_invoke(frame [1,F] int8, state [1,H] int8)`."""

    def __init__(self, tflite_bytes: bytes):
        model = read_model(tflite_bytes)
        self.model_bytes = bytes(tflite_bytes)
        self.io: dict[str, IoTensor] = find_io(model)
        self.op_names: list[str] = op_names(model)
        for role, t in self.io.items():
            if t.dtype != "int8":
                raise KwsError(f"step model {role} is {t.dtype}; expected an int8 model")
        self.frame_size = self.io["frame"].width
        self.state_size = self.io["state"].width
        self.labels = self.io["logits"].width

    @property
    def state_shared(self) -> bool:
        """True if new_state can be copied into state unchanged (same scale and zero point)."""
        s, n = self.io["state"], self.io["new_state"]
        return np.float32(s.scale) == np.float32(n.scale) and s.zero_point == n.zero_point

    def zero_state(self) -> np.ndarray:
        """The all-zero hidden state, quantized: every byte is the state zero point."""
        return np.full(self.state_size, self.io["state"].zero_point, np.int8)

    def _invoke(self, frame: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    @staticmethod
    def _vector(values, size: int, what: str) -> np.ndarray:
        arr = np.asarray(values)
        if arr.dtype != np.int8:
            raise KwsError(f"{what} must be int8, got {arr.dtype}")
        if arr.size != size or arr.ndim > 2 or (arr.ndim == 2 and arr.shape[0] != 1):
            raise KwsError(f"{what} must have shape [{size}] or [1, {size}], got {arr.shape}")
        return np.ascontiguousarray(arr.reshape(1, size))

    def step(self, frame_i8, state_i8) -> tuple[np.ndarray, np.ndarray]:
        """One time step: (new_state [H] int8, logits [C] int8)."""
        frame = self._vector(frame_i8, self.frame_size, "frame")
        state = self._vector(state_i8, self.state_size, "state")
        new_state, logits = self._invoke(frame, state)
        return new_state.reshape(-1), logits.reshape(-1)

    def run_clip(self, frames_i8) -> np.ndarray:
        """Logits [C] int8 after one step per frame of [T, F], starting from the zero state and
        copying new_state into state between steps, as the firmware does."""
        frames = np.asarray(frames_i8)
        if frames.dtype != np.int8:
            raise KwsError(f"frames must be int8, got {frames.dtype}")
        if frames.ndim != 2 or frames.shape[1] != self.frame_size or frames.shape[0] == 0:
            raise KwsError(f"frames must have shape [T>0, {self.frame_size}], got {frames.shape}")
        if not self.state_shared:
            raise KwsError("new_state and state are quantized differently, so a plain copy "
                           "would be wrong; run share_state_quantization on the model first")
        state = self.zero_state().reshape(1, -1)
        logits = None
        for frame in frames:
            state, logits = self._invoke(frame.reshape(1, -1), state)
        return logits.reshape(-1)

    def _checked_clips(self, frames_i8) -> np.ndarray:
        """[N, T>0, frame_size] int8 clips as a contiguous array, or a one-line KwsError."""
        frames = np.asarray(frames_i8)
        if frames.dtype != np.int8:
            raise KwsError(f"frames must be int8, got {frames.dtype}")
        if frames.ndim != 3 or frames.shape[2] != self.frame_size or frames.shape[1] == 0:
            raise KwsError(f"clips must have shape [N, T>0, {self.frame_size}], got "
                           f"{frames.shape}")
        return np.ascontiguousarray(frames)

    def run_clips(self, frames_i8) -> np.ndarray:
        """run_clip over [N, T, F] clips: logits [N, C] int8."""
        frames = np.asarray(frames_i8)
        if frames.ndim != 3:
            raise KwsError(f"clips must have shape [N, T, F], got {frames.shape}")
        out = np.empty((frames.shape[0], self.labels), np.int8)
        for i, clip in enumerate(frames):
            out[i] = self.run_clip(clip)
        return out

    def run_sequence(self, frames_i8, state=None) -> tuple[np.ndarray, np.ndarray]:
        """(logits [T, C] int8 after every frame, final state [H] int8) of one step per frame
        of [T, F], from `state` (None: the zero state), never reset: the continuous mode of the
        device, one interpreter call per frame (NativeModel does it in one C call)."""
        if not self.state_shared:
            raise KwsError("new_state and state are quantized differently, so a plain copy "
                           "would be wrong; run share_state_quantization on the model first")
        frames, carried = self._checked_sequence(frames_i8, state)
        carried = carried.reshape(1, -1)
        out = np.zeros((frames.shape[0], self.labels), np.int8)
        for t, frame in enumerate(frames):
            carried, logits = self._invoke(frame.reshape(1, -1), carried)
            out[t] = logits.reshape(-1)
        return out, carried.reshape(-1)

    def _sequence_start(self) -> np.ndarray:
        """The state a sequence starts from when none is given."""
        return self.zero_state().reshape(-1)

    def _checked_sequence(self, frames_i8, state) -> tuple[np.ndarray, np.ndarray]:
        """(contiguous int8 frames [T, F], a copy of the start state [H] int8), or a one-line
        KwsError; shared by every run_sequence."""
        frames = np.asarray(frames_i8)
        if frames.dtype != np.int8 or frames.ndim != 2 or frames.shape[1] != self.frame_size:
            raise KwsError(f"frames must be int8 [T, {self.frame_size}], got {frames.dtype} "
                           f"{frames.shape}")
        if state is None:
            return np.ascontiguousarray(frames), self._sequence_start()
        carried = np.array(state, np.int8).reshape(-1)  # a copy: the caller's is untouched
        if carried.shape != (self.state_size,):
            raise KwsError(f"state must have {self.state_size} int8 values, got "
                           f"{np.asarray(state).shape}")
        return np.ascontiguousarray(frames), carried


_PROBE = (
    "import sys\n"
    "from tflite_micro.python.tflite_micro import runtime\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "try:\n"
    "    runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[2]))\n"
    "except RuntimeError:\n"
    "    sys.exit(3)\n"
)


def _allocates_in_child(model_path: str, arena: int) -> bool:
    proc = subprocess.run([sys.executable, "-c", _PROBE, model_path, str(arena)],
                          capture_output=True, timeout=120)
    return proc.returncode == 0


class TflmStepModel(_StepModel):
    """The step model in the tflite-micro Python interpreter (L2)."""

    def __init__(self, tflite_bytes: bytes, arena_bytes: int | None = None):
        super().__init__(tflite_bytes)
        self.arena_bytes = int(arena_bytes) if arena_bytes else max(16384, 4 * len(tflite_bytes))
        self._interpreter, log = self._make(self.arena_bytes)
        if self._interpreter is None:
            reason = log.strip().splitlines()[-1] if log.strip() else "no reason given"
            raise KwsError(f"tflite-micro cannot allocate the model in a {self.arena_bytes}-byte "
                           f"arena: {reason}")
        self._in_frame = self.io["frame"].position
        self._in_state = self.io["state"].position
        self._out_state = self.io["new_state"].position
        self._out_logits = self.io["logits"].position

    def _make(self, arena: int):
        """(interpreter or None, captured log text) for an arena of `arena` bytes."""
        from tflite_micro.python.tflite_micro import runtime

        interpreter = None
        with captured_stderr() as log:
            try:
                interpreter = runtime.Interpreter.from_bytes(self.model_bytes, arena_size=arena)
            except RuntimeError:
                interpreter = None
        return interpreter, log[0].decode(errors="replace")

    @cached_property
    def arena_used_bytes(self) -> int:
        """Arena bytes TFLM's recording allocator reports for this model (head + tail)."""
        with captured_stderr() as log:
            self._interpreter.print_allocations()
        match = _ARENA_TOTAL.search(log[0])
        if match is None:
            raise KwsError("tflite-micro printed no arena total; cannot read the arena size")
        return int(match.group(1))

    @cached_property
    def arena_min_bytes(self) -> int:
        """Smallest arena_size that allocates the model, by bisection between the recorded
        total (too small: prepare needs scratch on top) and a size known to work. Each probe
        runs in a child process: an arena slightly too small can crash the interpreter
        (seen: segfaults for a GRU-80 model) instead of failing cleanly."""
        low, high = self.arena_used_bytes, self.arena_bytes
        with tempfile.TemporaryDirectory(prefix="kws-arena-") as tmp:
            model = os.path.join(tmp, "model.tflite")
            with open(model, "wb") as f:
                f.write(self.model_bytes)
            while low < high:
                mid = (low + high) // 2
                if _allocates_in_child(model, mid):
                    high = mid
                else:
                    low = mid + 1
        return low

    def _invoke(self, frame, state):
        it = self._interpreter
        it.set_input(frame, self._in_frame)
        it.set_input(state, self._in_state)
        it.invoke()
        return it.get_output(self._out_state), it.get_output(self._out_logits)


class TfliteStepModel(_StepModel):
    """The step model in TensorFlow Lite's interpreter (L1).

    `reference=True` selects TFLite's reference kernels (OpResolverType.BUILTIN_REF); measured on
    the GRU step model they give the same int8 step outputs as tflite-micro in ~90-96% of steps
    (99.3-99.6% of values), the optimized kernels (`reference=False`) in ~40-75%. The device
    numerics are tflite-micro's (TflmStepModel); this level is a cross-check."""

    def __init__(self, tflite_bytes: bytes, reference: bool = True):
        super().__init__(tflite_bytes)
        import tensorflow as tf

        resolver = tf.lite.experimental.OpResolverType
        with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice
            warnings.simplefilter("ignore")
            self._interpreter = tf.lite.Interpreter(
                model_content=self.model_bytes, num_threads=1,
                experimental_op_resolver_type=resolver.BUILTIN_REF if reference
                else resolver.BUILTIN)
        self._interpreter.allocate_tensors()
        self.reference = reference
        self._frame = self.io["frame"].tensor
        self._state = self.io["state"].tensor
        self._new_state = self.io["new_state"].tensor
        self._logits = self.io["logits"].tensor

    def _invoke(self, frame, state):
        it = self._interpreter
        it.set_tensor(self._frame, frame)
        it.set_tensor(self._state, state)
        it.invoke()
        return it.get_tensor(self._new_state), it.get_tensor(self._logits)
