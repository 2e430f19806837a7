"""The local kws-qemu PlatformIO platform, offline: `kws.pio.setup` makes tool-scons and the
symlinked tool chain, `pio run` builds a hand-written project with Debian's arm-none-eabi-gcc,
and `pio run -t upload` runs it in qemu-system-arm with the WAV path as the semihosting command
line, streaming the guest console and failing with the guest's non-zero exit status."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kws.csource.targets import CORE_FLAGS
from kws.emulate import qemu
from kws.errors import KwsError
from kws.pio import run as pio
from kws.pio import setup as pio_setup

TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
BOARDS = {"qemu_m4": "cortex-m4f", "qemu_m7": "cortex-m7", "qemu_m55": "cortex-m55"}
BUILD_S = 60.0  # hard limit per pio call; offline retries of the registry would take ~60 s

# Prints "hello", its semihosting command line (SYS_GET_CMDLINE, 0x15, called here directly so
# the test does not depend on the harness's helper) and returns HELLO_STATUS; HELLO_HANG spins.
MAIN_C = r"""
#include <stdint.h>
#include "kws_harness.h"
#include "hello_config.h"

static char cmdline[512];

static int32_t get_cmdline(char *buffer, uint32_t capacity, uint32_t *len)
{
    uint32_t block[2];
    register uint32_t r0 __asm__("r0") = 0x15u;
    register const void *r1 __asm__("r1") = block;
    block[0] = (uint32_t)(uintptr_t)buffer;
    block[1] = capacity;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    *len = block[1];
    return (int32_t)r0;
}

int main(void)
{
    uint32_t len = 0u;
    kws_print("hello\n");
    if (get_cmdline(cmdline, sizeof cmdline, &len) == 0 && len < sizeof cmdline) {
        cmdline[len] = '\0';
        kws_print("cmdline: ");
        kws_print(cmdline);
        kws_print("\n");
    } else {
        kws_print("cmdline: none\n");
    }
#if defined(HELLO_HANG)
    for (;;) {
    }
#endif
    return HELLO_STATUS;
}
"""


@pytest.fixture(scope="module")
def prepared():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (`make setup` installs "
                    "gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm)")
    lines: list[str] = []
    try:
        return pio_setup.setup(log=lines.append)
    except KwsError as exc:
        pytest.skip(f"PlatformIO setup impossible here: {exc}")


def make_project(root: Path, board: str, ld_in_src: bool = False, extra: str = "") -> Path:
    """A minimal project: the harness + MAIN_C in src/, hello_config.h in include/, and two
    environments on `board`: <board> returns 3, <board>_ok returns 0 (<board>_hang spins)."""
    core = BOARDS[board]
    (root / "src").mkdir(parents=True)
    (root / "include").mkdir()
    for name, text in qemu.harness_sources(core).items():
        folder = root if name.endswith(".ld") and not ld_in_src else root / "src"
        (folder / name).write_text(text)
    (root / "src" / "main.c").write_text(MAIN_C)
    (root / "include" / "hello_config.h").write_text(
        "#ifndef HELLO_STATUS\n#define HELLO_STATUS 3\n#endif\n")
    common = (f"platform = symlink://{pio_setup.platform_dir()}\nboard = {board}\n"
              f"board_build.ldscript = kws_link.ld\n{extra}")
    (root / "platformio.ini").write_text(
        f"[env:{board}]\n{common}\n"
        f"[env:{board}_ok]\n{common}build_flags = -DHELLO_STATUS=0\n\n"
        f"[env:{board}_hang]\n{common}build_flags = -DHELLO_HANG\n")
    return root


def pio_run(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return pio.run(project, ["run", *args], timeout=BUILD_S, env=env)


@pytest.fixture(scope="module")
def m4_project(prepared, tmp_path_factory):
    """qemu_m4 project, built once (linker script at the project root)."""
    project = make_project(tmp_path_factory.mktemp("pio") / "m4", "qemu_m4")
    t0 = time.monotonic()
    proc = pio_run(project, "-e", "qemu_m4", "-v")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return project, proc, elapsed


# --- tables ----------------------------------------------------------------------------------

@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_manifest_matches_kws_tables(board):
    """The board JSON repeats kws' own tables: core flags, QEMU machine/cpu, memory, clock."""
    path = pio_setup.platform_dir() / "boards" / f"{board}.json"
    data = json.loads(path.read_text())
    core = BOARDS[board]
    machine = qemu.MACHINES[core]
    assert data["build"]["kws_core"] == core
    assert tuple(data["build"]["core_flags"]) == CORE_FLAGS[core]
    assert data["qemu"] == {"machine": machine.name, "cpu": machine.cpu}
    assert data["upload"]["maximum_size"] == machine.code_bytes
    assert data["upload"]["maximum_ram_size"] == machine.ram_bytes
    assert data["build"]["f_cpu"] == f"{machine.systick_hz}L"
    assert data["build"]["cpu"] == machine.cpu


