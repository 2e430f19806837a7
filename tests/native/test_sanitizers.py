"""ASan + UBSan: the generated model and feature C run clean on random input (child process,
since the sanitizer runtime must be preloaded before Python starts)."""

import os
import subprocess
import sys

import pytest

CHILD = r'''
import sys
import numpy as np
from kws.features.native import CFeatures
from kws.native.host import NativeModel
flags = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")
model = NativeModel(open(sys.argv[1], "rb").read(), extra_flags=flags)
plain = NativeModel(open(sys.argv[1], "rb").read())
rng = np.random.default_rng(0)
frames = rng.integers(-128, 128, (40, 49, 40), dtype=np.int8)
assert np.array_equal(model.run_clips(frames), plain.run_clips(frames))
feat = CFeatures(extra_flags=flags)
audio = rng.integers(-32768, 32768, 16000 * 3, dtype=np.int16)
assert len(feat.log_mel_chunked(audio, [1, 333, 4000])) == 149
print("clean")
'''


@pytest.mark.parametrize("name", ["H64-C12", "H16x2-C12"])
def test_model_and_features_are_asan_ubsan_clean(tmp_path, build_model, name):
    from native_models import BUILT

    small_model_bytes = build_model(*BUILT[name])
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("gcc has no libasan runtime")
    model = tmp_path / "m.tflite"
    model.write_bytes(small_model_bytes)
    env = dict(os.environ, LD_PRELOAD=libasan, ASAN_OPTIONS="detect_leaks=0")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(model)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("clean")
