"""qemu: the whole firmware of an emulated board (default qemu_m4) in qemu-system-arm."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from kws.evaluation.backends import Backend


class QemuBackend(Backend):
    name = "qemu"

    def _firmware(self):
        from kws.emulate import firmware

        return firmware.build(self.bundle.folder, self.board)

    def run_clips(self, audio_int16: np.ndarray) -> np.ndarray:
        from kws.emulate import firmware

        return firmware.clip_logits(self._firmware(), audio_int16)

    def run_stream(self, audio_int16: np.ndarray):
        from kws.data.audio import write_wav
        from kws.emulate import firmware
        from kws.recognize.stream import StreamResult

        fw = self._firmware()
        labels = tuple(fw.labels)
        with tempfile.TemporaryDirectory(prefix="kws-stream-") as tmp:
            wav = Path(tmp) / "stream.wav"
            write_wav(wav, np.asarray(audio_int16, np.int16), fw.sample_rate_hz)
            (run,) = firmware.run(fw, [wav], decisions=True)
        detections = [(labels.index(d["label"]), round(d["score"] * 32768),
                       round(d["t_s"] * 1000)) for d in run.detections]
        return StreamResult(labels, detections, list(run.decisions),
                            frames=int(run.counters.get("frames", 0)))

    def describe(self) -> dict:
        return {**super().describe(), "board": self.board}
