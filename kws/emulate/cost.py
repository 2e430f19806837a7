"""What the firmware costs on a board's chip, from guest-instruction counts in QEMU.

Per part (each measured by itself in the bench program, -icount, deterministic): the feature
front end per frame, the model per step (K steps per frame for K staggered states; one per
frame for a continuous bundle), the recognizer per decision (every clip_frames/K frames, or
every streaming.decision_frames frames); scaled to one second of audio. The whole firmware is also run on a WAV
and its own total (ring buffer and app glue included) and stack high-water mark are read back.
Energy is an estimate from the board file's active current per MHz and supply voltage, under a
stated assumption of cycles per instruction.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from kws.errors import KwsError

# Cycles per instruction assumed for energy and load: ~1 on a Cortex-M4/M7 running from
# zero-wait-state memory; flash wait states and FPU/DSP stalls make it higher on real parts.
CYCLES_PER_INSTRUCTION = 1.0


def measure_parts(bundle, core: str, float_flags: tuple[str, ...] = ()) -> tuple[dict, dict, dict]:
    """(features_cost, model_cost, recognizer_cost) of the bundle on `core`, compiled with
    `float_flags` after the core's (a real board's float ABI)."""
    from kws.emulate.bench import features_cost, model_cost, recognizer_cost

    m = bundle.manifest
    return (features_cost(core, m.features, float_flags=float_flags),
            model_cost(bundle.tflite, core, float_flags=float_flags),
            recognizer_cost(m, core, float_flags=float_flags))


def part_costs(bundle, core: str, float_flags: tuple[str, ...] = (),
               measured: tuple[dict, dict, dict] | None = None) -> dict:
    """Guest instructions per second of audio for features, model and recognizer on `core`
    (from `measured`, the output of measure_parts, when the caller already has it)."""
    from kws.recognize.stream import Schedule

    m = bundle.manifest
    frames_per_s = 1000.0 / m.features.hop_ms
    sched = Schedule.from_manifest(m)
    k = sched.states  # model steps per frame: K staggered states, or the one continuous state
    decisions_per_s = 1000.0 / sched.decision_period_ms
    feat, model, recog = measured or measure_parts(bundle, core, float_flags)
    parts = {
        "features": feat["instructions_per_frame"] * frames_per_s,
        "model": model["instructions_per_step"] * k * frames_per_s,
        "recognizer": recog["instructions_per_decision"] * decisions_per_s,
    }
    return {"core": core, "states": k, "frames_per_second": frames_per_s,
            "decisions_per_second": round(decisions_per_s, 3),
            "instructions_per_frame": feat["instructions_per_frame"],
            "instructions_per_step": model["instructions_per_step"],
            "instructions_per_mac": model["instructions_per_mac"],
            "instructions_per_decision": recog["instructions_per_decision"],
            "model_text_bytes": model["text"], "model_bss_bytes": model["bss"],
            "per_second": {k2: round(v) for k2, v in parts.items()},
            "per_second_total": round(sum(parts.values()))}


def elf_sizes(elf: Path) -> dict:
    from kws.emulate.qemu import CROSS_SIZE, tool

    proc = subprocess.run([tool(CROSS_SIZE), str(elf)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise KwsError(f"{CROSS_SIZE} {elf}: {proc.stderr.strip()[:200]}")
    text, data, bss = (int(v) for v in proc.stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def energy(board, instructions_per_second: float, instructions_per_step: float,
           frames_per_second: float) -> dict:
    """Active energy from the board's power figures: a core busy at f MHz draws
    (uA/MHz) x f microamps, so one cycle costs (uA/MHz) x 1e-6 x V microjoules."""
    uj_per_cycle = board.power.active_ua_per_mhz * 1e-6 * board.power.supply_v
    cycles_per_second = instructions_per_second * CYCLES_PER_INSTRUCTION
    return {"cycles_per_instruction": CYCLES_PER_INSTRUCTION,
            "load_fraction": round(cycles_per_second / board.clock_hz, 4),
            "mj_per_second_of_audio": round(cycles_per_second * uj_per_cycle / 1e3, 4),
            "uj_per_frame": round(cycles_per_second / frames_per_second * uj_per_cycle, 3),
            "uj_per_model_step": round(instructions_per_step * CYCLES_PER_INSTRUCTION
                                       * uj_per_cycle, 3)}


def firmware_run(model_dir: Path, board_id: str, wav: Path) -> dict:
    """Run the emulated board's firmware on `wav`: totals, stack, sizes, emulation speed."""
    from kws.emulate import firmware

    fw = firmware.build(Path(model_dir), board_id)
    start = time.perf_counter()
    (result,) = firmware.run(fw, [wav])
    wall = time.perf_counter() - start
    c = result.counters
    seconds = c["samples"] / fw.sample_rate_hz
    return {"board": board_id, "wav": str(wav), "audio_seconds": round(seconds, 3),
            "instructions_per_second": round(c["instructions"] / seconds),
            "stack_bytes": c.get("stack"), "overruns": c["overruns"],
            "detections": len(result.detections),
            "emulation_x_real_time": round(seconds / wall, 1),
            "elf": elf_sizes(fw.elf)}


