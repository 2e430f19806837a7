"""SCons build script of the kws-qemu platform.

Build: every source under src/ (C as C99) with the board's core flags and the kws numerics
flags (the same flags as kws.emulate.qemu.build_elf, so a PlatformIO build computes the same
bits as the L4 emulation), linked with the project's linker script (`board_build.ldscript`,
relative to the project folder, its src/ folder, or this platform's ldscripts/) into
.pio/build/<env>/firmware.elf; `arm-none-eabi-size` is printed after the build.

Upload: runs the ELF in qemu-system-arm with semihosting. The firmware's command line
(semihosting SYS_GET_CMDLINE) is "<elf name> <wav path>"; the WAV path comes from the
environment variable KWS_WAV (absolute) or else the project option `custom_wav` (relative
to the project folder). The guest console streams live; QEMU's exit status (the firmware's
SYS_EXIT_EXTENDED status) is the upload's status: a non-zero one fails `pio run -t upload`
with "kws-qemu: firmware exited with status N". KWS_QEMU_TIMEOUT (seconds, default 600)
kills a guest that does not exit.
"""

import os
import shlex
import signal
import subprocess
import sys

from SCons.Script import (  # pylint: disable=import-error
    COMMAND_LINE_TARGETS,
    AlwaysBuild,
    Default,
    DefaultEnvironment,
)

env = DefaultEnvironment()
platform = env.PioPlatform()
board = env.BoardConfig()

QEMU = "qemu-system-arm"
DEFAULT_TIMEOUT_S = 600.0
STATUS_LINE = "kws-qemu: firmware exited with status %d"

CORE_FLAGS = list(board.get("build.core_flags"))
C_FLAGS = ["-std=c99", "-pedantic"]
COMMON_FLAGS = [
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-ffunction-sections",
    "-fdata-sections",
]


def fail(message):
    sys.stderr.write("Error: kws-qemu: %s\n" % message)
    env.Exit(1)


env.Replace(
    AR="arm-none-eabi-ar",
    AS="arm-none-eabi-as",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    GDB="arm-none-eabi-gdb",
    OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-ranlib",
    SIZETOOL="arm-none-eabi-size",
    ARFLAGS=["rc"],
    # checkprogsize: flash = code + constants + .data's initial values; RAM = .data + .bss
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPROGREGEXP=r"^(?:\.text|\.data|\.ARM\.exidx)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.data|\.bss)\s+(\d+).*",
    SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
    PROGSUFFIX=".elf",
)
if env.get("PROGNAME", "program") == "program":
    env.Replace(PROGNAME="firmware")

env.Append(
    ASFLAGS=CORE_FLAGS,
    ASPPFLAGS=["-x", "assembler-with-cpp"],
    CCFLAGS=CORE_FLAGS + COMMON_FLAGS,
    CFLAGS=C_FLAGS,
    CXXFLAGS=["-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"],
    CPPDEFINES=[("F_CPU", "$BOARD_F_CPU")],
    LINKFLAGS=CORE_FLAGS
    + [
        "-nostartfiles",
        "-specs=nano.specs",
        "-specs=nosys.specs",
        "-Wl,--gc-sections",
        "-Wl,-Map,%s" % os.path.join("$BUILD_DIR", "${PROGNAME}.map"),
    ],
    LIBS=["m"],
)


def resolve_ldscript():
    """The board's (or `board_build.ldscript`'s) linker script as an absolute path."""
    name = board.get("build.ldscript", "")
    if not name:
        fail("no linker script: set `board_build.ldscript = kws_link.ld` in platformio.ini")
    name = env.subst(name)
    if os.path.isabs(name):
        candidates = [name]
    else:
        candidates = [
            os.path.join(env.subst("$PROJECT_DIR"), name),
            os.path.join(env.subst("$PROJECT_SRC_DIR"), name),
            os.path.join(platform.get_dir(), "ldscripts", name),
        ]
    for path in candidates:
        if os.path.isfile(path):
            return os.path.abspath(path)
    fail("linker script %r not found (looked in: %s)" % (name, ", ".join(candidates)))
    return None


