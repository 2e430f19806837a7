"""The rendered C core compiled for the host and driven through ctypes (emulation level L3 for
the streaming pipeline): the firmware's own features + model + recognizer + app code.

- `HostRecognizer(config)`: kws_recognizer.c alone.
- `HostApp(manifest, tflite_bytes)`: the whole core; `feed(audio)` returns the detections and
  decisions the device would report, through the C callbacks.

A few host-only accessor functions (sizeof, counters) are compiled in next
to the generated files; they are not part of the firmware.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Iterable

import numpy as np

from kws.csource.host_build import build_shared
from kws.errors import KwsError
from kws.recognize.csources import core_sources, recognizer_sources
from kws.recognize.recognizer import RecognizerConfig

_I8P = np.ctypeslib.ndpointer(np.int8, flags="C_CONTIGUOUS")
_I16P = np.ctypeslib.ndpointer(np.int16, flags="C_CONTIGUOUS")

DETECTION_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint16,
                                ctypes.c_uint32)
DECISION_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int8),
                               ctypes.c_uint32)

_RECOGNIZER_SHIM = """\
#include <stddef.h>
#include "kws_recognizer.h"
size_t kws_host_recognizer_size(void) { return sizeof(kws_recognizer_t); }
"""

_APP_SHIM = """\
#include <stddef.h>
#include "kws_app.h"
size_t kws_host_app_size(void) { return sizeof(kws_app_t); }
uint32_t kws_host_app_ring_samples(void) { return KWS_APP_RING_SAMPLES; }
void kws_host_app_counters(const kws_app_t *app, uint32_t *out)
{
    out[0] = app->frames;
    out[1] = app->decisions;
    out[2] = app->detections;
    out[3] = app->overruns;
}
"""


class HostRecognizer:
    """kws_recognizer.c for one RecognizerConfig, with the Python Recognizer's `push` API."""

    def __init__(self, config: RecognizerConfig, extra_flags: Iterable[str] = ()):
        self.config = config
        files = recognizer_sources(config, "host")
        files["kws_host_recognizer.c"] = _RECOGNIZER_SHIM
        lib = ctypes.CDLL(str(build_shared(files, "kws_recognizer", tuple(extra_flags))))
        lib.kws_host_recognizer_size.restype = ctypes.c_size_t
        lib.kws_recognizer_reset.argtypes = [ctypes.c_void_p]
        lib.kws_recognizer_reset.restype = None
        lib.kws_recognizer_push.argtypes = [ctypes.c_void_p, _I8P, ctypes.c_uint32,
                                            ctypes.POINTER(ctypes.c_uint16)]
        lib.kws_recognizer_push.restype = ctypes.c_int
        self._lib = lib
        self._state = ctypes.create_string_buffer(lib.kws_host_recognizer_size())
        self._score = ctypes.c_uint16(0)
        self.reset()

    def reset(self) -> None:
        self._lib.kws_recognizer_reset(self._state)

    def push(self, logits: np.ndarray, t_ms: int) -> tuple[int, int] | None:
        q = np.ascontiguousarray(logits, np.int8)
        if q.shape != (len(self.config.labels),):
            raise KwsError(f"logits must have shape ({len(self.config.labels)},), got {q.shape}")
        label = self._lib.kws_recognizer_push(self._state, q, int(t_ms) & 0xFFFFFFFF,
                                              ctypes.byref(self._score))
        return None if label < 0 else (label, int(self._score.value))


