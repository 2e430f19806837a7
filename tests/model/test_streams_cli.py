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


def test_streams_health_on_one_carried_state(tiny_run, tiny_data, tmp_path):
    """Health reads the state after every frame of one long stream: the per-frame run equals
    one run_sequence over the whole stream, and the stretches add up to the whole."""
    import shutil

    import numpy as np

    from kws.evaluate import load_bundle
    from kws.native.host import NativeModel
    from kws.streams.health import per_frame_states

    run, _ = tiny_run
    cont = tmp_path / "continuous"
    shutil.copytree(run, cont)
    manifest = json.loads((cont / "manifest.json").read_text())
    manifest["streaming"].update({"mode": "continuous", "decision_frames": 1, "resets": 1})
    (cont / "manifest.json").write_text(json.dumps(manifest))

    model = NativeModel(load_bundle(cont).tflite)
    frames = np.random.default_rng(0).integers(-128, 128, (60, model.frame_size)).astype(np.int8)
    whole, last = model.run_sequence(frames)
    logits, states = per_frame_states(model, frames, model.reset_state())
    assert np.array_equal(logits, whole) and np.array_equal(states[-1], last)

    proc = _kws("streams", "health", "--model", cont, "--data", tiny_data, "--minutes", 2,
                "--parts", 2, "--snr", "20,5", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["one_state"] and result["minutes"] == 2.0
    parts, w = result["parts"], result["whole"]
    assert sum(p["false_accepts"] for p in parts) == w["false_accepts"]
    assert sum(p["seconds"] for p in parts) == w["seconds"]
    assert 0 <= w["state_at_int8_limits"] <= 1 and w["state_mean_abs"] > 0

    proc = _kws("streams", "health", "--model", run, "--data", tiny_data, "--minutes", 1,
                "--parts", 1, "--snr", "20", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "clip mode" in proc.stdout