def board_cost(model_dir: Path, board_id: str, wav: Path | None) -> dict:
    """Everything about one board: parts per second, energy, and (emulated boards, with a WAV)
    the measured firmware run. Real boards use the QEMU machine of their core, with the float
    flags their real build uses (softfp on the Arduino mbed M4F/M7)."""
    from kws.codegen.project import real_float_flags, resolve_board
    from kws.csource.machines import MACHINES
    from kws.export.read import load_bundle

    bundle = load_bundle(Path(model_dir))
    board = resolve_board(board_id)
    if board.core not in MACHINES:
        return {"board": board.id, "core": board.core,
                "skipped": f"no QEMU machine emulates {board.core}"}
    float_flags = real_float_flags(board)
    parts = part_costs(bundle, board.core, float_flags)
    out = {"board": board.id, "core": board.core, "clock_hz": board.clock_hz,
           "float_flags": " ".join(float_flags) or None, **parts,
           "energy": energy(board, parts["per_second_total"], parts["instructions_per_step"],
                            parts["frames_per_second"])}
    if board.is_emulated and wav is not None:
        out["firmware"] = firmware_run(Path(model_dir), board.id, wav)
    return out


# The reference configuration's hop: one GRU-64 step and one decision per 20 ms frame.
REFERENCE_HOP_MS = 20.0


def core_report(core: str, bundle=None, reference_tflite: bytes | None = None) -> dict:
    """One core's costs, all guest instructions, each part measured once: the front end per
    frame; the bundle's model per step and per MAC (DSP kernels and, on DSP cores, the portable
    ones for comparison) and its whole firmware per second of audio by part; the reference
    GRU-64 step (kws.emulate.reference_model) per step and per MAC, against TFLM + CMSIS-NN's
    step on the M4, and what a GRU-64 / 20 ms firmware would cost per second with this front end
    and recognizer."""
    from kws.csource.targets import has_dsp
    from kws.emulate.bench import features_cost, model_cost
    from kws.emulate.reference_model import TFLM_CMSIS_NN_GRU64_STEP
    from kws.features.params import FeatureParams

    out: dict = {"core": core, "dsp": has_dsp(core)}
    recog_per_decision = 0.0
    if bundle is not None:
        measured = measure_parts(bundle, core)
        parts = part_costs(bundle, core, measured=measured)
        out["features"], out["model"], recog = measured
        recog_per_decision = recog["instructions_per_decision"]
        if has_dsp(core):
            out["model_portable"] = model_cost(bundle.tflite, core, portable=True)
        out["firmware_per_second"] = parts["per_second"]
        out["firmware_per_second_total"] = parts["per_second_total"]
    else:
        out["features"] = features_cost(core, FeatureParams())
    if reference_tflite is not None:
        ref = model_cost(reference_tflite, core)
        per_s = 1000.0 / REFERENCE_HOP_MS * (out["features"]["instructions_per_frame"]
                                              + ref["instructions_per_step"] + recog_per_decision)
        out["reference_gru64"] = {
            "instructions_per_step": ref["instructions_per_step"],
            "instructions_per_mac": ref["instructions_per_mac"],
            "macs_per_step": ref["macs_per_step"],
            "firmware_per_second_20ms": round(per_s),
            "tflm_cmsis_nn_m4_step": TFLM_CMSIS_NN_GRU64_STEP,
            "tflm_over_native": round(TFLM_CMSIS_NN_GRU64_STEP / ref["instructions_per_step"],
                                      2)}
    return out
