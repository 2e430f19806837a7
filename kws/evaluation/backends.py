"""Every way of running a bundle, behind one small interface and one registry.

A backend takes a bundle and runs its model on int16 audio: `run_clips` gives one row of
logits per 1 s clip (from the zero state, scored at the last frame: what `kws eval` reports),
`run_stream` the device's decisions and detections on one long stream (one state carried,
as the firmware runs it). Int8 backends hear the device's C front end, so their logits are
comparable byte for byte; keras hears the librosa reference it was trained on.

Adding a backend: one module with a `Backend` subclass, and one line in REGISTRY. Backends are
imported by name only when asked for, so `kws eval --backend native` never loads TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import ClassVar

import numpy as np

from kws.errors import KwsError
from kws.export.read import Bundle

REGISTRY: dict[str, str] = {
    "keras": "kws.evaluation.backend_keras:KerasBackend",
    "tflite": "kws.evaluation.backend_tflite:TfliteBackend",
    "tflm": "kws.evaluation.backend_tflite:TflmBackend",
    "native": "kws.evaluation.backend_native:NativeBackend",
    "qemu": "kws.evaluation.backend_qemu:QemuBackend",
}
"""name -> "module:class"; the order is the order `kws eval --help` lists them in."""

DEFAULT_BOARD = "qemu_m4"


class Backend:
    """One way of running a bundle. Subclasses set the class attributes and run_clips."""

    name: ClassVar[str]
    int8: ClassVar[bool] = True
    """int8 logits (dequantize with the manifest's logits_quant) or float32 (keras)."""
    features: ClassVar[str] = "device C front end"

    def __init__(self, bundle: Bundle, board: str = DEFAULT_BOARD):
        self.bundle = bundle
        self.board = board

    def run_clips(self, audio_int16: np.ndarray) -> np.ndarray:
        """Logits [N, C] of N equal-length int16 clips [N, S], each from the zero state."""
        raise NotImplementedError

    def run_stream(self, audio_int16: np.ndarray):
        """kws.recognize.stream.StreamResult of one int16 stream [S] at the manifest's
        schedule and recognizer."""
        raise KwsError(f"--backend {self.name}: runs 1 s clips only, not streams")

    def describe(self) -> dict:
        """What a result row says about how it was computed."""
        return {"backend": self.name, "features": self.features}


class StepModelBackend(Backend):
    """A backend that runs the int8 step model on the host: frames from the C front end."""

    _model = None

    def step_model(self):
        """An object with io, labels, frame_size, state_size, run_clips and run_sequence; made
        once per backend (a build or an interpreter each time would be wasted work)."""
        if self._model is None:
            self._model = self.make_step_model()
        return self._model

    def make_step_model(self):
        raise NotImplementedError

    def run_frames(self, frames_i8: np.ndarray) -> np.ndarray:
        """[N, C] int8 logits of quantized clips [N, T, F]."""
        return self.step_model().run_clips(frames_i8)

    def run_clips(self, audio_int16: np.ndarray) -> np.ndarray:
        return self.run_frames(device_frames(self.bundle, audio_int16))

    def stream_runner(self, manifest=None):
        """A kws.recognize.stream.StreamRunner (the C core mirrored) on this step model;
        `manifest` overrides the bundle's (e.g. another number of staggered states)."""
        from kws.recognize.stream import StreamRunner

        m = manifest or self.bundle.manifest
        return StreamRunner(m, self.bundle.tflite, model=self.step_model())

    def run_stream(self, audio_int16: np.ndarray):
        return self.stream_runner().run(audio_int16)


def device_frames(bundle: Bundle, audio_int16: np.ndarray) -> np.ndarray:
    """[N, T, F] int8 model inputs of N clips from the C front end and C quantizer."""
    from kws.features.native import CFeatures

    m = bundle.manifest
    cf = CFeatures(m.features)
    return np.stack([cf.quantize(cf.log_mel(clip), m.input_quant.scale, m.input_quant.zero_point)
                     for clip in audio_int16])


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def backend_class(name: str) -> type[Backend]:
    try:
        target = REGISTRY[name]
    except KeyError:
        raise KwsError(f"--backend {name}: not one of {', '.join(REGISTRY)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def get(name: str, bundle: Bundle, board: str = DEFAULT_BOARD) -> Backend:
    """The backend `name` on `bundle` (board: where the qemu backend runs the firmware)."""
    return backend_class(name)(bundle, board)
