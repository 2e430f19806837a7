"""`kws streams eval` and `tune` end to end on the tiny tone model: the JSON carries the scores,
the false-accept attribution adds up to the false accepts, and tune writes its file."""

import json
import subprocess
import sys


def _kws(*args, cwd):
    return subprocess.run([sys.executable, "-m", "kws", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, check=False)


def test_streams_eval_and_tune_on_the_tiny_model(tiny_run, tiny_data, tmp_path):
    run, _ = tiny_run
    proc = _kws("streams", "eval", "--model", run, "--data", tiny_data, "--split", "test",
                "--minutes", 1, "--snr", "20", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    at = result["at_manifest"]
    assert at["events"] > 0 and 0 <= at["frr"] <= 1
    causes = result["false_accept_causes"]
    assert set(causes) == {"keyword", "unknown_word", "background"}
    assert sum(causes.values()) == at["false_accepts"]

    out = tmp_path / "tuning.json"
    proc = _kws("streams", "tune", "--model", run, "--data", tiny_data, "--minutes", 1,
                "--snr", "20", "--ks", "1", "--out", out, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tuned = json.loads(out.read_text())
    for split in ("validation", "test"):
        assert sum(tuned[split]["false_accept_causes"].values()) == tuned[split]["false_accepts"]
