"""Fixtures for the QEMU tests: skip the folder when the cross tool chain or QEMU is missing,
and the small built step model of tests/native (native_models.build_step_model)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "native"))

from native_models import DEFAULT_MODEL, build_step_model

TOOLS = ("qemu-system-arm", "arm-none-eabi-gcc", "arm-none-eabi-size")


@pytest.fixture(autouse=True)
def _tools():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (`make setup` installs "
                    "gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm)")


@pytest.fixture(scope="session")
def small_model() -> bytes:
    """A random-weight one-layer GRU step model (16 units, 10 labels), as tests/native builds."""
    return build_step_model(16, 10, 1, True)


@pytest.fixture(scope="session")
def default_model() -> bytes:
    if not DEFAULT_MODEL.is_file():
        pytest.skip("runs/default/model.tflite not found (no trained run in this checkout)")
    return DEFAULT_MODEL.read_bytes()
