"""The generated C front end, compiled for the host and called through ctypes.

This is the device's code path (L3 in DESIGN.md): parity tests and `kws features compare` use it
to prove the firmware computes what training saw.
"""

from __future__ import annotations

import ctypes
from typing import Iterable

import numpy as np

from kws.csource.host_build import build_shared
from kws.features import ctables
from kws.features.params import FeatureParams

_F32P = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
_I16P = np.ctypeslib.ndpointer(np.int16, flags="C_CONTIGUOUS")
_I8P = np.ctypeslib.ndpointer(np.int8, flags="C_CONTIGUOUS")


class CFeatures:
    """One host build of the C front end for a parameter set, with a private state."""

    def __init__(self, params: FeatureParams = FeatureParams(), extra_flags: Iterable[str] = ()):
        self.params = params
        self.library_path = build_shared(ctables.sources(params), "kws_features", tuple(extra_flags))
        lib = ctypes.CDLL(str(self.library_path))
        lib.kws_features_state_size.restype = ctypes.c_size_t
        lib.kws_features_reset.argtypes = [ctypes.c_void_p]
        lib.kws_features_feed.argtypes = [ctypes.c_void_p, _I16P, ctypes.c_size_t, _F32P, ctypes.c_size_t]
        lib.kws_features_feed.restype = ctypes.c_size_t
        lib.kws_features_push_hop.argtypes = [ctypes.c_void_p, _I16P, _F32P]
        lib.kws_features_push_hop.restype = ctypes.c_int
        lib.kws_features_quantize.argtypes = [_F32P, ctypes.c_float, ctypes.c_int32, _I8P]
        lib.kws_features_logf.argtypes = [ctypes.c_float]
        lib.kws_features_logf.restype = ctypes.c_float
        self._lib = lib
        self._state = ctypes.create_string_buffer(lib.kws_features_state_size())
        self.reset()

    def reset(self) -> None:
        self._lib.kws_features_reset(self._state)

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Stream `samples` (int16) into the running state; returns the frames they completed."""
        x = np.ascontiguousarray(samples, dtype=np.int16)
        room = len(x) // self.params.hop_samples + 1
        out = np.zeros((room, self.params.mel_bands), np.float32)
        n = self._lib.kws_features_feed(self._state, x, len(x), out, room)
        return out[:n]

    def log_mel(self, audio: np.ndarray) -> np.ndarray:
        """Frames of one clip from a fresh state, like the reference's `log_mel`."""
        self.reset()
        return self.feed(audio)

    def log_mel_chunked(self, audio: np.ndarray, chunk_sizes: Iterable[int]) -> np.ndarray:
        """Frames of one clip fed in the given chunk sizes (cycled), as a DMA driver would."""
        self.reset()
        x = np.ascontiguousarray(audio, dtype=np.int16)
        sizes = list(chunk_sizes)
        frames, pos, i = [], 0, 0
        while pos < len(x):
            n = sizes[i % len(sizes)]
            frames.append(self.feed(x[pos : pos + n]))
            pos, i = pos + n, i + 1
        return np.concatenate(frames) if frames else np.zeros((0, self.params.mel_bands), np.float32)

    def push_hop(self, hop: np.ndarray) -> np.ndarray | None:
        x = np.ascontiguousarray(hop, dtype=np.int16)
        assert len(x) == self.params.hop_samples
        out = np.zeros(self.params.mel_bands, np.float32)
        return out if self._lib.kws_features_push_hop(self._state, x, out) else None

    def quantize(self, frames: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
        f = np.ascontiguousarray(frames, dtype=np.float32).reshape(-1, self.params.mel_bands)
        out = np.zeros(f.shape, np.int8)
        for i in range(len(f)):
            self._lib.kws_features_quantize(f[i], scale, zero_point, out[i])
        return out.reshape(np.shape(frames))

    def logf(self, x: float) -> float:
        return float(self._lib.kws_features_logf(x))
