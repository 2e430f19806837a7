"""Compiler flags per Cortex-M core: one table used by tests, benchmarks and generated projects."""

from __future__ import annotations

from kws.errors import KwsError

# -mfloat-abi=hard where the core has an FPU; the M0+ has none and uses soft float.
CORE_FLAGS: dict[str, tuple[str, ...]] = {
    "cortex-m0plus": ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m4f": ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
    "cortex-m7": ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
    "cortex-m33": ("-mcpu=cortex-m33", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"),
    "cortex-m55": ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
}
CROSS_CC = "arm-none-eabi-gcc"

# Cores with the DSP extension (SMLAD, SXTB16, SSAT: __ARM_FEATURE_SIMD32); the kernels take
# their portable C paths on the others.
DSP_CORES = frozenset({"cortex-m4f", "cortex-m7", "cortex-m33", "cortex-m55"})


def has_dsp(core: str) -> bool:
    return core in DSP_CORES

# The FPU of each core as the Arduino mbed variants name it. Their libmbed.a is built softfp
# (floats passed in integer registers, FPU instructions inside), and PlatformIO's mbed builder
# appends `-mfloat-abi=soft` after the variant's flags, which would turn every float operation
# of our code into an __aeabi_* call. A project's build_flags come last, so these win; softfp
# (not hard) because hard-float objects do not link with the softfp libmbed.a.
ARDUINO_MBED_FPU: dict[str, str] = {"cortex-m4f": "fpv4-sp-d16", "cortex-m7": "fpv5-d16"}


def arduino_mbed_float_flags(core: str) -> tuple[str, ...]:
    """The float flags a real Arduino mbed build of `core` must end with (none for the M0+)."""
    fpu = ARDUINO_MBED_FPU.get(core)
    return ("-mfloat-abi=softfp", f"-mfpu={fpu}") if fpu else ()


def core_flags(core: str) -> tuple[str, ...]:
    try:
        return CORE_FLAGS[core]
    except KeyError:
        known = ", ".join(CORE_FLAGS)
        raise KwsError(f"unknown core {core!r} (known: {known})") from None
