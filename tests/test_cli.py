"""The command-line contract: help, JSON on stdout, one-line errors with exit code 2."""

import json
import subprocess
import sys

import numpy as np
import soundfile as sf


def kws(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kws", *args], capture_output=True, text=True, cwd=cwd)


def make_folder(root, words=("yes", "no"), speakers=6):
    rng = np.random.default_rng(0)
    for w_i, word in enumerate(words):
        (root / word).mkdir(parents=True)
        for s in range(speakers):
            t = np.arange(16000) / 16000
            x = 0.3 * np.sin(2 * np.pi * (300 + 100 * w_i + 10 * s) * t) + 0.01 * rng.standard_normal(16000)
            sf.write(root / word / f"{s:08x}_nohash_0.wav", x, 16000, subtype="PCM_16")
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "n.wav", 0.1 * rng.standard_normal(16000 * 5), 16000, subtype="PCM_16")
    return root


def test_help_lists_the_commands():
    proc = kws("--help")
    assert proc.returncode == 0
    for command in ("synth", "data", "features", "bench", "demo"):
        assert command in proc.stdout


def test_data_json_reports_counts_and_names_the_bad_file(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "yes" / "deadbeef_nohash_0.wav").write_bytes(b"RIFF\x00\x00garbage")
    proc = kws("data", "--data", str(root), "--keywords", "yes,no", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["labels"] == ["_silence_", "_unknown_", "yes", "no"]
    assert sum(summary["counts"]["yes"].values()) == 6  # the corrupt one is skipped
    assert len(summary["problems"]) == 1 and "deadbeef_nohash_0.wav" in summary["problems"][0]
    assert "deadbeef_nohash_0.wav" in proc.stderr


def test_missing_folder_is_one_line_exit_2(tmp_path):
    proc = kws("data", "--data", str(tmp_path / "nope"))
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "nope: data folder does not exist" in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_keyword_is_one_line_exit_2(tmp_path):
    root = make_folder(tmp_path / "d")
    proc = kws("data", "--data", str(root), "--keywords", "yes,no,maybe")
    assert proc.returncode == 2
    assert "no clips for keyword(s) maybe" in proc.stderr


def test_usage_error_exits_2():
    proc = kws("features", "compare", "--limit", "0", "--data", "x")
    assert proc.returncode == 2


def test_features_compare_json(tmp_path):
    root = make_folder(tmp_path / "d")
    proc = kws("features", "compare", "--data", str(root), "--limit", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"clips", "frames", "max_abs_log_diff", "int8_exact_fraction", "int8_max_diff"} <= set(result)
    assert result["clips"] == 5 and result["frames"] == 5 * 49
    assert result["max_abs_log_diff"] <= 1e-3


def test_bench_unknown_part_is_one_line_exit_2():
    proc = kws("bench", "--parts", "device,speed")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--parts: unknown part(s) speed" in lines[0]
