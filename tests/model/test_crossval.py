"""Cross-validation folds are speaker-disjoint and cover every clip exactly once as test."""

from collections import defaultdict

from kws.config import DataConfig
from kws.evaluation.crossval import fold_dataset
from kws.data.dataset import index_folders


def test_folds_are_speaker_disjoint_and_partition_the_clips(tiny_data):
    base = index_folders([tiny_data], DataConfig(keywords=("yes", "no"), split_salt="t"))
    tested = defaultdict(int)
    for k in range(5):
        ds = fold_dataset(base, k, 5)
        by_split = defaultdict(set)
        for c in ds.clips:
            if c.path is not None:
                by_split[c.split].add(c.speaker)
            if c.split == "test":
                tested[c.name] += 1
        assert not by_split["train"] & by_split["test"]
        assert not by_split["train"] & by_split["validation"]
        assert not by_split["validation"] & by_split["test"]
    assert set(tested) == {c.name for c in base.clips} and set(tested.values()) == {1}


def test_train_only_folders_stay_in_training(tiny_data, tmp_path):
    import shutil

    extra = tmp_path / "extra"
    shutil.copytree(tiny_data / "yes", extra / "yes")
    base = index_folders([tiny_data], DataConfig(keywords=("yes", "no"), split_salt="t"),
                         train_only=[extra])
    extras = [c for c in base.clips if c.train_only]
    assert extras and all(c.split == "train" and extra in c.path.parents for c in extras)
    for k in range(5):
        assert all(c.split == "train" for c in fold_dataset(base, k, 5).clips if c.train_only)


def test_folds_side_by_side_score_each_requested_fold(tiny_data, tiny_config):
    """Two folds as two Ray tasks side by side: each row is the fold asked for, scored on its own
    test speakers, and the means are over exactly those rows."""
    from kws.evaluation.crossval import cross_validate

    logged = []
    result = cross_validate([tiny_data], tiny_config, folds=5, jobs=2, only=[3, 1],
                            log=logged.append)
    assert result["folds_run"] == [1, 3] and [r["fold"] for r in result["folds"]] == [1, 3]
    base = index_folders([tiny_data], tiny_config.data)
    for row in result["folds"]:
        expected = sum(c.split == "test" for c in fold_dataset(base, row["fold"], 5).clips)
        assert row["test_clips"] == expected > 0
        assert 0 <= row["int8_tflm_accuracy"] <= 1
    mean = sum(r["int8_tflm_accuracy"] for r in result["folds"]) / 2
    assert abs(result["mean_int8_tflm_accuracy"] - mean) < 1e-12
    assert len([m for m in logged if m.startswith("cv fold")]) == 2


def test_every_fold_once_per_seed(tiny_data, tiny_config):
    """--seeds 0,7: fold 2 trained twice side by side, each row tagged with its seed; seed 0
    reproduces the plain single-seed run exactly (same config otherwise)."""
    from kws.evaluation.crossval import cross_validate

    both = cross_validate([tiny_data], tiny_config, folds=5, jobs=2, only=[2], seeds=[0, 7])
    assert both["seeds"] == [0, 7]
    assert [(r["fold"], r["seed"]) for r in both["folds"]] == [(2, 0), (2, 7)]
    assert both["mean_int8_tflm_accuracy_per_seed"] == [r["int8_tflm_accuracy"]
                                                        for r in both["folds"]]
    single = cross_validate([tiny_data], tiny_config, folds=5, only=[2])
    assert single["seeds"] == [tiny_config.seed] == [0]
    assert single["folds"][0]["int8_tflm_accuracy"] == both["folds"][0]["int8_tflm_accuracy"]


def test_cross_validation_rejects_bad_fold_requests(tiny_data, tiny_config):
    import pytest

    from kws.evaluation.crossval import cross_validate
    from kws.errors import KwsError

    with pytest.raises(KwsError, match="must be in 0..4"):
        cross_validate([tiny_data], tiny_config, folds=5, only=[5])
    with pytest.raises(KwsError, match="jobs must be >= 1"):
        cross_validate([tiny_data], tiny_config, folds=5, jobs=0)
    with pytest.raises(KwsError, match="at least one seed"):
        cross_validate([tiny_data], tiny_config, folds=5, seeds=[])


def test_trainings_die_with_the_process_that_started_them(tmp_path):
    """A killed `kws bench --cv` must not leave trainings running: the local Ray instance and
    its workers share the driver's fate."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "worker.pid"
    script = tmp_path / "parent.py"
    script.write_text(f"""
import os, time
from kws.cluster.ray_tasks import Task, run_tasks
def work():
    open({str(pid_file)!r}, "w").write(str(os.getpid()))
    time.sleep(120)
    return {{}}
run_tasks([Task("a", {{}}, work)], lambda *a: None, cpus=1)
""")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        worker = int(pid_file.read_text())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    for _ in range(300):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the training outlived the process that started it")


def test_results_are_kept_and_resume_skips_done_trainings(tiny_data, tiny_config, tmp_path):
    """Each training is a JSON line the moment it ends; --resume reads them back instead of
    training again, and an existing results file is never overwritten without it."""
    import json

    import pytest

    from kws.evaluation.crossval import cross_validate
    from kws.errors import KwsError

    results = tmp_path / "cv.jsonl"
    first = cross_validate([tiny_data], tiny_config, folds=5, only=[2], results=results)
    lines = results.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["result"]["fold"] == 2
    with pytest.raises(KwsError, match="already holds results"):
        cross_validate([tiny_data], tiny_config, folds=5, only=[2], results=results)
    logged = []
    again = cross_validate([tiny_data], tiny_config, folds=5, only=[2], results=results,
                           resume=True, log=logged.append)
    assert again["folds"] == first["folds"]
    assert any("done before" in m for m in logged)
    assert len(results.read_text().splitlines()) == 1
