"""Shared compile checks of generated C: warning-free strict builds and C++-usable headers."""

import shutil
import subprocess

import pytest

from kws.csource.host_build import NUMERICS, WARNINGS
from kws.csource.targets import CORE_FLAGS, CROSS_CC

STRICT = ("-std=c99", "-O2", *WARNINGS, *NUMERICS, "-Wshadow", "-Wconversion", "-Wdouble-promotion")


def compile_strict(core: str | None, sources, cwd) -> None:
    """Compile each C file to an object with the strict flags; any diagnostic fails. core None
    = host gcc; otherwise arm-none-eabi-gcc with that core's flags (skips when not installed)."""
    if core is None:
        cc, flags = "gcc", ()
    else:
        if shutil.which(CROSS_CC) is None:
            pytest.skip(f"{CROSS_CC} not installed (make setup installs gcc-arm-none-eabi)")
        cc, flags = CROSS_CC, CORE_FLAGS[core]
    for src in sources:
        proc = subprocess.run([cc, *STRICT, *flags, "-c", src, "-o", src[:-2] + ".o"],
                              check=False, cwd=cwd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""


def cpp_accepts(cwd, program: str) -> None:
    """g++ compiles `program` (which includes generated headers) without a warning."""
    (cwd / "use.cpp").write_text(program)
    proc = subprocess.run(["g++", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "use.cpp"],
                          check=False, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
