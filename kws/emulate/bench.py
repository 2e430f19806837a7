"""Guest-instruction costs of the generated model step and feature front end, measured in
qemu-system-arm -icount shift=0 (firmware_templates/qemu/kws_bench_main.c.j2).

The program also hashes its outputs (FNV-1a 32 of the int8 logits of every step, of the
float32 bytes of every feature frame); `host_model_checksum` / `host_features_checksum` compute
the same hashes from the host builds (kws.native.host.NativeModel, kws.features.native.CFeatures)
on the same xorshift32 inputs, so equal hashes prove device C == host C bit for bit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.emulate import qemu
from kws.errors import KwsError
from kws.features import ctables
from kws.features.params import FeatureParams

SEED = 0x12345678
STEPS = 100
HOPS = 50
MODEL_OBJECTS = ("kws_model.o", "kws_kernels.o")
FEATURE_OBJECTS = ("kws_features.o",)
# Machines with at most this much RAM (microbit: 16 KB) cannot hold the bench's audio (50 hops
# of int16 are 32 KB): the program then draws each hop inside the timed loops (same instructions
# in the empty and the measured loop) and reports its stack high-water mark, which run_bench
# checks against the machine's stack. Other machines keep their program as it was.
SMALL_RAM_BYTES = 64 << 10
SMALL_RAM_FLAGS = ("-DKWS_BENCH_AUDIO_PER_HOP", "-DKWS_BENCH_STACK_USED")


@dataclass(frozen=True)
class BenchRun:
    """One run of the bench program: its JSON line and instructions per SysTick tick."""

    report: dict
    instructions_per_tick: float
    elf: str

    def instructions(self, part: str) -> float:
        """Instructions of the part's timed loop minus the same loop with an empty call."""
        p = self.report[part]
        return (p["ticks"] - p["empty_ticks"]) * self.instructions_per_tick


def xorshift32(n: int, seed: int = SEED) -> np.ndarray:
    """n successive xorshift32 (13/17/5) outputs, as the C bench program draws them."""
    x = seed
    out = np.empty(n, np.uint32)
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x
    return out


def bench_frames(steps: int, frame_size: int) -> np.ndarray:
    """[steps, frame_size] int8 frames: (r >> 24) - 128 per draw."""
    r = xorshift32(steps * frame_size)
    return ((r >> 24).astype(np.int32) - 128).astype(np.int8).reshape(steps, frame_size)


def bench_audio(hops: int, hop_samples: int) -> np.ndarray:
    """[hops * hop_samples] int16 audio: (r >> 20) - 2048 per draw (12-bit noise)."""
    r = xorshift32(hops * hop_samples)
    return ((r >> 20).astype(np.int32) - 2048).astype(np.int16)


def fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def host_model_checksum(tflite_bytes: bytes, steps: int = STEPS) -> int:
    """FNV-1a of the int8 logits of `steps` host NativeModel steps from the zero state."""
    from kws.native.host import NativeModel

    model = NativeModel(tflite_bytes)
    state = model.reset_state()
    logits = []
    for frame in bench_frames(steps, model.frame_size):
        state, out = model.step(frame, state)
        logits.append(np.asarray(out, np.int8))
    return fnv1a(np.concatenate(logits).tobytes())


def host_features_checksum(params: FeatureParams | None = None, hops: int = HOPS) -> int:
    """FNV-1a of the float32 frames the host C front end computes from the bench audio."""
    from kws.features.native import CFeatures

    params = params or FeatureParams()
    frames = CFeatures(params).log_mel(bench_audio(hops, params.hop_samples))
    return fnv1a(np.ascontiguousarray(frames, np.float32).tobytes())