def test_platform_finds_the_toolchain_where_setup_puts_it(tmp_path, monkeypatch):
    """platform.py cannot import kws (any pio may load it) and repeats the cache-folder rule."""
    pytest.importorskip("platformio")
    spec = importlib.util.spec_from_file_location(
        "kws_qemu_platform", pio_setup.platform_dir() / "platform.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for variables in ({"KWS_CACHE_DIR": str(tmp_path / "a")},
                      {"KWS_CACHE_DIR": "", "XDG_CACHE_HOME": str(tmp_path / "xdg")}):
        for key, value in variables.items():
            monkeypatch.setenv(key, value)
        assert Path(module.kws_toolchain_dir()) == pio_setup.toolchain_dir()


def test_scons_version_mapping():
    version = pio_setup.scons_version()
    major, code, _ = version.package.split(".")
    assert version.requirement.lstrip("~^=<> ").startswith(f"{major}.{code}")
    assert version.scons == f"{int(code) // 10000}.{int(code) // 100 % 100}.{int(code) % 100}"


def test_guest_status_parsing():
    assert pio.guest_status("x\nkws-qemu: firmware exited with status 3\n*** Error 3") == 3
    assert pio.guest_status("kws-qemu: firmware exited with status 0\n") == 0
    assert pio.guest_status("Error: kws-qemu: the firmware did not exit within 1 s") is None


# --- setup -----------------------------------------------------------------------------------

def test_setup_is_idempotent_and_fast(prepared):
    assert (prepared["toolchain"] / "bin" / "arm-none-eabi-gcc").is_symlink()
    assert (prepared["tool-scons"] / "scons.py").is_file()
    meta = json.loads((prepared["tool-scons"] / ".piopm").read_text())
    assert meta["spec"]["owner"] == "platformio" and meta["name"] == "tool-scons"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "kws.pio.setup"], capture_output=True,
                          text=True, timeout=60, check=False)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and all("already present" in ln for ln in lines), lines
    assert elapsed < 2.0


# --- build and run ---------------------------------------------------------------------------

def test_build_offline_with_kws_flags(m4_project):
    project, proc, elapsed = m4_project
    assert elapsed < 30, f"pio run took {elapsed:.1f} s (registry retries?)"
    out = proc.stdout + proc.stderr
    elf = project / ".pio" / "build" / "qemu_m4" / "firmware.elf"
    assert elf.is_file()
    compile_line = next(ln for ln in out.splitlines() if ln.startswith("arm-none-eabi-gcc")
                        and " -c " in ln and ln.rstrip().endswith("main.c"))
    for flag in (*CORE_FLAGS["cortex-m4f"], *qemu.CROSS_FLAGS, "-Iinclude"):
        assert f" {flag} " in f" {compile_line} ", flag
    link_line = next(ln for ln in out.splitlines() if "firmware.elf" in ln and " -T " in ln)
    assert f"-T {project / 'kws_link.ld'}" in link_line
    for flag in qemu.LINK_FLAGS:
        assert flag in link_line
    assert "text\t" in out and "filename" in out  # arm-none-eabi-size table
    assert "RAM:" in out and "Flash:" in out  # checkprogsize against the board's maxima
    assert "registry" not in out.lower()


def test_upload_streams_console_and_fails_with_guest_status(m4_project, tmp_path):
    project = m4_project[0]
    wav = tmp_path / "clip, one.wav"  # a comma must survive QEMU's option parsing
    wav.write_bytes(b"RIFF")
    proc = pio_run(project, "-e", "qemu_m4", "-t", "upload", KWS_WAV=str(wav))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # pio's failure status; the guest's is in the output
    assert "hello\n" in proc.stdout
    assert f"cmdline: firmware.elf {wav}\n" in proc.stdout
    assert "-icount shift=0" in proc.stdout
    assert pio.guest_status(out) == 3
    assert "*** [upload] Error 3" in out


def test_upload_succeeds_when_guest_returns_zero(m4_project, tmp_path):
    project = m4_project[0]
    wav = tmp_path / "clip.wav"
    wav.write_bytes(b"RIFF")
    proc = pio_run(project, "-e", "qemu_m4_ok", "-t", "upload", KWS_WAV=str(wav))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"cmdline: firmware.elf {wav}\n" in proc.stdout
    assert pio.guest_status(proc.stdout) == 0


