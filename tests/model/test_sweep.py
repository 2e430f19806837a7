"""kws sweep: the points a spec names, the results log, Ray tasks that fail alone, the report."""

import json

import pytest

from kws.errors import KwsError
from kws.sweep.spec import load_spec, point_config, points


def _spec(tmp_path, text: str):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return load_spec(path)


def test_grid_in_file_order_and_a_value_may_set_several_keys(tmp_path):
    spec, base = _spec(tmp_path, """
params:
  model.units: [64, 96]
  features:
    - {hop_ms: 20}
    - {hop_ms: 32, window_ms: 32}
""")
    assert base is None
    assert points(spec) == [
        {"model.units": 64, "features.hop_ms": 20},
        {"model.units": 64, "features.hop_ms": 32, "features.window_ms": 32},
        {"model.units": 96, "features.hop_ms": 20},
        {"model.units": 96, "features.hop_ms": 32, "features.window_ms": 32}]
    config = point_config(spec, base, points(spec)[1])
    assert (config.model.units, config.features.hop_ms, config.features.window_ms) == (64, 32, 32)
    assert config.features.mel_bands == 40  # the group's other settings are kept


def test_random_search_draws_distinct_points_per_seed(tmp_path):
    text = "search: random\nsamples: {n}\nseed: {seed}\nparams:\n  model.units: [8, 16, 24, 32]\n  epochs: [1, 2]\n"
    a = points(_spec(tmp_path, text.format(n=3, seed=1))[0])
    assert a == points(_spec(tmp_path, text.format(n=3, seed=1))[0])
    assert len({json.dumps(p, sort_keys=True) for p in a}) == 3
    assert len(points(_spec(tmp_path, text.format(n=50, seed=1))[0])) == 8  # capped at the grid


@pytest.mark.parametrize("text, needle", [
    ("params: {}\n", "at least one key"),
    ("params: {model.units: []}\n", "model.units: give at least one value"),
    ("params: {model.units: [8]}\nboards: {nano33: 1.5}\n", "boards.nano33"),
    ("params: {model.units: [8]}\nscore: streams\n", "score"),
    ("params: {model.units: [8]}\nconfig: nowhere.yaml\n", "nowhere.yaml does not exist"),
])
def test_bad_sweep_files_are_one_line_errors_naming_the_file(tmp_path, text, needle):
    with pytest.raises(KwsError, match=needle) as exc:
        _spec(tmp_path, text)
    assert "sweep.yaml" in str(exc.value) and "\n" not in str(exc.value)


def test_a_bad_point_is_named_before_anything_trains(tmp_path):
    spec, base = _spec(tmp_path, "params: {model.units: [8, 1000]}\n")
    with pytest.raises(KwsError, match='point {"model.units": 1000}'):
        [point_config(spec, base, p, "sweep.yaml") for p in points(spec)]


def test_results_log_keeps_finished_rows_and_ignores_a_line_cut_short(tmp_path):
    from kws.cluster.results import ResultLog

    log = ResultLog(tmp_path / "r.jsonl")
    log.start(resume=False)
    log.append({"key": "a", "settings": {}, "result": {"x": 1}})
    log.append({"key": "b", "settings": {}, "error": "boom"})
    with pytest.raises(KwsError, match="already holds results"):
        ResultLog(tmp_path / "r.jsonl").start(resume=False)
    with (tmp_path / "r.jsonl").open("a") as f:
        f.write('{"key": "c", "resu')  # killed mid-write
    assert set(log.done()) == {"a"} and len(log.rows()) == 2


def test_a_failing_task_is_reported_and_the_others_finish():
    import os

    from kws.cluster.ray_tasks import Task, run_tasks

    def work(x):  # nested: Ray ships it by value, the workers need not import this module
        if x == 1:
            raise ValueError(f"no good: {x}")
        return {"x": x}

    seen = []
    run_tasks([Task(str(i), {"x": i}, work, (i,)) for i in range(3)],
              lambda task, result, error: seen.append((task.key, result, error)), cpus=2)
    assert sorted(seen) == [("0", {"x": 0}, None), ("1", None, "ValueError: no good: 1"),
                            ("2", {"x": 2}, None)]
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"


def test_sweep_writes_as_it_goes_and_resume_trains_nothing_twice(tiny_data, tiny_settings,
                                                                  tmp_path):
    """Two tiny points (no board costs): rows, table, JSON and PNG; a second run with --resume
    reads the rows back and trains nothing."""
    import yaml

    from kws.sweep.run import run_sweep

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"set": tiny_settings, "params": {"model.units": [8, 16]},
                                    "boards": {}}))
    spec, base = load_spec(path)
    out = tmp_path / "out"
    report = run_sweep(spec, base, [tiny_data], [], out)
    assert [p["label"] for p in report["points"]] == ["units=8", "units=16"]
    assert all(0 <= p["score"] <= 1 for p in report["points"])
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "units=16" in (out / "sweep.md").read_text()
    logged = []
    again = run_sweep(spec, base, [tiny_data], [], out, resume=True, log=logged.append)
    assert again["points"] == report["points"]
    assert any("2 of 2 trainings done before" in m for m in logged)
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_recost_measures_kept_bundles_again_without_training(tiny_data, tiny_settings, tmp_path):
    """--recost: the costs of a finished point are measured again on its kept bundle (no
    training: the score and the training time stay), and replace the old ones."""
    import yaml

    from kws.sweep.run import run_sweep

    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump({"set": tiny_settings, "params": {"model.units": [8]},
                                    "boards": {"qemu_m4": 0.1}}))
    spec, base = load_spec(path)
    out = tmp_path / "out"
    first = run_sweep(spec, base, [tiny_data], [], out)["points"][0]
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    bundle = rows[0]["result"]["bundle"]
    assert (tmp_path / "out" / "runs").resolve() in __import__("pathlib").Path(bundle).parents
    again = run_sweep(spec, base, [tiny_data], [], out, recost=True)["points"][0]
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[1]["result"]["recosted"] is True
    assert rows[1]["result"]["training_seconds"] == rows[0]["result"]["training_seconds"]
    assert again["score"] == first["score"]
    assert again["boards"]["qemu_m4"]["instructions_per_second"] == \
        first["boards"]["qemu_m4"]["instructions_per_second"]  # same generator, same count