def run_bench(core: str, model: bytes | None = None, features: FeatureParams | None = None,
              steps: int = STEPS, hops: int = HOPS, timeout: float = 120.0,
              extra_flags: tuple[str, ...] = (), manifest=None) -> BenchRun:
    """Build and run the bench program for `core` with the model, the front end and/or the
    recognizer of `manifest`."""
    from kws.native import cgen

    if model is None and features is None and manifest is None:
        raise KwsError("run_bench needs a model, feature parameters, a manifest or some of them")
    digest = hashlib.sha256(bytes(model or b"") + repr(features).encode()
                            + repr(manifest).encode()).hexdigest()
    sources = {"kws_bench_main.c": qemu.program_source("kws_bench_main.c.j2", digest)}
    machine = qemu.machine(core)
    flags = list(extra_flags)
    if machine.ram_bytes <= SMALL_RAM_BYTES:
        flags += SMALL_RAM_FLAGS
    if model is not None:
        sources.update(cgen.sources(model))
        flags += ["-DKWS_BENCH_MODEL", f"-DKWS_BENCH_STEPS={int(steps)}"]
    if features is not None:
        sources.update(ctables.sources(features))
        flags += ["-DKWS_BENCH_FEATURES", f"-DKWS_BENCH_HOPS={int(hops)}"]
    if manifest is not None:
        from kws.recognize.csources import recognizer_sources
        from kws.recognize.recognizer import RecognizerConfig

        sources.update(recognizer_sources(RecognizerConfig.from_manifest(manifest), digest))
        flags += ["-DKWS_BENCH_RECOGNIZER"]
    elf = qemu.build_elf(sources, core, "bench", flags)
    result = qemu.run_elf(elf, core, timeout)
    if result.status != 0:
        raise KwsError(f"bench program on {core} exited with status {result.status}: "
                       f"{(result.stdout + result.stderr).strip()[-200:]}")
    line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    try:
        report = json.loads(line)
    except json.JSONDecodeError:
        raise KwsError(f"bench program on {core} printed no JSON line: {line[:200]!r}") from None
    ipt = machine.instructions_per_tick
    measured = report["instructions_per_tick_q10"] / 1024
    if abs(measured - ipt) > 0.001 * ipt:
        raise KwsError(f"{core}: SysTick runs at {measured:.3f} instructions per tick, expected "
                       f"{ipt:g} (is -icount shift=0 in effect?)")
    # the paint starts at the stack's limit: a high-water mark there means it overflowed
    if report.get("stack_used", 0) >= machine.stack_bytes:
        raise KwsError(f"bench program on {core} used all {machine.stack_bytes} stack bytes of "
                       f"{machine.name} (data and bss may be corrupt)")
    return BenchRun(report, ipt, str(elf))


def macs_per_step(tflite_bytes: bytes) -> int:
    """Multiply-accumulates of one step: batches * accum_depth * output_depth of every FC."""
    from kws.native import ops
    from kws.native.interpret import NativeReference

    ref = NativeReference(tflite_bytes, poison=False)
    return sum(p.batches * p.accum_depth * p.output_depth for p in ref.params
               if isinstance(p, ops.FullyConnectedParams))


PORTABLE_FLAGS = ("-DKWS_PORTABLE_KERNELS",)


def model_cost(tflite_bytes: bytes, core: str, steps: int = STEPS, portable: bool = False,
               float_flags: tuple[str, ...] = ()) -> dict:
    """{"instructions_per_step", "instructions_per_mac", "macs_per_step", "checksum",
    "text", "data", "bss"}: guest instructions of kws_model_step (mean over `steps` steps)
    and the summed sizes of kws_model.o + kws_kernels.o. `portable` builds without the DSP
    dot products, for comparison. float_flags: a real board's float ABI (see
    project.real_build_flags), appended after the core's."""
    run = run_bench(core, model=tflite_bytes, steps=steps,
                    extra_flags=(*float_flags, *(PORTABLE_FLAGS if portable else ())))
    per_step = run.instructions("model") / steps
    macs = macs_per_step(tflite_bytes)
    return {"core": core, "machine": qemu.machine(core).name,
            "instructions_per_step": round(per_step, 1),
            "instructions_per_mac": round(per_step / macs, 3) if macs else None,
            "macs_per_step": macs, "checksum": run.report["model"]["checksum"],
            **qemu.object_sizes(Path(run.elf), MODEL_OBJECTS)}


def recognizer_cost(manifest, core: str, float_flags: tuple[str, ...] = ()) -> dict:
    """{"instructions_per_decision", "text", "data", "bss"}: kws_recognizer_push per decision
    (random logits, so the softmax table and the window sums run every time)."""
    run = run_bench(core, manifest=manifest, extra_flags=float_flags)
    r = run.report["recognizer"]
    return {"core": core, "instructions_per_decision":
            round(run.instructions("recognizer") / r["decisions"], 1),
            **qemu.object_sizes(Path(run.elf), ("kws_recognizer.o",))}


def features_cost(core: str, params: FeatureParams | None = None, hops: int = HOPS,
                  float_flags: tuple[str, ...] = ()) -> dict:
    """{"instructions_per_frame", "instructions_per_hop", "frames", "checksum", "text", "data",
    "bss"}: guest instructions of kws_features_push_hop per completed frame."""
    run = run_bench(core, features=params or FeatureParams(), hops=hops, extra_flags=float_flags)
    total = run.instructions("features")
    frames = run.report["features"]["frames"]
    if frames == 0:
        raise KwsError(f"{hops} hops completed no feature frame")
    return {"core": core, "machine": qemu.machine(core).name,
            "instructions_per_frame": round(total / frames, 1),
            "instructions_per_hop": round(total / hops, 1), "frames": frames,
            "checksum": run.report["features"]["checksum"],
            **qemu.object_sizes(Path(run.elf), FEATURE_OBJECTS)}
