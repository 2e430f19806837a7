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

# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: Ray's single-machine mode, so the head, its workers and
# the driver open addresses on 127.0.0.1 only (otherwise Ray swaps 127.0.0.1 for the machine's
# network address)
RAY_ENV = ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster():
    """A one-node cluster on 127.0.0.1 with token authentication (a token made here), stopped
    at the end even when the test fails: its whole process group gets SIGTERM, then SIGKILL."""
    port = _free_port()
    # short: Ray's unix socket paths live under the temp dir and must stay under ~100 chars
    temp_dir = Path(tempfile.mkdtemp(prefix="kr", dir="/tmp"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
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
        yield f"127.0.0.1:{port}", temp_dir, {k: env[k] for k in RAY_ENV}
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


DRIVER = """
import json, sys
from pathlib import Path
from kws.cluster.ray_tasks import Task, run_tasks
from kws.evaluation.crossval import cross_validate
from kws.model.config import load_train_config
from kws.sweep.run import run_sweep
from kws.sweep.spec import load_spec

address, data, spec_file, out, settings = sys.argv[1:6]

def where():  # nested: Ray ships it by value
    import ray
    return {"node_ip": ray.util.get_node_ip_address()}

seen = []
run_tasks([Task("where", {}, where)], lambda t, r, e: seen.append(r or e), address=address)
spec, base = load_spec(Path(spec_file))
sweep = run_sweep(spec, base, [Path(data)], [], Path(out), address=address)
cv = cross_validate([Path(data)], load_train_config(None, json.loads(settings)), folds=2,
                    address=address)
print(json.dumps({"where": seen, "sweep": sweep, "cv": cv}))
"""


def test_sweep_and_cv_through_a_cluster_match_a_local_run(ray_cluster, tiny_data, tiny_settings,
                                                         tiny_config, tmp_path):
    """The driver is its own process (as `kws sweep --address` would be): a Ray client keeps
    process-wide state, so the suite's later local instances start clean."""
    import json

    import yaml

    from kws.evaluation.crossval import cross_validate

    address, temp_dir, ray_env = ray_cluster
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump({"set": tiny_settings, "params": {"model.units": [8, 16]},
                                    "boards": {"qemu_m4": 0.1}}))
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.run([sys.executable, str(script), address, str(tiny_data), str(path),
                           str(tmp_path / "sweep"), json.dumps(tiny_config.model_dump(mode="json"))],
                          capture_output=True, text=True, timeout=900, check=False,
                          env={**os.environ, **ray_env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["where"] == [{"node_ip": "127.0.0.1"}]  # nothing but loopback

    report = got["sweep"]
    assert [p["label"] for p in report["points"]] == ["units=8", "units=16"]
    for p in report["points"]:
        assert 0 <= p["score"] <= 1 and not p["failed"]
        assert p["boards"]["qemu_m4"]["instructions_per_second"] > 0
    assert report["best"]["qemu_m4"] in ("units=8", "units=16")
    assert (tmp_path / "sweep" / "sweep.png").stat().st_size > 0
    assert _cluster_workers(temp_dir) >= 5  # where + 2 sweep points + 2 folds ran there

    local = cross_validate([tiny_data], tiny_config, folds=2, jobs=2)
    scores = lambda cv: [(r["fold"], r["seed"], r["float_accuracy"], r["int8_tflm_accuracy"])  # noqa: E731
                         for r in cv["folds"]]
    assert [f for f, *_ in scores(got["cv"])] == [0, 1]
    assert scores(got["cv"]) == scores(local)
    assert got["cv"]["address"] == address and local["address"] is None


def test_a_cluster_that_is_not_there_is_a_one_line_error():
    from kws.cluster.ray_tasks import Task, run_tasks
    from kws.errors import KwsError

    with pytest.raises(KwsError, match="could not start or join the Ray cluster at 127.0.0.1"):
        run_tasks([Task("a", {}, dict)], lambda *a: None, address=f"127.0.0.1:{_free_port()}")
