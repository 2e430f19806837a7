"""Short fuzzing runs (part of `make test`): every harness of tests/fuzz for a fixed number of
executions with a fixed seed, starting from the committed seed corpus; any crash, sanitizer
report or escaped exception fails the test. Long campaigns: tests/fuzz/README.md."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# build.py by path: a plain `import build` could find the repo's build/ folder or PyPI's build
_spec = importlib.util.spec_from_file_location("kws_fuzz_build", HERE / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

C_RUNS = 20000
PY_RUNS = {"wav": 3000, "board": 3000, "tflite": 2000}
MAX_LEN = {"app": 4096, "tflite": 16384}
SEED = 1


def _run(cmd: list[str], tmp_path: Path, runs: int, timeout: int) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}"
    assert f"Done {runs} runs" in proc.stderr, tail


def _args(target: str, tmp_path: Path, runs: int) -> list[str]:
    """libFuzzer flags: fixed seed and count, new inputs into a scratch corpus (the committed
    seeds are only read), crash files into tmp_path."""
    work = tmp_path / "corpus"
    work.mkdir()
    return [f"-runs={runs}", f"-seed={SEED}", f"-max_len={MAX_LEN.get(target, 8192)}",
            "-timeout=30", f"-artifact_prefix={tmp_path}/", str(work),
            str(HERE / "corpus" / target)]


@pytest.fixture(scope="module")
def binaries(tmp_path_factory) -> dict[str, Path]:
    missing = build.libfuzzer_missing()
    if missing:
        pytest.skip(missing)
    return build.build(list(build.TARGETS), tmp_path_factory.mktemp("fuzz"))


@pytest.mark.parametrize("target", list(build.TARGETS))
def test_c_harness(binaries, target, tmp_path):
    _run([str(binaries[target]), *_args(target, tmp_path, C_RUNS)], tmp_path, C_RUNS,
         timeout=120)


@pytest.mark.parametrize("target", list(PY_RUNS))
def test_atheris_harness(target, tmp_path):
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris not installed (pip install -e '.[dev]')")
    runs = PY_RUNS[target]
    script = HERE / f"fuzz_{target}.py"
    _run([sys.executable, str(script), *_args(target, tmp_path, runs)], tmp_path, runs,
         timeout=120)


def test_seed_corpus_is_small():
    files = [p for p in (HERE / "corpus").rglob("*") if p.is_file()]
    assert files and sum(p.stat().st_size for p in files) < 200_000