def test_upload_needs_a_wav(m4_project, tmp_path):
    project = m4_project[0]
    proc = pio_run(project, "-e", "qemu_m4_ok", "-t", "upload", KWS_WAV="")
    assert proc.returncode != 0
    assert "no WAV file for the emulated board" in proc.stderr
    proc = pio_run(project, "-e", "qemu_m4_ok", "-t", "upload", KWS_WAV="relative.wav")
    assert "must be an absolute path" in proc.stderr
    proc = pio_run(project, "-e", "qemu_m4_ok", "-t", "upload",
                   KWS_WAV=str(tmp_path / "missing.wav"))
    assert "WAV file not found" in proc.stderr


def test_upload_kills_a_hung_guest(m4_project, tmp_path):
    project = m4_project[0]
    wav = tmp_path / "clip.wav"
    wav.write_bytes(b"RIFF")
    t0 = time.monotonic()
    proc = pio_run(project, "-e", "qemu_m4_hang", "-t", "upload", KWS_WAV=str(wav),
                   KWS_QEMU_TIMEOUT="1")
    assert time.monotonic() - t0 < 30
    assert proc.returncode != 0
    assert "hello\n" in proc.stdout  # printed before the hang, streamed
    assert "did not exit within 1 s" in proc.stderr
    assert pio.guest_status(proc.stdout + proc.stderr) is None


@pytest.mark.parametrize("board", ["qemu_m7", "qemu_m55"])
def test_other_boards_build_and_run(prepared, tmp_path, board):
    """Linker script in src/ this time, WAV from the project option custom_wav; qemu_m7 names
    the tool chain explicitly with platform_packages (platform.py's default otherwise)."""
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "clip.wav").write_bytes(b"RIFF")
    extra = "custom_wav = clip.wav\n"
    if board == "qemu_m7":
        extra += f"platform_packages = {pio_setup.TOOLCHAIN}@symlink://{prepared['toolchain']}\n"
    project = make_project(tmp_path / "p", board, ld_in_src=True, extra=extra)
    proc = pio_run(project, "-e", f"{board}_ok", "-t", "upload", KWS_WAV="")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    machine = qemu.MACHINES[BOARDS[board]]
    assert f"-M {machine.name} -cpu {machine.cpu} " in proc.stdout
    assert f"cmdline: firmware.elf {project / 'clip.wav'}\n" in proc.stdout


def test_missing_toolchain_is_reported(m4_project, tmp_path):
    proc = pio_run(m4_project[0], "-e", "qemu_m4_ok", KWS_CACHE_DIR=str(tmp_path / "empty"))
    assert proc.returncode != 0
    assert "python -m kws.pio.setup" in proc.stdout + proc.stderr


# --- project validation and stock platforms --------------------------------------------------

def test_validate_config_of_kws_and_stock_projects(m4_project, tmp_path):
    config = pio.validate_config(m4_project[0])
    assert config["env:qemu_m4"]["board"] == "qemu_m4"
    stock = tmp_path / "nano33"
    stock.mkdir()
    (stock / "platformio.ini").write_text(
        "[env:nano33]\nplatform = nordicnrf52@10.5.0\nboard = nano33ble\n"
        "framework = arduino\nmonitor_speed = 115200\n")
    t0 = time.monotonic()
    config = pio.validate_config(stock)
    assert time.monotonic() - t0 < 20
    assert config["env:nano33"]["platform"] == "nordicnrf52@10.5.0"
    assert config["env:nano33"]["framework"] == ["arduino"]
    (stock / "platformio.ini").write_text("[env:nano33]\nplatform\n")
    with pytest.raises(KwsError, match="platformio.ini"):
        pio.validate_config(stock)


def test_platform_installed_is_offline_and_fast():
    t0 = time.monotonic()
    assert not pio.platform_installed("kws-no-such-platform@1.0.0")
    assert time.monotonic() - t0 < 5


def test_ensure_platform_stops_quickly_offline():
    t0 = time.monotonic()
    reachable = pio.registry_reachable(timeout=3.0)
    assert time.monotonic() - t0 < 5
    if pio.platform_installed("nordicnrf52@10.5.0") or reachable:
        pio.ensure_platform("nordicnrf52@10.5.0", "nano33")  # returns quietly
        pytest.skip("nordicnrf52@10.5.0 installed or registry reachable: no error expected")
    t0 = time.monotonic()
    with pytest.raises(KwsError) as info:
        pio.ensure_platform("nordicnrf52@10.5.0", "nano33")
    assert time.monotonic() - t0 < 10
    assert str(info.value) == (
        "nano33: PlatformIO platform nordicnrf52@10.5.0 is not installed and the registry is "
        "unreachable (offline?); connect to the internet or install it with: "
        "pio pkg install -g -p nordicnrf52@10.5.0")
