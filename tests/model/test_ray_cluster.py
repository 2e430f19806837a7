"""A sweep and a cross-validation through a real Ray cluster (`ray start --head` on 127.0.0.1),
and the same cross-validation on a local instance giving the same accuracies."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

RAY_ENV = ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(monkeypatch):
    """A one-node cluster on 127.0.0.1 with token authentication (a token made here), stopped
    at the end even when the test fails: its whole process group gets SIGTERM, then SIGKILL."""
    port = _free_port()
    # short: Ray's unix socket paths live under the temp dir and must stay under ~100 chars
    temp_dir = Path(tempfile.mkdtemp(prefix="kr", dir="/tmp"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    for key in RAY_ENV:
        monkeypatch.setenv(key, env[key])
    ray_cli = Path(sys.executable).parent / "ray"
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
         "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
         "--disable-usage-stats", "--temp-dir", str(temp_dir)],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if head.poll() is not None:
                raise AssertionError(f"ray start --head exited with {head.returncode}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}", temp_dir
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(head.pid, sig)
                head.wait(wait)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        import shutil

        shutil.rmtree(temp_dir, ignore_errors=True)


def _cluster_workers(temp_dir: Path) -> int:
    """Worker processes the cluster started (one per task: max_calls=1), from its logs."""
    logs = temp_dir / "session_latest" / "logs"
    return len(list(logs.glob("python-core-worker-*.log")))


def test_sweep_and_cv_through_a_cluster_match_a_local_run(ray_cluster, tiny_data, tiny_settings,
                                                         tiny_config, tmp_path):
    import yaml

    from kws.crossval import cross_validate
    from kws.sweep.run import run_sweep
    from kws.sweep.spec import load_spec

    address, temp_dir = ray_cluster
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump({"set": tiny_settings, "params": {"model.units": [8, 16]},
                                    "boards": {"qemu_m4": 0.1}}))
    spec, base = load_spec(path)
    report = run_sweep(spec, base, [tiny_data], [], tmp_path / "sweep", address=address)
    assert [p["label"] for p in report["points"]] == ["units=8", "units=16"]
    for p in report["points"]:
        assert 0 <= p["score"] <= 1 and not p["failed"]
        assert p["boards"]["qemu_m4"]["instructions_per_second"] > 0
    assert report["best"]["qemu_m4"] in ("units=8", "units=16")
    assert (tmp_path / "sweep" / "sweep.png").stat().st_size > 0
    after_sweep = _cluster_workers(temp_dir)
    assert after_sweep >= 2

    on_cluster = cross_validate([tiny_data], tiny_config, folds=2, address=address)
    assert _cluster_workers(temp_dir) >= after_sweep + 2
    local = cross_validate([tiny_data], tiny_config, folds=2, jobs=2)
    scores = lambda cv: [(r["fold"], r["seed"], r["float_accuracy"], r["int8_tflm_accuracy"])  # noqa: E731
                         for r in cv["folds"]]
    assert [f for f, *_ in scores(on_cluster)] == [0, 1]
    assert scores(on_cluster) == scores(local)
    assert on_cluster["address"] == address and local["address"] is None


def test_a_cluster_that_is_not_there_is_a_one_line_error():
    from kws.cluster.ray_tasks import Task, run_tasks
    from kws.errors import KwsError

    with pytest.raises(KwsError, match="could not start or join the Ray cluster at 127.0.0.1"):
        run_tasks([Task("a", {}, dict)], lambda *a: None, address=f"127.0.0.1:{_free_port()}")
