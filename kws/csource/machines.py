"""The QEMU machine each core runs on in emulation, and the harness sources (vector table,
reset handler, semihosting, SysTick clock, linker script) that let any C `main` run there.
Facts about targets, below every layer that builds for them (boards validate against the
machine table, codegen renders the harness into emulated projects, emulate runs it)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass

from kws.csource.render import render
from kws.csource.targets import core_flags
from kws.errors import KwsError

QEMU = "qemu-system-arm"
STACK_BYTES = 16 * 1024  # the stack of machines with RAM to spare
HARNESS_TEMPLATES = {
    "kws_harness.h": "qemu/kws_harness.h.j2",
    "kws_semihost.c": "qemu/kws_semihost.c.j2",
    "kws_startup.c": "qemu/kws_startup.c.j2",
}
LINKER_TEMPLATE = "qemu/kws_link.ld.j2"


@dataclass(frozen=True)
class Machine:
    """One QEMU board per core. code_bytes/ram_bytes: what the harness's linker script uses of
    the memory QEMU maps at 0x00000000 and 0x20000000 (an547: 512 KB ITCM and DTCM; microbit:
    the nRF51822's 256 KB flash and 16 KB SRAM). stack_bytes: the top of RAM the linker script
    keeps for the stack, below the data and bss."""

    name: str
    cpu: str
    code_bytes: int
    ram_bytes: int
    systick_hz: int  # SysTick on the processor clock; -icount shift=0 runs 1e9 instr/s
    stack_bytes: int = STACK_BYTES

    @property
    def instructions_per_tick(self) -> float:
        return 1e9 / self.systick_hz


MACHINES: dict[str, Machine] = {
    "cortex-m4f": Machine("mps2-an386", "cortex-m4", 4 << 20, 256 << 10, 25_000_000),
    "cortex-m7": Machine("mps2-an500", "cortex-m7", 4 << 20, 256 << 10, 25_000_000),
    "cortex-m55": Machine("mps3-an547", "cortex-m55", 512 << 10, 256 << 10, 32_000_000),
    # The M0+ runs the same ARMv6-M Thumb instructions as the micro:bit's Cortex-M0, so guest
    # instruction counts carry over (cycles do not: 2-stage vs 3-stage pipeline). The nRF51
    # model always builds a cortex-m0 (hw/arm/nrf51_soc.c); -cpu only names it. Its SysTick
    # runs on the SoC's fixed 16 MHz HCLK (no refclk). 16 KB of RAM: a 5 KB stack (the front
    # end's high-water is 4.2 KB at the default FeatureParams; kws.emulate.bench checks it on
    # every run) leaves 11 KB for data and bss (the 50-hop features bench uses 10.6 KB: its
    # 49 frames and the front end's float sample buffer).
    "cortex-m0plus": Machine("microbit", "cortex-m0", 256 << 10, 16 << 10, 16_000_000,
                             stack_bytes=5 << 10),
}


def machine(core: str) -> Machine:
    core_flags(core)  # KwsError for an unknown core
    try:
        return MACHINES[core]
    except KeyError:
        raise KwsError(f"no QEMU machine for core {core!r} (emulated: "
                       f"{', '.join(MACHINES)})") from None


@functools.lru_cache(maxsize=None)
def _qemu_machine_names() -> frozenset[str]:
    """The -M names the installed qemu-system-arm offers (empty when it is not installed)."""
    found = shutil.which(QEMU)
    if not found:
        return frozenset()
    proc = subprocess.run([found, "-M", "help"], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    return frozenset(line.split()[0] for line in proc.stdout.splitlines()[1:] if line.strip())


def machine_available(core: str) -> bool:
    """Whether the installed qemu-system-arm has the core's machine (builds without the
    micro:bit exist)."""
    return machine(core).name in _qemu_machine_names()


def harness_sources(core: str, digest: str = "harness") -> dict[str, str]:
    """{file name: text}: the harness C files and `kws_link.ld` for the core's machine."""
    m = machine(core)
    files = {name: render(tpl, {}, digest) for name, tpl in HARNESS_TEMPLATES.items()}
    files["kws_link.ld"] = render(LINKER_TEMPLATE, {"code_bytes": m.code_bytes,
                                                    "ram_bytes": m.ram_bytes,
                                                    "stack_bytes": m.stack_bytes}, digest)
    return files


def program_source(template: str, digest: str = "harness") -> str:
    """A main program from firmware_templates/qemu/ (e.g. "kws_bench_main.c.j2")."""
    return render(f"qemu/{template}", {}, digest)