class HostApp:
    """One host build of the whole C core for a bundle, with a private kws_app_t.

    `feed` continues the stream (call `reset` to start over); `write` / `process` drive the
    producer and consumer sides separately (ring tests)."""

    def __init__(self, manifest, tflite_bytes: bytes, ring_samples: int | None = None,
                 extra_flags: Iterable[str] = ()):
        from kws.features import ctables
        from kws.native.host import NativeModel
        from kws.recognize.stream import check_model_matches

        self.manifest = manifest
        digest = hashlib.sha256(tflite_bytes).hexdigest()
        model = NativeModel(tflite_bytes, digest)  # refuses a model whose state needs requantizing
        check_model_matches(manifest, model)
        files = {
            **ctables.sources(manifest.features, digest),
            **model.sources,
            **core_sources(manifest, digest, ring_samples),
            "kws_host_app.c": _APP_SHIM,
        }
        self.library_path = build_shared(files, "kws_app", tuple(extra_flags))
        lib = ctypes.CDLL(str(self.library_path))
        lib.kws_host_app_size.restype = ctypes.c_size_t
        lib.kws_host_app_ring_samples.restype = ctypes.c_uint32
        lib.kws_app_set_decision_hook.argtypes = [ctypes.c_void_p, DECISION_FN, ctypes.c_void_p]
        lib.kws_app_set_decision_hook.restype = None
        lib.kws_host_app_counters.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
        lib.kws_host_app_counters.restype = None
        lib.kws_app_init.argtypes = [ctypes.c_void_p]
        lib.kws_app_init.restype = None
        lib.kws_app_write_audio.argtypes = [ctypes.c_void_p, _I16P, ctypes.c_size_t]
        lib.kws_app_write_audio.restype = ctypes.c_size_t
        lib.kws_app_process.argtypes = [ctypes.c_void_p, DETECTION_FN, ctypes.c_void_p]
        lib.kws_app_process.restype = ctypes.c_uint32
        lib.kws_app_feed.argtypes = [ctypes.c_void_p, _I16P, ctypes.c_size_t, DETECTION_FN,
                                     ctypes.c_void_p]
        lib.kws_app_feed.restype = ctypes.c_uint32
        self._lib = lib
        self.ring_samples = int(lib.kws_host_app_ring_samples())
        self.labels = len(manifest.labels)
        self._app = ctypes.create_string_buffer(lib.kws_host_app_size())
        self._detections: list[tuple[int, int, int]] = []
        self._decisions: list[tuple[int, np.ndarray]] = []
        # the callbacks must outlive every C call that may use them: keep them on self
        self._on_detection = DETECTION_FN(self._detection)
        self._on_decision = DECISION_FN(self._decision)
        self.reset()

    def _detection(self, _user, label: int, score: int, t_ms: int) -> None:
        self._detections.append((int(label), int(score), int(t_ms)))

    def _decision(self, _user, logits, t_ms: int) -> None:
        row = np.ctypeslib.as_array(logits, shape=(self.labels,)).copy()
        self._decisions.append((int(t_ms), row))

    def reset(self) -> None:
        self._lib.kws_app_init(self._app)
        self._lib.kws_app_set_decision_hook(self._app, self._on_decision, None)

    def _collect(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, np.ndarray]]]:
        out = (self._detections, self._decisions)
        self._detections, self._decisions = [], []
        return out

    @staticmethod
    def _samples(audio) -> np.ndarray:
        x = np.asarray(audio)
        if x.dtype != np.int16 or x.ndim != 1:
            raise KwsError(f"audio must be a 1-D int16 array, got {x.dtype} {x.shape}")
        return np.ascontiguousarray(x)

    def feed(self, audio) -> tuple[list[tuple[int, int, int]], list[tuple[int, np.ndarray]]]:
        """kws_app_feed: (detections [(label, score_q15, t_ms)], decisions [(t_ms, logits)])
        produced by this audio."""
        x = self._samples(audio)
        self._lib.kws_app_feed(self._app, x, len(x), self._on_detection, None)
        return self._collect()

    def write(self, audio) -> int:
        """Producer side only: samples accepted into the ring."""
        x = self._samples(audio)
        return int(self._lib.kws_app_write_audio(self._app, x, len(x)))

    def process(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, np.ndarray]]]:
        """Consumer side only: every whole hop in the ring."""
        self._lib.kws_app_process(self._app, self._on_detection, None)
        return self._collect()

    @property
    def counters(self) -> dict[str, int]:
        out = (ctypes.c_uint32 * 4)()
        self._lib.kws_host_app_counters(self._app, out)
        return dict(zip(("frames", "decisions", "detections", "overruns"), map(int, out)))
