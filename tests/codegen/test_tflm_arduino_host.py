"""The tflm backend against the Arduino TFLM library it pins, compiled with the host's g++.

PlatformIO cannot fetch the library here, so nothing else checks that the generated wrapper
(kws_model_tflm.cpp) compiles against the commit platformio.ini names, nor what that commit's
kernels compute. The vendored tarball of that commit is unpacked once per session, the sources
the interpreter and our ops need are compiled with the flags the mbed build gives a library
(reference kernels, and for FULLY_CONNECTED/ADD/MUL the CMSIS-NN wrappers, which are the only
kernels this export ships for them; CMSIS-NN runs its portable C here, its DSP variant on an
M4), and a small driver runs the generated model code over clips:

- per-tensor weights: byte-identical int8 logits to the native backend (itself equal to pip
  tflite_micro), on real clips of the shared data;
- per-channel weights: different logits (the library's FULLY_CONNECTED applies the first
  channel's multiplier to every channel), which is why `kws generate --backend tflm` refuses
  such a bundle (test_project.py covers the refusal itself).
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kws.boards import load_by_id
from kws.codegen import project, tflm_model
from kws.csource.targets import CORE_FLAGS, CROSS_CC
from kws.errors import KwsError
from kws.evaluation import backends
from kws.evaluation.backends import device_frames
from kws.export.read import Bundle, load_bundle
from tests.bundle_factory import write_bundle

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
COMMIT = tflm_model.TFLM_LIBRARY.rsplit("#", 1)[1]
TARBALL = f"tflite-micro-arduino-examples-{COMMIT[:8]}.tar.xz"
REAL_CLIPS = 240
JOBS = 2  # the machines running the suite are shared: never more compile jobs than this
# What PlatformIO's mbed builder gives every library source (ARDUINO=10810 and ARDUINO_ARCH_MBED
# from builder-framework-arduino-core-mbed; the language, exception, RTTI, char and size flags
# from the variant's cxxflags.txt/cflags.txt). Deliberately not ARDUINO_ARDUINO_NANO33BLE: as on
# nano_rp2040 and portenta_h7 the library then defines no DebugLog, so the wrapper's weak one
# must link. No TF_LITE_STATIC_MEMORY: the Arduino export has its branches already resolved (no
# source tests the macro) and the board build does not define it.
DEFINES = ("-DARDUINO=10810", "-DARDUINO_ARCH_MBED")
COMMON = ("-Os", "-fno-exceptions", "-funsigned-char", "-ffunction-sections", "-fdata-sections",
          *DEFINES)
CXX_FLAGS = ("-std=gnu++14", "-fno-rtti", *COMMON)
C_FLAGS = ("-std=gnu11", *COMMON)
# Our files: the board's warnings without its -Wno-unused-parameter, as errors; the library's
# headers come through -isystem, since their warnings are not ours to fix.
OUR_FLAGS = ("-Wall", "-Wextra", "-Wvla", "-Werror", *project.NUMERIC_FLAGS)
# Interpreter, allocator, flatbuffer parsing and error reporting: what the link of the wrapper
# pulls from the library (read off a link map of the full library), under src/.
CORE_SOURCES = tuple(f"tensorflow/lite/{p}" for p in (
    "c/common.c",
    "core/api/error_reporter.cpp", "core/api/flatbuffer_conversions.cpp",
    "core/api/op_resolver.cpp",
    "kernels/internal/quantization_util.cpp", "kernels/kernel_util.cpp",
    "micro/flatbuffer_utils.cpp", "micro/kernels/kernel_util.cpp", "micro/memory_helpers.cpp",
    "micro/memory_planner/greedy_memory_planner.cpp", "micro/micro_allocator.cpp",
    "micro/micro_context.cpp", "micro/micro_error_reporter.cpp", "micro/micro_graph.cpp",
    "micro/micro_interpreter.cpp", "micro/micro_string.cpp",
    "micro/simple_memory_allocator.cpp", "micro/system_setup.cpp",
    "schema/schema_utils.cpp"))
# The CMSIS-NN functions the FULLY_CONNECTED, ADD and MUL wrappers call.
CMSIS_NN_SOURCES = tuple(f"third_party/cmsis/CMSIS/NN/Source/{p}" for p in (
    "FullyConnectedFunctions/arm_fully_connected_s8.c",
    "NNSupportFunctions/arm_nn_vec_mat_mult_t_s8.c",
    "BasicMathFunctions/arm_elementwise_add_s8.c",
    "BasicMathFunctions/arm_elementwise_mul_s8.c"))
# Serial is the only Arduino API the wrapper uses (its fallback DebugLog); here it is stderr,
# so a library error message shows up in the test's failure.
ARDUINO_STUB = """\
#pragma once
#include <stdio.h>
struct KwsHostSerial {
    void print(const char *s) { fputs(s, stderr); }
};
static KwsHostSerial Serial;
"""
# Reads n clips of t frames (int8) from stdin, steps each from the zero state as the firmware
# does, writes each clip's last logits.
DRIVER = """\
#include <stdio.h>
#include <stdlib.h>

