"""The board file schema: `boards/<id>.yaml` validated into one frozen `Board`.

Keys name their units. Numbers are strict (a YAML `true` or `"64 MHz"` is not an integer).
Rules that span several keys live in `Board._cross_checks` and raise `BoardRuleError`, which
carries the dotted key it is about, so the loader can point at that key's line.
"""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator, \
    model_validator

from kws.config import Frozen

PLATFORM_QEMU = "kws-qemu"  # our local PlatformIO platform for the emulated boards
ID_RE = re.compile(r"^[a-z0-9_]+$")
C_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# name@X.Y.Z, optionally owner/name@X.Y.Z (PlatformIO's registry spelling)
PINNED_PLATFORM_RE = re.compile(r"^(?:[a-z0-9][a-z0-9_.-]*/)?[a-z0-9][a-z0-9_.-]*@\d+\.\d+\.\d+$")
PIO_BOARD_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
NAME_MAX_CHARS = 60

AudioSource = Literal["pdm", "i2s", "serial", "semihosting"]
Framework = Literal["arduino", "none"]


class BoardRuleError(ValueError):
    """A rule about `loc` (a key path such as ("budget", "flash_bytes")) is broken."""

    def __init__(self, loc: tuple[str, ...], reason: str):
        self.loc = loc
        self.reason = reason
        super().__init__(f"{'.'.join(loc)}: {reason}")


def known_cores() -> tuple[str, ...]:
    from kws.csource.targets import CORE_FLAGS

    return tuple(CORE_FLAGS)


class Budget(Frozen):
    """What the kws firmware (model + arena + buffers + code) may use of the chip."""

    flash_bytes: StrictInt = Field(gt=0, description="flash the kws firmware may use, bytes")
    ram_bytes: StrictInt = Field(gt=0, description="RAM the kws firmware may use, bytes")


class PlatformIO(Frozen):
    """How PlatformIO builds and uploads for this board."""

    platform: StrictStr = Field(
        description="pinned development platform `name@X.Y.Z` (e.g. nordicnrf52@10.11.0), or "
        f"`{PLATFORM_QEMU}`, our local platform for the QEMU boards")
    board: StrictStr = Field(description="PlatformIO board id (e.g. nano33ble)")
    framework: Framework = Field(description="arduino, or none (only with the kws-qemu platform)")
    monitor_speed: StrictInt = Field(
        115200, gt=0, description="serial baud rate of the board's console (`pio device monitor`)")
    link_libraries: tuple[StrictStr, ...] = Field(
        (), description="precompiled libraries of the Arduino core the firmware needs, as paths "
        "inside the framework package (e.g. libraries/X/src/cortex-m7/libY.a): PlatformIO puts "
        "library folders on the search path but never names their .a files to the linker")

    @field_validator("link_libraries")
    @classmethod
    def _library_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            name = path.rsplit("/", 1)[-1]
            if (path.startswith("/") or ".." in path.split("/") or not name.startswith("lib")
                    or not name.endswith(".a") or len(name) <= 5):
                raise ValueError(f"{path!r}: expected a relative path inside the framework "
                                 "package ending in lib<name>.a")
        return value

    @field_validator("platform")
    @classmethod
    def _pinned(cls, value: str) -> str:
        if value != PLATFORM_QEMU and not PINNED_PLATFORM_RE.match(value):
            raise ValueError(f"must be pinned as name@X.Y.Z (e.g. nordicnrf52@10.11.0) or be "
                             f"{PLATFORM_QEMU} (got {value!r})")
        return value

    @field_validator("board")
    @classmethod
    def _board_id(cls, value: str) -> str:
        if not PIO_BOARD_RE.match(value):
            raise ValueError(f"must be a PlatformIO board id (letters, digits, _ . -), "
                             f"got {value!r}")
        return value


class Audio(Frozen):
    """Where the samples come from and how they arrive."""

    source: AudioSource = Field(
        description="pdm (on-board PDM mic), i2s, serial (PCM streamed from the host over USB "
        "serial) or semihosting (WAV file read by the QEMU guest)")
    sample_rate_hz: StrictInt = Field(gt=0, description="audio sample rate, Hz; must match the model")
    block_samples: StrictInt = Field(
        description="samples per DMA/driver block (or serial frame), a power of two 64..4096")
    gain: Optional[StrictInt] = Field(
        None, ge=0, le=255,
        description="microphone gain in the PDM library's units (PDM.setGain); none = the "
        "library default. Only for pdm and i2s sources")
    settle_ms: StrictInt = Field(
        0, ge=0, description="ignore audio for this long after reset (PDM mics need to settle), ms")

    @field_validator("block_samples")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if not (64 <= value <= 4096 and value & (value - 1) == 0):
            raise ValueError(f"must be a power of two from 64 to 4096 (got {value})")
        return value

    @model_validator(mode="after")
    def _gain_only_for_mics(self) -> "Audio":
        if self.gain is not None and self.source not in ("pdm", "i2s"):
            raise BoardRuleError(("gain",), f"only for pdm and i2s sources, not {self.source}")
        return self


class Led(Frozen):
    """The LED that lights on a detection."""

    pin: StrictInt | StrictStr = Field(
        description="Arduino pin: a C identifier (e.g. LED_BUILTIN) or a pin number >= 0")
    active_low: StrictBool = Field(False, description="true if writing LOW turns the LED on")

    @field_validator("pin", mode="before")
    @classmethod
    def _pin(cls, value: object) -> object:
        ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
            isinstance(value, str) and C_IDENTIFIER_RE.match(value))
        if not ok:
            raise ValueError(f"must be a C identifier (e.g. LED_BUILTIN) or a pin number >= 0 "
                             f"(got {value!r})")
        return value


