"""The generated model C compiled for the host and called through ctypes (emulation level L3).

`NativeModel(tflite_bytes)` has the clip semantics of kws.export.tflm.TflmStepModel (`step`,
`run_clip`, `run_clips`), but runs the very C code the firmware runs; `run_clips` is one ctypes
call into `kws_model_run_clips`, `run_sequence` (a stream with one state that is never reset)
one call into `kws_model_run_sequence`.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable

import numpy as np

from kws.csource.host_build import build_shared
from kws.errors import KwsError
from kws.export.tflm import _StepModel
from kws.native import cgen

_I8P = np.ctypeslib.ndpointer(np.int8, flags="C_CONTIGUOUS")


class NativeModel(_StepModel):
    """One host build of the generated model C (cached by content). Each instance loads its own
    copy of the shared library, so the static scratch buffer is private to it (not thread-safe).
    `specialize` / `fuse`: as in kws.native.cgen.context (tests of the generic paths)."""

    def __init__(self, tflite_bytes: bytes, digest: str | None = None,
                 extra_flags: Iterable[str] = (), *, specialize: bool = True, fuse: bool = True):
        super().__init__(tflite_bytes)
        if not self.state_shared:
            raise KwsError("new_state and state are quantized differently, so a plain copy "
                           "would be wrong; run share_state_quantization on the model first")
        self.sources = cgen.sources(self.model_bytes, digest, specialize=specialize, fuse=fuse)
        self.library_path = build_shared(self.sources, "kws_model", tuple(extra_flags))
        lib = ctypes.CDLL(str(self.library_path))
        lib.kws_model_reset_state.argtypes = [_I8P]
        lib.kws_model_reset_state.restype = None
        lib.kws_model_step.argtypes = [_I8P, _I8P, _I8P]
        lib.kws_model_step.restype = None
        lib.kws_model_run_clips.argtypes = [_I8P, ctypes.c_size_t, ctypes.c_size_t, _I8P]
        lib.kws_model_run_clips.restype = None
        lib.kws_model_run_sequence.argtypes = [_I8P, ctypes.c_size_t, _I8P, _I8P]
        lib.kws_model_run_sequence.restype = None
        self._lib = lib

    def reset_state(self) -> np.ndarray:
        state = np.empty(self.state_size, np.int8)
        self._lib.kws_model_reset_state(state)
        return state

    def _invoke(self, frame: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frame = np.ascontiguousarray(frame, np.int8).reshape(-1)
        new_state = np.array(state, np.int8).reshape(-1)  # updated in place by the C step
        logits = np.empty(self.labels, np.int8)
        self._lib.kws_model_step(frame, new_state, logits)
        return new_state.reshape(1, -1), logits.reshape(1, -1)

    def _sequence_start(self) -> np.ndarray:
        return self.reset_state()

    def run_clips(self, frames_i8) -> np.ndarray:
        """Logits [N, C] int8 after one step per frame of [N, T, F] clips, each from the zero
        state (as TflmStepModel.run_clips), in one C call."""
        frames = self._checked_clips(frames_i8)
        out = np.zeros((frames.shape[0], self.labels), np.int8)
        if frames.shape[0]:
            self._lib.kws_model_run_clips(frames, frames.shape[0], frames.shape[1], out)
        return out

    def run_sequence(self, frames_i8, state=None) -> tuple[np.ndarray, np.ndarray]:
        """(logits [T, C] int8 after every frame, final state [H] int8) of one step per frame
        of int8 frames [T, F], starting from `state` (None: the zero state), with new_state fed
        back by copy and never reset, in one C call. Running a stream in parts, each from the
        previous part's final state, gives the same logits as one run."""
        frames, carried = self._checked_sequence(frames_i8, state)
        out = np.zeros((frames.shape[0], self.labels), np.int8)
        if frames.shape[0]:
            self._lib.kws_model_run_sequence(frames, frames.shape[0], carried, out)
        return out, carried
