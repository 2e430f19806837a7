"""Render the generated C core into a folder and build the libFuzzer harnesses of tests/fuzz.

    .venv/bin/python tests/fuzz/build.py [--out build/fuzz] [features app recognizer serial_frame]

Sources (what the firmware compiles, rendered by the project's own generators):
- features: kws.features.ctables.sources(FeatureParams())
- model: kws.native.cgen.sources() of build_step_model(16, 12) (tests/native/native_models.py)
- core: kws.recognize.csources.core_sources() of a manifest like tests/bundle_factory's, with
  short clips (CLIP_FRAMES) so that decisions and detections happen within libFuzzer's inputs
- serial frame parser: project/kws_serial_frame.{h,c}.j2 with frame_samples=512

Each harness is compiled with clang -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
into <out>/fuzz_<target>; the rendered files go to <out>/src.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DIGEST = "fuzz"
FRAME_SAMPLES = 512
# Frames per decision in the fuzz build (the firmware uses 49): with 2 staggered states a
# decision every frame (20 ms), so a 4 KB input (128 ms of audio) reaches the recognizer.
CLIP_FRAMES = 2
RESETS = 2

SANITIZE = ("-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all")
CFLAGS = ("-g", "-O1", "-std=c99", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wextra",
          *SANITIZE)

# target -> the rendered .c files it links (headers are all in src/)
TARGETS = {
    "features": ("kws_features.c",),
    "recognizer": ("kws_recognizer.c",),
    "app": ("kws_features.c", "kws_model.c", "kws_kernels.c", "kws_recognizer.c", "kws_app.c"),
    "serial_frame": ("kws_serial_frame.c",),
}


def clang() -> str | None:
    return shutil.which(os.environ.get("FUZZ_CC", "clang"))


def libfuzzer_missing() -> str | None:
    """None when clang links a libFuzzer + ASan + UBSan binary, else the reason it cannot."""
    cc = clang()
    if cc is None:
        return "clang not found (Debian: apt-get install clang libclang-rt-14-dev; make setup)"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text("#include <stddef.h>\n#include <stdint.h>\n"
                       "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)"
                       "{ (void)d; (void)n; return 0; }\n")
        proc = subprocess.run([cc, *SANITIZE, str(src), "-o", str(Path(tmp) / "probe")],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"clang cannot link libFuzzer (libclang-rt-14-dev missing?): {last}"
    return None


@functools.cache
def model_bytes() -> bytes:
    sys.path.insert(0, str(REPO))
    from tests.native.native_models import build_step_model

    return build_step_model(16, 12)


def sources() -> dict[str, str]:
    """{file name: text} of every rendered C file the harnesses link."""
    sys.path.insert(0, str(REPO))
    from kws.csource.render import render
    from kws.features import ctables
    from kws.features.params import FeatureParams
    from kws.native import cgen
    from kws.recognize.csources import core_sources
    from tests.bundle_factory import LABELS12, make_manifest

    tflite = model_bytes()
    files = dict(ctables.sources(FeatureParams(), DIGEST))
    files.update(cgen.sources(tflite, DIGEST))
    manifest = make_manifest(tflite, RESETS, clip_frames=CLIP_FRAMES, labels=LABELS12)
    files.update(core_sources(manifest, DIGEST))
    ctx = {"frame_samples": FRAME_SAMPLES}
    for name in ("kws_serial_frame.h", "kws_serial_frame.c"):
        files[name] = render(f"project/{name}.j2", ctx, DIGEST)
    return files


def render_sources(out: Path) -> Path:
    src = out / "src"
    src.mkdir(parents=True, exist_ok=True)
    for name, text in sources().items():
        path = src / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    return src


def build(targets, out: Path) -> dict[str, Path]:
    """Compile fuzz_<target> for each target into `out`; {target: binary}."""
    cc = clang()
    if cc is None:
        raise SystemExit(libfuzzer_missing())
    src = render_sources(out)
    binaries = {}
    for target in targets:
        binary = out / f"fuzz_{target}"
        cmd = [cc, *CFLAGS, f"-I{src}", str(HERE / f"fuzz_{target}.c"),
               *(str(src / name) for name in TARGETS[target]), "-lm", "-o", str(binary)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building fuzz_{target} failed:\n{' '.join(cmd)}\n{proc.stderr}")
        binaries[target] = binary
    return binaries


def _audio(n: int, seed: int):
    """n int16 samples: two tones with a rising pitch, noise and a loud burst (deterministic)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    x = 6000 * np.sin(2 * np.pi * (300 + 900 * t) * t) + 2500 * np.sin(2 * np.pi * 2100 * t)
    x += rng.normal(0, 800, n)
    x[n // 3: n // 3 + n // 10] *= 4.0
    return np.clip(np.round(x), -32768, 32767).astype("<i2")


def _serial_frame(samples) -> bytes:
    import struct

    body = struct.pack("<H", len(samples)) + bytes(samples.astype("<i2").tobytes())
    crc = 0xFFFF
    for byte in body:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return b"KW" + body + struct.pack("<H", crc)


def write_corpus(root: Path = HERE / "corpus") -> list[Path]:
    """The committed seed inputs (small valid inputs per target), regenerated."""
    import io

    import numpy as np
    import soundfile as sf

    seeds: dict[str, bytes] = {}
    audio = _audio(3600, 0)
    seeds["features/tones"] = bytes([7, 21]) + audio.tobytes()
    seeds["features/silence"] = bytes([1, 0]) + bytes(2 * 1000)
    # 3 block sizes: 160, 333, 1
    # 3 block sizes 160, 333, 1 (then one call); 1 block of 1199 through the ring (overruns)
    seeds["app/tones_160_333_1"] = bytes([2, 160, 0, 77, 1, 1, 0]) + audio[:2000].tobytes()
    seeds["app/tones_overrun"] = bytes([8, 0xAF, 0x04]) + _audio(2000, 1).tobytes()
    labels = 12
    rows = []
    for k in range(24):  # a keyword (label 2 + k % 3) dominating, every 40 ms
        logits = np.full(labels, -60, np.int8)
        logits[2 + (k // 8)] = 90
        rows.append(bytes([40]) + logits.tobytes())
    seeds["recognizer/keywords"] = b"".join(rows)
    seeds["recognizer/flat"] = (bytes([255]) + bytes(labels)) * 4 + (bytes([254]) + bytes(labels))
    seeds["serial_frame/two_frames"] = (b"xyK" + _serial_frame(audio[:40]) + b"KW\x00\x00"
                                        + _serial_frame(audio[40:41]))
    buf = io.BytesIO()
    sf.write(buf, audio[:1600], 16000, subtype="PCM_16", format="WAV")
    seeds["wav/pcm16_mono_16k.wav"] = buf.getvalue()
    buf = io.BytesIO()
    stereo = np.stack([audio[:400], audio[400:800]], axis=1) / 32768.0
    sf.write(buf, stereo.astype(np.float32), 8000, subtype="FLOAT", format="WAV")
    seeds["wav/float_stereo_8k.wav"] = buf.getvalue()
    for board in sorted((REPO / "boards").glob("*.yaml")):
        seeds[f"board/{board.name}"] = board.read_bytes()
    seeds["tflite/step_h16_c12.tflite"] = model_bytes()
    written = []
    for name, data in seeds.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "fuzz")
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--corpus", action="store_true",
                        help="rewrite the seed inputs in tests/fuzz/corpus and exit")
    args = parser.parse_args(argv)
    if args.corpus:
        for path in write_corpus():
            print(f"{path.relative_to(REPO)}: {path.stat().st_size} bytes")
        return 0
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    for target, binary in build(args.targets or list(TARGETS), args.out).items():
        print(f"{target}: {binary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
