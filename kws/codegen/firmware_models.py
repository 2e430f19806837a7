"""How the firmware runs the model: the native backend (our generated C, kws.native.cgen) or
the tflm backend (the model array over the pinned TensorFlow Lite Micro Arduino library).
Everything that differs between the two when a project is generated is here, so project.py
asks the chosen one instead of branching on its name. (Running a bundle on the host or in
QEMU to score it is kws.evaluation.backends.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from kws.codegen.tflm_model import TFLM_LIBRARY, TFLM_LIBRARY_NAME
from kws.errors import KwsError

# Flash of the TFLM interpreter + the kernels of our op list, without the model (DESIGN.md:
# the whole TFLM build of the GRU-64 step model is 113 KB, of which the model is ~31-38 KB).
TFLM_RUNTIME_FLASH = 80 * 1024


class FirmwareModel:
    name: ClassVar[str]
    lib_deps: ClassVar[tuple[str, ...]] = ()
    """PlatformIO lib_deps the project needs."""

    def sources(self, bundle, digest: str) -> dict[str, str]:
        """{file name: text}: kws_model.h and the files that implement it."""
        raise NotImplementedError

    def check(self, bundle, board) -> None:
        """A one-line KwsError when this implementation cannot run `bundle` on `board`."""

    def measured(self, core: Mapping[str, str]) -> dict[str, str]:
        """The sources whose compiled size stands for the firmware's (the rest is added by
        outside_measure)."""
        return dict(core)

    def outside_measure(self, bundle) -> tuple[int, int, dict]:
        """(flash bytes, RAM bytes, budget detail) not in the measured sources."""
        return 0, 0, {}


class NativeFirmwareModel(FirmwareModel):
    name = "native"

    def sources(self, bundle, digest: str) -> dict[str, str]:
        from kws.native import cgen

        return cgen.sources(bundle.tflite, digest)


class TflmFirmwareModel(FirmwareModel):
    name = "tflm"
    lib_deps = (TFLM_LIBRARY,)

    def sources(self, bundle, digest: str) -> dict[str, str]:
        from kws.codegen import tflm_model

        return tflm_model.sources(bundle, digest)

    def check(self, bundle, board) -> None:
        if board.is_emulated:
            raise KwsError(f"--backend tflm needs the TensorFlow Lite Micro library, which is "
                           f"built only for Arduino boards; {board.id} is emulated: use "
                           "--backend native")
        check_tflm_kernels(bundle)

    def measured(self, core: Mapping[str, str]) -> dict[str, str]:
        # the interpreter's C++ is the library's, counted as TFLM_RUNTIME_FLASH
        return {k: v for k, v in core.items() if not k.endswith((".cpp", ".cc"))}

    def outside_measure(self, bundle) -> tuple[int, int, dict]:
        arena = bundle.manifest.arena_bytes
        detail = {"model_bytes": len(bundle.tflite), "tflm_runtime_bytes": TFLM_RUNTIME_FLASH,
                  "arena_bytes": arena}
        return len(bundle.tflite) + TFLM_RUNTIME_FLASH, arena, detail


FIRMWARE_MODELS: dict[str, FirmwareModel] = {
    impl.name: impl for impl in (NativeFirmwareModel(), TflmFirmwareModel())}
BACKENDS = tuple(FIRMWARE_MODELS)


def firmware_model(name: str) -> FirmwareModel:
    try:
        return FIRMWARE_MODELS[name]
    except KeyError:
        raise KwsError(f"--backend {name}: not one of {', '.join(BACKENDS)}") from None


def per_channel_fully_connected(tflite: bytes) -> list[str]:
    """Labels of the FULLY_CONNECTED ops whose weights carry one scale per output channel."""
    from kws.native.graph import parse_model

    graph = parse_model(tflite)
    return [op.label() for op in graph.ops
            if op.name == "FULLY_CONNECTED" and graph.tensor(op.inputs[1]).per_channel]


def check_tflm_kernels(bundle) -> None:
    """Refuse what the pinned library computes wrong. Its FULLY_CONNECTED (the CMSIS-NN
    wrapper, at f14e2f48 and still at its last commit) applies the first channel's output
    multiplier to every channel, so per-channel weights give wrong logits on the board. The
    pip tflite_micro behind `kws eval --backend tflm` gets them right, so no host evaluation
    would show it; tests/codegen/test_tflm_arduino_host.py builds the library and measures it."""
    if per_channel_fully_connected(bundle.tflite):
        raise KwsError(f"{bundle.folder / 'model.tflite'}: FULLY_CONNECTED weights are quantized "
                       f"per channel, which the Arduino TFLM library ({TFLM_LIBRARY_NAME}) "
                       "computes with one multiplier (wrong logits on the board); use "
                       "--backend native, or train with --set per_channel=false")
