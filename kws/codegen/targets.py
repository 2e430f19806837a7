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


def core_flags(core: str) -> tuple[str, ...]:
    try:
        return CORE_FLAGS[core]
    except KeyError:
        known = ", ".join(CORE_FLAGS)
        raise KwsError(f"unknown core {core!r} (known: {known})") from None
