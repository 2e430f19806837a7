"""tflm: the int8 step model in the tflite-micro interpreter (the reference for the device);
tflite: the same model in the TFLite interpreter with its reference kernels."""

from __future__ import annotations

from kws.evaluation.backends import StepModelBackend


class TflmBackend(StepModelBackend):
    name = "tflm"

    def make_step_model(self):
        from kws.export.tflm import TflmStepModel

        return TflmStepModel(self.bundle.tflite)


class TfliteBackend(StepModelBackend):
    name = "tflite"

    def make_step_model(self):
        from kws.export.tflm import TfliteStepModel

        return TfliteStepModel(self.bundle.tflite)
