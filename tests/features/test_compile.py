"""Compile layer: the rendered front end builds warning-free for the host and every core."""

import pytest

from kws.csource.targets import CORE_FLAGS
from kws.features import ctables
from kws.features.params import FeatureParams
from tests.cchecks import compile_strict, cpp_accepts


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("features_c")
    for name, text in ctables.sources(FeatureParams()).items():
        (d / name).write_text(text)
    return d


def test_host_gcc_strict(source_dir):
    compile_strict(None, ["kws_features.c"], source_dir)


@pytest.mark.parametrize("core", list(CORE_FLAGS))
def test_arm_none_eabi_gcc_strict(source_dir, core):
    compile_strict(core, ["kws_features.c"], source_dir)


def test_cpp_compiler_accepts_the_header(source_dir):
    cpp_accepts(source_dir, '#include "kws_features.h"\n'
                "int main() { kws_features_t s; kws_features_reset(&s); return 0; }\n")


OTHER_PARAMS = {
    "radix2_stage": FeatureParams(fft_size=1024, window_ms=64.0),
    "short_window": FeatureParams(fft_size=1024, window_ms=40.0),  # no full first-stage inputs
    "smallest_fft": FeatureParams(fft_size=16, window_ms=1.0, hop_ms=0.5, mel_bands=4),
    # the smallest last stage fused with the split (16 complex points, q = 4): no other stages
    "smallest_fused": FeatureParams(fft_size=32, window_ms=2.0, hop_ms=1.0, mel_bands=4),
    "large_fused": FeatureParams(fft_size=2048, window_ms=100.0),  # 1024 points, q = 256
}


@pytest.mark.parametrize("core", [None, "cortex-m4f", "cortex-m0plus"])
@pytest.mark.parametrize("name", list(OTHER_PARAMS))
def test_other_fft_plans_compile_strict(tmp_path, name, core):
    for fname, text in ctables.sources(OTHER_PARAMS[name]).items():
        (tmp_path / fname).write_text(text)
    compile_strict(core, ["kws_features.c"], tmp_path)