#include <vector>

#include "kws_model.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: driver CLIPS FRAMES < frames > logits\\n", stderr);
        return 2;
    }
    const size_t n = strtoul(argv[1], NULL, 10), t = strtoul(argv[2], NULL, 10);
    std::vector<int8_t> frames(n * t * KWS_MODEL_FRAME_SIZE), logits(n * KWS_MODEL_LABELS);
    if (fread(frames.data(), 1, frames.size(), stdin) != frames.size()) {
        fputs("driver: short input\\n", stderr);
        return 3;
    }
    int8_t state[KWS_MODEL_STATE_SIZE];
    for (size_t i = 0; i < n; i++) {
        kws_model_reset_state(state);
        for (size_t j = 0; j < t; j++) {
            kws_model_step(&frames[(i * t + j) * KWS_MODEL_FRAME_SIZE], state,
                           &logits[i * KWS_MODEL_LABELS]);
        }
    }
    return fwrite(logits.data(), 1, logits.size(), stdout) == logits.size() ? 0 : 4;
}
"""


def vendor_dir() -> Path:
    from tests.vendor_build import vendor_candidate

    return vendor_candidate()


def kernel_sources(src: Path, ops) -> list[str]:
    """The library's files of each builtin op: kernels/<op>.cpp, or kernels/cmsis_nn/<op>.cpp
    where the Arduino export replaced the reference kernel by its CMSIS-NN wrapper, plus the
    shared <op>_common.cpp when there is one."""
    kernels = "tensorflow/lite/micro/kernels"
    found = []
    for op in ops:
        name = op.lower()
        files = [f"{kernels}/{name}.cpp", f"{kernels}/cmsis_nn/{name}.cpp",
                 f"{kernels}/{name}_common.cpp"]
        present = [f for f in files if (src / f).is_file()]
        assert present[:1] and present[0] != files[2], f"{op}: no kernel in {TARBALL}"
        found += present
    return found


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


@dataclass(frozen=True)
class Library:
    src: Path
    archive: Path


@dataclass(frozen=True)
class Bundles:
    per_tensor: Bundle
    per_channel: Bundle


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> Bundles:
    # 8-byte host pointers make the interpreter's structs larger than on the board, so the host
    # needs more arena than the 4 KiB the factory's manifests claim.
    root = tmp_path_factory.mktemp("tflm-bundles")
    return Bundles(*(load_bundle(write_bundle(root / name, per_channel=pc, arena_bytes=16384))
                     for name, pc in (("per_tensor", False), ("per_channel", True))))


@pytest.fixture(scope="session")
def library_src(tmp_path_factory) -> Path:
    """The pinned commit's library unpacked in a session folder (never into the project)."""
    tarball = vendor_dir() / TARBALL
    if not tarball.is_file():
        pytest.skip(f"{tarball}: not found (set KWS_SHARED_VENDOR to the folder holding the "
                    "vendored Arduino TFLM library)")
    if shutil.which("g++") is None or shutil.which("gcc") is None:
        pytest.skip("host gcc/g++ not installed")
    out = tmp_path_factory.mktemp("tflm-library")
    with tarfile.open(tarball) as tar:
        tar.extractall(out, filter="data")
    (src,) = [p / "src" for p in out.iterdir() if (p / "src" / "TensorFlowLite.h").is_file()]
    return src