def timeout_seconds():
    raw = os.environ.get("KWS_QEMU_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        fail("KWS_QEMU_TIMEOUT=%r is not a positive number of seconds" % raw)
    return value


def resolve_wav():
    """The WAV path the firmware gets as its argument: $KWS_WAV, else `custom_wav`."""
    raw = os.environ.get("KWS_WAV", "")
    if raw:
        if not os.path.isabs(raw):
            fail("KWS_WAV=%s must be an absolute path" % raw)
        path = raw
        origin = "KWS_WAV"
    else:
        option = env.GetProjectOption("custom_wav", "")
        if not option:
            fail(
                "no WAV file for the emulated board: set KWS_WAV=/absolute/path.wav "
                "(e.g. `KWS_WAV=$PWD/clip.wav pio run -t upload`) or `custom_wav = <path>` "
                "in platformio.ini"
            )
        path = os.path.join(env.subst("$PROJECT_DIR"), os.path.expanduser(option))
        origin = "custom_wav"
    path = os.path.normpath(path)
    if not os.path.isfile(path):
        fail("%s: WAV file not found (from %s)" % (path, origin))
    return path


def qemu_command(elf, wav):
    """The qemu-system-arm command line; commas in option values are doubled (QEMU's escape)."""

    def arg(value):
        return "arg=" + value.replace(",", ",,")

    return [
        QEMU,
        "-M", board.get("qemu.machine"),
        "-cpu", board.get("qemu.cpu"),
        "-nographic",
        "-monitor", "none",
        "-serial", "none",
        "-icount", "shift=0",
        "-semihosting-config",
        ",".join(["enable=on", "target=native", arg(os.path.basename(elf)), arg(wav)]),
        "-kernel", elf,
    ]  # fmt: skip


def run_in_qemu(target, source, env):  # pylint: disable=unused-argument
    elf = os.path.abspath(str(source[0]))
    wav = resolve_wav()
    timeout = timeout_seconds()
    cmd = qemu_command(elf, wav)
    print(" ".join(shlex.quote(c) for c in cmd))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        proc = subprocess.Popen(cmd, cwd=env.subst("$PROJECT_DIR"), stdin=subprocess.DEVNULL)
    except OSError as exc:
        fail("cannot start %s (%s); install it with `apt-get install qemu-system-arm` "
             "(make setup)" % (QEMU, exc.strerror or exc))
        return 1
    try:
        status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        sys.stderr.write(
            "Error: kws-qemu: the firmware did not exit within %g s; QEMU was killed "
            "(set KWS_QEMU_TIMEOUT=<seconds> to allow longer runs)\n" % timeout
        )
        return 124
    if status < 0:  # QEMU itself died from a signal
        sys.stderr.write("Error: kws-qemu: %s was killed by %s\n"
                         % (QEMU, signal.Signals(-status).name))
        return 128 - status
    sys.stdout.flush()
    (sys.stderr if status else sys.stdout).write(STATUS_LINE % status + "\n")
    return status


env.Replace(LDSCRIPT_PATH=resolve_ldscript())

if "upload" in COMMAND_LINE_TARGETS:  # fail before compiling when there is nothing to run
    resolve_wav()
    timeout_seconds()

if "nobuild" in COMMAND_LINE_TARGETS:
    target_elf = os.path.join("$BUILD_DIR", "${PROGNAME}.elf")
else:
    target_elf = env.BuildProgram()
    env.Depends(target_elf, env.subst("$LDSCRIPT_PATH"))

AlwaysBuild(env.Alias("nobuild", target_elf))

# PlatformIO replaces a default "size" target by its checkprogsize bars; "kwssize" keeps the
# arm-none-eabi-size line in every build's output. `pio run -t size` prints it alone.
size_action = env.VerboseAction("$SIZEPRINTCMD", "Program size (arm-none-eabi-size)")
target_size = env.Alias("kwssize", target_elf, size_action)
AlwaysBuild(target_size)
AlwaysBuild(env.Alias("size", target_elf, size_action))

AlwaysBuild(
    env.Alias("upload", target_elf, env.VerboseAction(run_in_qemu, "Running $SOURCE in QEMU"))
)

Default([env.Alias("buildprog", target_elf), target_size])
