"""native: the generated C of the native backend compiled for the host (bit-identical to
tflite-micro); the device pipeline `kws streams` scores."""

from __future__ import annotations

from kws.evaluation.backends import StepModelBackend


class NativeBackend(StepModelBackend):
    name = "native"

    def make_step_model(self):
        from kws.native.host import NativeModel

        return NativeModel(self.bundle.tflite, digest=self.bundle.manifest.model_sha256)