@pytest.fixture(scope="session")
def library(library_src, bundles, tmp_path_factory) -> Library:
    """The library sources our bundles need as one static archive, compiled once per session
    (about a minute with two jobs; the link keeps only the members the wrapper uses)."""
    ops = sorted(set(bundles.per_tensor.manifest.ops) | set(bundles.per_channel.manifest.ops))
    sources = [*CORE_SOURCES, *CMSIS_NN_SOURCES, *kernel_sources(library_src, ops)]
    objects = tmp_path_factory.mktemp("tflm-objects")

    def compile_one(index_and_rel):
        index, rel = index_and_rel
        flags = C_FLAGS if rel.endswith(".c") else CXX_FLAGS
        cc = "gcc" if rel.endswith(".c") else "g++"
        obj = objects / f"{index:03d}_{Path(rel).stem}.o"
        proc = run([cc, *flags, "-w", "-I", str(library_src), "-c", str(library_src / rel),
                    "-o", str(obj)])
        assert proc.returncode == 0, f"{rel}:\n{proc.stderr[-3000:]}"
        return obj

    with ThreadPoolExecutor(JOBS) as pool:
        built = list(pool.map(compile_one, enumerate(sources)))
    archive = objects / "libtflm.a"
    proc = run(["ar", "rcs", str(archive), *map(str, built)])
    assert proc.returncode == 0, proc.stderr
    return Library(library_src, archive)


def write_model_sources(bundle: Bundle, folder: Path) -> Path:
    """The model files `kws generate --backend tflm` writes (kws_model.h, kws_model_tflm.cpp,
    kws_model_data.h), plus the Arduino stub and the driver, in one folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in tflm_model.sources(bundle, project.bundle_digest(bundle)).items():
        (folder / name).write_text(text)
    (folder / "Arduino.h").write_text(ARDUINO_STUB)
    (folder / "driver.cpp").write_text(DRIVER)
    return folder


def build_driver(library: Library, bundle: Bundle, folder: Path) -> Path:
    folder = write_model_sources(bundle, folder)
    exe = folder / "driver"
    proc = run(["g++", *CXX_FLAGS, *OUR_FLAGS, "-isystem", str(library.src), "-I", str(folder),
                str(folder / "kws_model_tflm.cpp"), str(folder / "driver.cpp"),
                str(library.archive), "-Wl,--gc-sections", "-o", str(exe)])
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
    return exe


def arduino_logits(exe: Path, frames: np.ndarray, labels: int) -> np.ndarray:
    proc = subprocess.run([str(exe), str(frames.shape[0]), str(frames.shape[1])],
                          input=np.ascontiguousarray(frames, np.int8).tobytes(),
                          capture_output=True, check=False, timeout=120)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode(errors="replace")
    return np.frombuffer(proc.stdout, np.int8).reshape(frames.shape[0], labels)


def real_clips(n: int) -> np.ndarray:
    """n 1 s int16 clips spread evenly over the shared Speech Commands folder (every label)."""
    from kws.data.audio import fit_to_length, read_wav, to_int16
    from kws.data.dataset import shared_speech_commands

    root = shared_speech_commands()
    if root is None:
        pytest.skip("../shared/data/speech_commands not present (set KWS_SHARED_DATA): the "
                    f"{n}-clip byte-identity check needs real speech, not synthetic audio")
    paths = sorted(p for p in root.glob("*/*.wav") if not p.parent.name.startswith("_b"))
    if len(paths) < n:
        pytest.skip(f"{root}: {len(paths)} clips, fewer than the {n} this check needs")
    step = len(paths) / n
    chosen = [paths[int(i * step)] for i in range(n)]
    return np.stack([to_int16(fit_to_length(read_wav(p), 16000)) for p in chosen])


def int8_frames(bundle: Bundle, clips: int, seed: int) -> np.ndarray:
    from kws.native.interpret import NativeReference
    from tests.native.native_models import clip_frames

    return clip_frames(NativeReference(bundle.tflite).io, clips, seed)


@pytest.mark.parametrize("target", ["host", "nano33", "nano_rp2040", "portenta_h7"])
def test_generated_wrapper_compiles_warning_free_at_the_pinned_commit(library_src, bundles,
                                                                      tmp_path, target):
    """At f14e2f48 MicroInterpreter takes an ErrorReporter* with no default; the wrapper passes
    one, and nothing in it warns under the board's warnings (unused parameters included), on
    the host and with each real board's CPU and float flags."""
    header = (library_src / "tensorflow/lite/micro/micro_interpreter.h").read_text()
    assert "size_t tensor_arena_size,\n                   ErrorReporter* error_reporter," in header
    cxx, cpu = "g++", ()
    if target != "host":
        board = load_by_id(target)
        cxx = CROSS_CC.replace("gcc", "g++")
        if shutil.which(cxx) is None:
            pytest.skip(f"{cxx} not installed (make setup installs it)")
        cpu = (*CORE_FLAGS[board.core], *project.real_float_flags(board))
    folder = write_model_sources(bundles.per_tensor, tmp_path)
    proc = run([cxx, *cpu, *CXX_FLAGS, *OUR_FLAGS, "-isystem", str(library_src), "-I",
                str(folder), "-c", str(folder / "kws_model_tflm.cpp"),
                "-o", str(tmp_path / "wrapper.o")])
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


