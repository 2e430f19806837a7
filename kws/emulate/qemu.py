"""Build bare-metal ELFs with arm-none-eabi-gcc and run them in qemu-system-arm.

The harness (firmware_templates/qemu/) brings its own vector table, reset handler, linker
script, semihosting console / host-file / exit calls and a SysTick instruction clock, so any
C program with a `main` runs unchanged on each machine in MACHINES. `-icount shift=0` makes
every guest instruction advance the virtual clock by exactly 1 ns, so SysTick counts are
deterministic instruction counts (scaled by the clock; the harness measures the scale).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kws.codegen.host_build import NUMERICS, WARNINGS, cache_dir
from kws.codegen.render import render
from kws.codegen.targets import CROSS_CC, core_flags
from kws.errors import KwsError

QEMU = "qemu-system-arm"
CROSS_SIZE = "arm-none-eabi-size"
CROSS_FLAGS = ("-std=c99", "-O2", *WARNINGS, *NUMERICS, "-ffunction-sections",
               "-fdata-sections")
LINK_FLAGS = ("-nostartfiles", "-specs=nano.specs", "-specs=nosys.specs", "-Wl,--gc-sections")
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


@dataclass(frozen=True)
class QemuResult:
    stdout: str
    stderr: str
    status: int


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


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise KwsError(f"{name} not found; run `make setup` (installs gcc-arm-none-eabi, "
                       "libnewlib-arm-none-eabi and qemu-system-arm with apt-get)")
    return found


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


def _emulate_dir() -> Path:
    path = cache_dir().parent / "qemu"
    path.mkdir(parents=True, exist_ok=True)
    return path


FLOAT_ABI_PREFIXES = ("-mfloat-abi=", "-mfpu=")


def link_core_flags(core: str, extra_flags: Sequence[str]) -> list[str]:
    """The core's flags for the link, with a float ABI given in extra_flags in place of the
    core's own: gcc picks the C library's multilib from these, and given two -mfloat-abi
    options it falls back to the default (ARM-mode) library, which a Cortex-M cannot run."""
    override = [f for f in extra_flags if f.startswith(FLOAT_ABI_PREFIXES)]
    if not override:
        return list(core_flags(core))
    return [f for f in core_flags(core) if not f.startswith(FLOAT_ABI_PREFIXES)] + override


def build_elf(sources: Mapping[str, str], core: str, name: str = "app",
              extra_flags: Sequence[str] = ()) -> Path:
    """Compile {file name: text} plus the harness for `core` into <cache>/qemu/<name>-<hash>/
    and return the ELF path. Objects stay next to it (object_sizes reads them). Identical
    inputs reuse the cached build."""
    cc = tool(CROSS_CC)
    files = {**harness_sources(core), **sources}
    flags = [*core_flags(core), *CROSS_FLAGS, *extra_flags]
    h = hashlib.sha256(cc.encode() + repr(flags).encode() + repr(LINK_FLAGS).encode()
                       + repr(link_core_flags(core, extra_flags)).encode())
    for fname in sorted(files):
        h.update(fname.encode() + b"\0" + files[fname].encode() + b"\0")
    out_dir = _emulate_dir() / f"{name}-{core}-{h.hexdigest()[:16]}"
    elf = out_dir / f"{name}.elf"
    if elf.is_file():
        return elf
    with tempfile.TemporaryDirectory(prefix=f"kws-{name}-", dir=_emulate_dir()) as tmp:
        for fname, text in files.items():
            Path(tmp, fname).write_text(text)
        objects = []
        for c in sorted(f for f in files if f.endswith(".c")):
            obj = c[:-2] + ".o"
            _run([cc, *flags, "-c", c, "-o", obj], tmp, f"{c} for {core}")
            objects.append(obj)
        _run([cc, *link_core_flags(core, extra_flags), *LINK_FLAGS, "-T", "kws_link.ld",
              "-o", elf.name,
              *objects, "-Wl,-Map," + name + ".map"], tmp, f"link of {name} for {core}")
        try:
            os.replace(tmp, out_dir)
        except OSError:  # a concurrent build of the same inputs won
            if not elf.is_file():
                raise
        else:
            os.mkdir(tmp)  # TemporaryDirectory removes it again
    return elf


def _run(cmd: list[str], cwd: str, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.splitlines()
        first = next((ln for ln in lines if "error" in ln), proc.stderr[:300])
        raise KwsError(f"cross build failed ({what}): {first.strip()}")


def object_sizes(elf: Path, objects: Sequence[str]) -> dict[str, int]:
    """Summed text/data/bss of the named object files of a build_elf build (Berkeley format of
    arm-none-eabi-size, before --gc-sections)."""
    paths = [str(elf.parent / o) for o in objects]
    proc = subprocess.run([tool(CROSS_SIZE), *paths], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise KwsError(f"{CROSS_SIZE} failed: {proc.stderr.strip()[:200]}")
    total = {"text": 0, "data": 0, "bss": 0}
    for line in proc.stdout.splitlines()[1:]:
        text, data, bss = (int(v) for v in line.split()[:3])
        total["text"] += text
        total["data"] += data
        total["bss"] += bss
    return total


def semihosting_config(elf: Path, args: Sequence[str]) -> str:
    """-semihosting-config value whose command line (SYS_GET_CMDLINE) is `<elf name> args...`;
    QEMU's option syntax doubles literal commas."""
    parts = ["enable=on", "target=native"]
    if args:
        parts += [f"arg={a.replace(',', ',,')}" for a in (elf.name, *args)]
    return ",".join(parts)


def run_elf(elf: Path, core: str, timeout: float = 60.0, cwd: Path | None = None,
            args: Sequence[str] = ()) -> QemuResult:
    """Run the ELF on the core's machine with -icount shift=0; stdout is the semihosting
    console, status the program's exit status (main's return or kws_exit). Host files the
    program opens are relative to `cwd`; `args` become its semihosting command line."""
    m = machine(core)
    exe = tool(QEMU)
    if not machine_available(core):
        raise KwsError(f"{exe} has no machine {m.name!r} for {core} (see `{QEMU} -M help`)")
    cmd = [exe, "-M", m.name, "-cpu", m.cpu, "-nographic", "-monitor", "none",
           "-serial", "none", "-semihosting-config", semihosting_config(elf, args),
           "-icount", "shift=0", "-kernel", str(elf)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False,
                              cwd=str(cwd) if cwd else None, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise KwsError(f"{elf.name} on {m.name} ({core}) did not exit within {timeout:g} s") \
            from None
    return QemuResult(proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"),
                      proc.returncode)


def run_sources(sources: Mapping[str, str], core: str, name: str = "app",
                extra_flags: Sequence[str] = (), timeout: float = 60.0) -> QemuResult:
    """build_elf + run_elf."""
    return run_elf(build_elf(sources, core, name, extra_flags), core, timeout)
