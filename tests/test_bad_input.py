"""The bad-input matrix, through the real `kws` command line: each case gives exit code 2 and
one `error:` line naming the file and the problem (or, for inputs kws accepts, a clean run),
and leaves no partial output behind."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws.export.state_quant import pack_model, read_model
from kws.native.graph import schema
from tests.bundle_factory import write_bundle

KWS = [sys.executable, "-m", "kws"]
REPO = Path(__file__).resolve().parents[1]
needs_cross = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None
                                 or shutil.which("qemu-system-arm") is None,
                                 reason="arm-none-eabi-gcc / qemu-system-arm not installed "
                                        "(make setup installs them)")


def kws(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*KWS, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=600, check=False)


def one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return write_bundle(tmp_path_factory.mktemp("bundle") / "run")


# --- audio given to the firmware emulator -------------------------------------------------------

def tone(n=16000, rate=16000):
    return 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)


BAD_WAVS = {
    "corrupt": (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" * 3),
                "unreadable audio"),
    "truncated_header": (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WA"), "unreadable audio"),
    "empty": (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "nan": (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2] * 1000), 16000, subtype="FLOAT"),
            "NaN or Inf"),
    "inf": (lambda p: sf.write(p, np.array([0.1, np.inf, 0.2] * 1000), 16000, subtype="FLOAT"),
            "NaN or Inf"),
}
GOOD_WAVS = {
    "pcm_u8": lambda p: sf.write(p, tone(), 16000, subtype="PCM_U8"),
    "pcm_24": lambda p: sf.write(p, tone(), 16000, subtype="PCM_24"),
    "rate_44k1": lambda p: sf.write(p, tone(44100, 44100), 44100, subtype="PCM_16"),
    "stereo": lambda p: sf.write(p, np.stack([tone(), tone()], 1), 16000, subtype="PCM_16"),
}


@needs_cross
@pytest.mark.parametrize("case", sorted(BAD_WAVS))
def test_unusable_wav_is_one_line(bundle, tmp_path, case):
    make, reason = BAD_WAVS[case]
    wav = tmp_path / f"{case}.wav"
    make(wav)
    one_error_line(kws("emulate", "--model", bundle, "--wav", wav), f"{case}.wav", reason)


@needs_cross
def test_accepted_wav_formats_are_converted(bundle, tmp_path):
    wavs = []
    for case, make in sorted(GOOD_WAVS.items()):
        wavs += ["--wav", tmp_path / f"{case}.wav"]
        make(tmp_path / f"{case}.wav")
    proc = kws("emulate", "--model", bundle, *wavs, "--json")
    assert proc.returncode == 0, proc.stderr
    files = json.loads(proc.stdout)["files"]
    assert [Path(f["file"]).stem for f in files] == sorted(GOOD_WAVS)
    for f in files:  # every file became 1 s at 16 kHz mono: 49 frames, one decision
        assert f["samples"] == 16000 and f["frames"] == 49 and f["decisions"] == 1


# --- data folders ---------------------------------------------------------------------------

def test_data_folder_without_labels(tmp_path):
    (tmp_path / "empty").mkdir()
    one_error_line(kws("train", "--data", tmp_path / "empty", "--out", tmp_path / "run"),
                   "empty", "none of the keywords")
    assert not (tmp_path / "run").exists()


def test_data_folder_with_one_label(tmp_path):
    (tmp_path / "one" / "yes").mkdir(parents=True)
    sf.write(tmp_path / "one" / "yes" / "a_nohash_0.wav", tone(), 16000, subtype="PCM_16")
    one_error_line(kws("train", "--data", tmp_path / "one", "--out", tmp_path / "run"),
                   "one", "no clips for keyword(s) no, up")
    assert not (tmp_path / "run").exists()


def test_keyword_missing_from_data(tmp_path):
    (tmp_path / "d" / "yes").mkdir(parents=True)
    sf.write(tmp_path / "d" / "yes" / "a_nohash_0.wav", tone(), 16000, subtype="PCM_16")
    one_error_line(kws("data", "--data", tmp_path / "d", "--keywords", "yes,maybe"),
                   "maybe")


# --- board files ------------------------------------------------------------------------------

NANO33 = (REPO / "boards" / "nano33.yaml").read_text()
BAD_BOARDS = {
    "wrong_type": (NANO33.replace("clock_hz: 64000000", 'clock_hz: "64 MHz"'),
                   ":5 clock_hz: must be an integer"),
    "negative_size": (NANO33.replace("ram_bytes: 262144", "ram_bytes: -1"),
                      ":7 ram_bytes: must be greater than 0"),
    "unknown_core": (NANO33.replace("core: cortex-m4f", "core: cortex-m3"),
                     ":4 core: 'cortex-m3' is not a known core"),
    "missing_key": ("\n".join(ln for ln in NANO33.splitlines() if not ln.startswith("clock_hz")),
                    "missing key clock_hz"),
    "misspelt_key": (NANO33.replace("ram_bytes: 262144", "ram_byts: 262144"),
                     ":7 ram_byts: unknown key; did you mean ram_bytes?"),
}


@pytest.mark.parametrize("case", sorted(BAD_BOARDS))
def test_bad_board_file(tmp_path, case):
    text, expected = BAD_BOARDS[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    one_error_line(kws("boards", "check", path), f"{case}.yaml", expected)


@needs_cross
def test_bad_board_file_stops_generate(bundle, tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text(BAD_BOARDS["negative_size"][0])
    one_error_line(kws("generate", "--model", bundle, "--board", path, "--out", tmp_path / "p"),
                   "b.yaml:7 ram_bytes")
    assert not (tmp_path / "p").exists()


# --- bundles ----------------------------------------------------------------------------------

def edited_copy(bundle: Path, dest: Path, tflite: bytes | None = None, **manifest) -> Path:
    """A copy of the bundle with a replaced model (its sha256 kept consistent) and/or manifest
    fields."""
    shutil.copytree(bundle, dest)
    m = json.loads((dest / "manifest.json").read_text())
    if tflite is not None:
        (dest / "model.tflite").write_bytes(tflite)
        m["model_sha256"] = hashlib.sha256(tflite).hexdigest()
    m.update(manifest)
    (dest / "manifest.json").write_text(json.dumps(m))
    return dest


def test_manifest_from_a_newer_schema(bundle, tmp_path):
    newer = edited_copy(bundle, tmp_path / "newer", schema_version=99)
    one_error_line(kws("generate", "--model", newer, "--board", "qemu_m4", "--out", tmp_path / "p"),
                   "manifest.json", "schema 99 is newer")
    assert not (tmp_path / "p").exists()


def test_tflite_with_an_unsupported_op(bundle, tmp_path):
    model = read_model((bundle / "model.tflite").read_bytes())
    for code in model.operatorCodes:
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.TANH:
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.HARD_SWISH
    bad = edited_copy(bundle, tmp_path / "bad", tflite=pack_model(model))
    one_error_line(kws("generate", "--model", bad, "--board", "qemu_m4", "--out", tmp_path / "p"),
                   "HARD_SWISH", "is not supported")
    assert not (tmp_path / "p").exists()


def test_per_channel_bundle_for_the_tflm_backend(bundle, tmp_path):
    """The factory's default bundle has per-channel FULLY_CONNECTED weights, which the pinned
    Arduino TFLM library computes wrong."""
    one_error_line(kws("generate", "--model", bundle, "--board", "nano33", "--out", tmp_path / "p",
                       "--backend", "tflm"),
                   f"{bundle / 'model.tflite'}: FULLY_CONNECTED weights are quantized per channel",
                   "--backend native", "--set per_channel=false")
    assert not (tmp_path / "p").exists()


def test_tflite_replaced_by_hand(bundle, tmp_path):
    bad = tmp_path / "swapped"
    shutil.copytree(bundle, bad)
    (bad / "model.tflite").write_bytes(b"\0" * 64)
    one_error_line(kws("eval", "--model", bad, "--data", tmp_path, "--backend", "native"),
                   "model.tflite", "sha256 differs")


# --- output folders ---------------------------------------------------------------------------

@needs_cross
def test_output_folder_with_user_files(bundle, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    one_error_line(kws("generate", "--model", bundle, "--board", "qemu_m4", "--out", out),
                   "mine", "--force")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    one_error_line(kws("train", "--data", tmp_path, "--out", out), "mine", "--force")
    assert (out / "notes.txt").read_text() == "keep me"


@needs_cross
def test_read_only_output_folder(bundle, tmp_path, monkeypatch):
    """Root ignores file modes, so the write fails by substitution: the error path is the
    same one EACCES takes."""
    from kws.codegen import project
    from kws.errors import KwsError

    def deny(self, data):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", deny)
    with pytest.raises(KwsError, match=r"ro: cannot write the project \(Permission denied\)"):
        project.generate(bundle, "qemu_m4", tmp_path / "ro")
    monkeypatch.undo()
    assert not any((tmp_path / "ro").rglob("*.c"))


# --- benchmark options ------------------------------------------------------------------------
@pytest.mark.parametrize("args, needles", [
    (["--folds", "0,x"], ["--folds 0,x", "whole numbers"]),
    (["--seeds", "1,x"], ["--seeds 1,x", "whole numbers"]),
    (["--set", "model.unitz=3"], ["unitz"]),
    (["--resume"], ["--resume needs --cv-results"]),
    (["--address", "127.0.0.1:1"], ["Ray cluster at 127.0.0.1:1", "nothing answers"]),
])
def test_bad_cross_validation_options(args, needles, tmp_path):
    """Rejected before any benchmark runs (no model is measured, nothing is written)."""
    one_error_line(kws("bench", "--cv", "--model", tmp_path / "none", *args, cwd=tmp_path), *needles)
    assert not any(tmp_path.iterdir())


# --- sweeps -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, needles", [
    (None, ["sweep.yaml", "cannot read"]),
    ("params: {model.units: []}\n", ["sweep.yaml", "model.units: give at least one value"]),
    ("params: {model.units: [8, 999]}\n", ["sweep.yaml", '"model.units": 999']),
    ("params: {model.units: [8]}\nboards: {nano99: 0.1}\n", ["nano99"]),
])
def test_bad_sweep_files(text, needles, tmp_path):
    """A bad sweep file is named in one line before Ray starts or anything trains."""
    spec = tmp_path / "sweep.yaml"
    if text is not None:
        spec.write_text(text)
    one_error_line(kws("sweep", spec, "--out", tmp_path / "out", cwd=tmp_path), *needles)
    assert not (tmp_path / "out").exists()