class Power(Frozen):
    """Numbers for energy estimates; the board file cites the datasheet they come from."""

    active_ua_per_mhz: StrictFloat = Field(
        gt=0, description="core active current per MHz while running the model, µA/MHz")
    supply_v: StrictFloat = Field(gt=0, description="supply voltage that current is drawn at, V")


class Qemu(Frozen):
    """The emulated machine (required iff audio.source is semihosting)."""

    machine: StrictStr = Field(description="qemu-system-arm -M value, e.g. mps2-an386")
    cpu: StrictStr = Field(description="qemu-system-arm -cpu value, e.g. cortex-m4")


class Board(Frozen):
    """One board: `boards/<id>.yaml` plus its id (the file stem)."""

    id: StrictStr = Field(description="the board file's stem (BOARD=<id>); set by the loader")
    name: StrictStr = Field(
        description=f"human-readable name, 1..{NAME_MAX_CHARS} printable ASCII characters "
        "without quotes or backslashes")
    core: StrictStr = Field(
        description="Cortex-M core: cortex-m0plus, cortex-m4f, cortex-m7, cortex-m33 or cortex-m55")
    clock_hz: StrictInt = Field(gt=0, description="core clock, Hz")
    flash_bytes: StrictInt = Field(gt=0, description="physical flash of the chip/board, bytes")
    ram_bytes: StrictInt = Field(gt=0, description="physical RAM, bytes")
    budget: Budget = Field(description="what the kws firmware may use of flash and RAM")
    platformio: PlatformIO = Field(description="PlatformIO platform, board and framework")
    audio: Audio = Field(description="audio source and block size")
    led: Optional[Led] = Field(None, description="detection LED; absent = no LED")
    power: Power = Field(description="current draw for energy estimates")
    qemu: Optional[Qemu] = Field(
        None, description="QEMU machine and CPU; required iff audio.source is semihosting")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID_RE.match(value):
            raise ValueError(f"board id {value!r} (the file name) must be lower-case letters, "
                             "digits and _")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not 1 <= len(value) <= NAME_MAX_CHARS:
            raise ValueError(f"must be 1 to {NAME_MAX_CHARS} characters (got {len(value)})")
        for ch in value:
            if ch in "\"\\":
                raise ValueError(f"must not contain {ch!r} (it ends up in C strings)")
            if not 0x20 <= ord(ch) < 0x7F:
                raise ValueError(f"must be printable ASCII (found {ch!r})")
        return value

    @field_validator("core")
    @classmethod
    def _core(cls, value: str) -> str:
        cores = known_cores()
        if value not in cores:
            raise ValueError(f"{value!r} is not a known core ({', '.join(cores)})"
                             + _did_you_mean(value, cores))
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> "Board":
        if self.budget.flash_bytes > self.flash_bytes:
            raise BoardRuleError(("budget", "flash_bytes"),
                                 f"{self.budget.flash_bytes} exceeds flash_bytes {self.flash_bytes}")
        if self.budget.ram_bytes > self.ram_bytes:
            raise BoardRuleError(("budget", "ram_bytes"),
                                 f"{self.budget.ram_bytes} exceeds ram_bytes {self.ram_bytes}")
        local = self.platformio.platform == PLATFORM_QEMU
        source = self.audio.source
        if local and source != "semihosting":
            raise BoardRuleError(("audio", "source"),
                                 f"must be semihosting on the {PLATFORM_QEMU} platform "
                                 f"(got {source})")
        if not local and source == "semihosting":
            raise BoardRuleError(("audio", "source"),
                                 f"semihosting is for emulated boards only; they use "
                                 f"platformio.platform {PLATFORM_QEMU}")
        if local and self.platformio.framework != "none":
            raise BoardRuleError(("platformio", "framework"),
                                 f"must be none on the {PLATFORM_QEMU} platform")
        if not local and self.platformio.framework == "none":
            raise BoardRuleError(("platformio", "framework"),
                                 f"none is only for the {PLATFORM_QEMU} platform; use arduino")
        if source == "semihosting" and self.qemu is None:
            raise BoardRuleError(("audio", "source"),
                                 "semihosting needs a qemu section (machine, cpu)")
        if source != "semihosting" and self.qemu is not None:
            raise BoardRuleError(("qemu",), "only for emulated boards (audio.source semihosting)")
        if self.qemu is not None:
            self._check_machine(self.qemu)
        return self

    def _check_machine(self, qemu: Qemu) -> None:
        from kws.csource.machines import MACHINES

        machine = MACHINES.get(self.core)
        if machine is None:
            raise BoardRuleError(("core",), f"no QEMU machine emulates {self.core} (emulated: "
                                 f"{', '.join(MACHINES)})")
        if qemu.machine != machine.name:
            raise BoardRuleError(("qemu", "machine"), f"must be {machine.name} for {self.core} "
                                 f"(got {qemu.machine})")
        if qemu.cpu != machine.cpu:
            raise BoardRuleError(("qemu", "cpu"), f"must be {machine.cpu} for {self.core} "
                                 f"(got {qemu.cpu})")
        if self.flash_bytes > machine.code_bytes:
            raise BoardRuleError(("flash_bytes",), f"{self.flash_bytes} exceeds the "
                                 f"{machine.code_bytes} code bytes the QEMU harness maps on "
                                 f"{machine.name}")
        if self.ram_bytes > machine.ram_bytes:
            raise BoardRuleError(("ram_bytes",), f"{self.ram_bytes} exceeds the "
                                 f"{machine.ram_bytes} RAM bytes the QEMU harness maps on "
                                 f"{machine.name}")

    @property
    def is_emulated(self) -> bool:
        """True for QEMU boards (audio from a WAV file via semihosting)."""
        return self.audio.source == "semihosting"


def _did_you_mean(word: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
