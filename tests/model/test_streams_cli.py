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


def _as_continuous(run, folder):
    """The tiny clip bundle rewritten to run as a streaming model (one state, every frame)."""
    import shutil

    shutil.copytree(run, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["streaming"].update({"mode": "continuous", "decision_frames": 1, "resets": 1})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_streams_health_on_one_carried_state(tiny_run, tiny_data, tmp_path):
    """Health reads the state after every frame of one long stream: the per-frame run equals
    one run_sequence over the whole stream, and the stretches add up to the whole."""
    import numpy as np

    from kws.export.read import load_bundle
    from kws.native.host import NativeModel
    from kws.streams.health import per_frame_states

    run, _ = tiny_run
    cont = _as_continuous(run, tmp_path / "continuous")

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


def test_streams_compare_scores_both_models_on_the_same_streams(tiny_run, tiny_data, tmp_path):
    run, _ = tiny_run
    cont = _as_continuous(run, tmp_path / "continuous")
    png = tmp_path / "roc.png"
    proc = _kws("streams", "compare", "--model", run, "--model", cont, "--data", tiny_data,
                "--minutes", 1, "--snr", "20", "--plot", png, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    clip, stream = result["models"]
    assert (clip["mode"], stream["mode"]) == ("clip", "continuous")
    assert png.stat().st_size > 10_000 and result["plot"] == str(png)
    for row in result["models"]:
        frrs = [lv["frr"] for lv in row["levels"] if lv["frr"] is not None]
        assert frrs == sorted(frrs, reverse=True)  # more false accepts allowed: never worse
        for lv in row["levels"]:
            if lv["frr"] is not None:
                assert lv["fa_per_hour"] <= lv["max_fa_per_hour"]
                assert all(0 <= v <= 1 for v in lv["frr_per_keyword"].values())
        assert row["cost"]["instructions_per_second"] > 0
    # same audio: the same keyword events were scored for both
    assert clip["at_manifest"]["events"] == stream["at_manifest"]["events"] > 0
    assert isinstance(result["second_beats_first_at_every_level"], bool)