@pytest.mark.real_data
def test_per_tensor_logits_equal_native_on_real_clips(library, bundles, tmp_path,
                                                      record_property):
    """What the board would compute for a per-tensor bundle is what `kws eval --backend native`
    (and so the pip interpreter) computes: byte for byte, on real speech."""
    bundle = bundles.per_tensor
    project.check_compatible(bundle, load_by_id("nano33"), "tflm")  # not refused
    exe = build_driver(library, bundle, tmp_path)
    frames = device_frames(bundle, real_clips(REAL_CLIPS))
    expected = backends.get("native", bundle).run_frames(frames)
    got = arduino_logits(exe, frames, len(bundle.manifest.labels))
    record_property("clips", len(frames))
    assert len(np.unique(expected)) > 50  # logits that vary: a meaningful comparison
    assert got.tobytes() == expected.tobytes()


def test_per_tensor_logits_equal_native_on_all_int8_codes(library, bundles, tmp_path):
    """Also without the shared data: frames over all int8 codes (saturating gates) and log-mel
    like ones."""
    bundle = bundles.per_tensor
    exe = build_driver(library, bundle, tmp_path)
    frames = int8_frames(bundle, 64, seed=11)
    expected = backends.get("native", bundle).run_frames(frames)
    assert arduino_logits(exe, frames, len(bundle.manifest.labels)).tobytes() == \
        expected.tobytes()


def test_per_channel_logits_differ_at_the_pinned_commit(library, bundles, tmp_path,
                                                        record_property):
    """The evidence for the refusal: with per-channel FULLY_CONNECTED weights the pinned
    library's logits are not native's (= pip tflite_micro's), on nearly every clip."""
    bundle = bundles.per_channel
    with pytest.raises(KwsError, match="quantized per channel"):
        project.check_compatible(bundle, load_by_id("nano33"), "tflm")
    exe = build_driver(library, bundle, tmp_path)
    frames = int8_frames(bundle, 64, seed=12)
    expected = backends.get("native", bundle).run_frames(frames)
    assert expected.tobytes() == backends.get("tflm", bundle).run_frames(frames).tobytes()
    got = arduino_logits(exe, frames, len(bundle.manifest.labels))
    diff = np.abs(got.astype(np.int16) - expected)
    record_property("max_logit_difference", int(diff.max()))
    assert np.mean(diff.max(axis=1) > 0) > 0.9
    assert diff.max() >= 5
