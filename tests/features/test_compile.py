"""Compile layer: the rendered front end builds warning-free for the host and every core."""

import shutil
import subprocess

import pytest

from kws.codegen.host_build import NUMERICS, WARNINGS
from kws.codegen.targets import CORE_FLAGS, CROSS_CC
from kws.features import ctables
from kws.features.params import FeatureParams

STRICT = ("-std=c99", "-O2", *WARNINGS, *NUMERICS, "-Wshadow", "-Wconversion", "-Wdouble-promotion")


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("features_c")
    for name, text in ctables.sources(FeatureParams()).items():
        (d / name).write_text(text)
    return d


def compile_object(cc, flags, source_dir):
    proc = subprocess.run(
        [cc, *STRICT, *flags, "-c", "kws_features.c", "-o", "kws_features.o"],
        cwd=source_dir, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_host_gcc_strict(source_dir):
    compile_object("gcc", (), source_dir)


@pytest.mark.parametrize("core", list(CORE_FLAGS))
def test_arm_none_eabi_gcc_strict(source_dir, core):
    if shutil.which(CROSS_CC) is None:
        pytest.skip(f"{CROSS_CC} not installed (make setup installs gcc-arm-none-eabi)")
    compile_object(CROSS_CC, CORE_FLAGS[core], source_dir)


def test_cpp_compiler_accepts_the_header(source_dir):
    (source_dir / "use.cpp").write_text('#include "kws_features.h"\nint main() { kws_features_t s; kws_features_reset(&s); return 0; }\n')
    proc = subprocess.run(["g++", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "use.cpp"],
                          cwd=source_dir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
