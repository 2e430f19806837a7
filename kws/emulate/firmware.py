"""Run the generated firmware of an emulated board (qemu_m4/m7/m55) on WAV files.

The ELF is built from exactly the files `kws generate` writes for the board (the same
templates, the same bundle), with the harness's flags, and run in qemu-system-arm with
-icount shift=0: the WAV paths reach the firmware as its semihosting command line and it reads
them through semihosting, in the board's audio block size. What the firmware prints is parsed
back into detections, decisions (every model decision's int8 logits) and counters.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws.emulate import qemu
from kws.errors import KwsError

HEARD = re.compile(r"^heard (\S+) \((\d+\.\d+)\) at (\d+\.\d+) s$")


@dataclass
class FileRun:
    """What the firmware reported for one WAV file (one stream)."""

    path: str
    detections: list[dict] = field(default_factory=list)  # label, score, t_s
    decisions: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (t_ms, int8 logits)
    clips: list[np.ndarray | None] = field(default_factory=list)  # clip mode: int8 logits
    counters: dict = field(default_factory=dict)  # frames, decisions, detections, ...

    def as_dict(self) -> dict:
        return {"file": self.path, "detections": self.detections, **self.counters}


@dataclass
class Firmware:
    elf: Path
    board: object
    labels: tuple[str, ...]
    sample_rate_hz: int


def build(model_dir: Path, board_id: str) -> Firmware:
    """Generate the board's project files in memory and build them into an ELF (cached)."""
    from kws.codegen import project
    from kws.export.read import load_bundle

    bundle = load_bundle(Path(model_dir))
    board = project.resolve_board(board_id)
    if not board.is_emulated:
        raise KwsError(f"{board.id} is a real board; emulation runs on qemu_m4, qemu_m7 or "
                       "qemu_m55 (boards whose audio.source is semihosting)")
    project.check_compatible(bundle, board, "native")
    files = project.firmware_sources(bundle, board, "native", project.bundle_digest(bundle))
    elf = qemu.build_elf(files, board.core, f"kws-{board.id}")
    return Firmware(elf, board, bundle.manifest.labels, bundle.manifest.features.sample_rate_hz)


def clip_logits(firmware: Firmware, clips: np.ndarray, timeout: float | None = None) -> np.ndarray:
    """[N, labels] int8 logits of N equal-length int16 clips, all in one emulator run."""
    from kws.data.audio import write_wav

    clips = np.asarray(clips, np.int16)
    n, length = clips.shape
    with tempfile.TemporaryDirectory(prefix="kws-clips-") as tmp:
        wav = Path(tmp) / "clips.wav"
        write_wav(wav, clips.reshape(-1), firmware.sample_rate_hz)
        (result,) = run(firmware, [wav], timeout=timeout, clip_samples=length)
    if len(result.clips) != n or any(c is None for c in result.clips):
        raise KwsError(f"firmware returned {len(result.clips)} clip results for {n} clips "
                       "(clips shorter than the model's window give none)")
    return np.stack(result.clips)


def _pcm16_copy(path: Path, rate: int, tmp: Path, index: int) -> Path:
    """The file itself when it is 16-bit mono PCM at `rate`, else a converted copy in tmp."""
    import soundfile as sf

    from kws.data.audio import read_wav, write_wav

    try:
        info = sf.info(str(path))
        if info.format == "WAV" and info.subtype == "PCM_16" and info.channels == 1 \
                and info.samplerate == rate:
            return path.resolve()
    except (RuntimeError, sf.LibsndfileError):
        pass  # read_wav gives the one-line reason
    target = tmp / f"{index:05d}.wav"
    write_wav(target, read_wav(path, rate), rate)
    return target


def parse(stdout: str) -> list[FileRun]:
    runs: list[FileRun] = []
    for line in stdout.splitlines():
        if line.startswith("file "):
            runs.append(FileRun(line[5:]))
        elif line.startswith("error: "):
            raise KwsError(line[7:])
        elif not runs:
            continue
        elif m := HEARD.match(line):
            runs[-1].detections.append({"label": m[1], "score": float(m[2]),
                                        "t_s": float(m[3])})
        elif line.startswith("decision "):
            _, t_ms, values = line.split(" ", 2)
            runs[-1].decisions.append((int(t_ms), np.array(
                [int(v) for v in values.split(",")], np.int8)))
        elif line.startswith("clip "):
            _, _, values = line.split(" ", 2)
            runs[-1].clips.append(None if values == "none" else np.array(
                [int(v) for v in values.split(",")], np.int8))
        elif line.startswith("summary "):
            runs[-1].counters = {k: int(v) for k, v in
                                 (item.split("=", 1) for item in line[8:].split())}
    return runs


def run(firmware: Firmware, wavs: list[Path], decisions: bool = False,
        timeout: float | None = None, clip_samples: int = 0) -> list[FileRun]:
    """Run the firmware once over all `wavs` (each its own stream); one FileRun per file.
    clip_samples > 0: each file is a run of clips of that many samples, each from a fresh
    app, and FileRun.clips holds each clip's logits (the first decision)."""
    if not wavs:
        raise KwsError("no WAV file given")
    with tempfile.TemporaryDirectory(prefix="kws-emulate-") as tmp:
        paths = [_pcm16_copy(Path(w), firmware.sample_rate_hz, Path(tmp), i)
                 for i, w in enumerate(wavs)]
        for p in paths:
            if " " in str(p):
                raise KwsError(f"{p}: paths with spaces cannot pass the semihosting command "
                               "line; rename or copy the file")
        seconds = sum(p.stat().st_size for p in paths) / (2 * firmware.sample_rate_hz)
        limit = timeout if timeout is not None else 60.0 + seconds
        args = (["--decisions"] if decisions else []) + \
            ([f"--clips={int(clip_samples)}"] if clip_samples > 0 else []) + [str(p) for p in paths]
        result = qemu.run_elf(firmware.elf, firmware.board.core, limit, args=args)
        runs = parse(result.stdout)
        if result.status != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-1:] or [""]
            raise KwsError(f"firmware on {firmware.board.id} exited with status "
                           f"{result.status}: {tail[0][:200]}")
    if len(runs) != len(paths):
        raise KwsError(f"firmware reported {len(runs)} of {len(paths)} files")
    for r, original in zip(runs, wavs):
        r.path = str(original)
    return runs
