"""Run trainings as Ray tasks and hand back each result the moment it arrives.

Local by default: a Ray instance started in this process with the machine's cores (or `cpus`),
stopped when the work is done. With an address ("HOST:PORT" of `ray start --head`, or "auto"),
the tasks go to that running cluster instead; its nodes must see the data folders at the same
paths (a shared file system) and have kws installed, as the driver ships only the settings.

Each task runs in a fresh worker process (max_calls=1): TensorFlow fixes its thread pools
when it starts, and a training's memory goes back to the node when the task ends.
"""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from kws.errors import KwsError

NO_RAY = ("Ray is not installed in this environment: `pip install 'ray>=2.9'` (kws's dev "
          "install, `pip install -e '.[dev]'`, includes it)")


def import_ray(local: bool = False):
    """Ray with usage statistics off: set before the import, so nothing is ever reported
    off the machine by Ray itself. For a local instance (the first import in this process),
    Ray's single-machine mode: every address it opens is on 127.0.0.1, none on the network."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if local and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise KwsError(NO_RAY) from None
    return ray


@contextmanager
def session(address: str | None = None, cpus: int | None = None) -> Iterator[Any]:
    """ray, initialised: a local instance of `cpus` cores (default: all) or the cluster at
    `address`; shut down at the end unless it was running before."""
    ray = import_ray(local=not address)
    if ray.is_initialized():
        yield ray
        return
    if address and address != "auto":
        check_address(address)
    quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True,
             "logging_level": "error"}
    try:
        if address:
            ray.init(address=address, **{k: v for k, v in quiet.items() if k != "include_dashboard"})
        else:
            ray.init(num_cpus=cpus or os.cpu_count() or 1, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KwsError(f"could not start or join {where}: {first}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after Ray's long retries, when nothing listens at HOST:PORT."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise KwsError(f"--address {address}: give HOST:PORT of `ray start --head`, or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise KwsError(f"could not start or join the Ray cluster at {address}: nothing answers "
                       f"there ({exc.strerror or exc}); start one with `ray start --head`") from None


@dataclass
class Task:
    """One training: `fn(*args)` returns a JSON-able dict. `key` names it in results files
    (what --resume matches), `settings` is what a report shows next to its result or failure."""

    key: str
    settings: dict
    fn: Callable[..., dict]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def _failure(exc: BaseException) -> str:
    """The cause's last line (a Ray task error wraps the worker's own exception)."""
    cause = getattr(exc, "cause", None) or exc
    text = "".join(traceback.format_exception_only(type(cause), cause)).strip()
    return text.splitlines()[-1] if text else type(cause).__name__


def run_tasks(tasks: Sequence[Task], on_done: Callable[[Task, dict | None, str | None], None],
              cpus_per_task: float = 1.0, address: str | None = None,
              cpus: int | None = None) -> None:
    """Submit every task, each asking for `cpus_per_task` CPUs, and call
    on_done(task, result, None) or on_done(task, None, error) as each one finishes. A failing
    task does not stop the others; Ctrl-C cancels what is still running (what finished was
    already handed to on_done)."""
    if not tasks:
        return
    with session(address, cpus) as ray:
        remotes: dict[Callable, Any] = {}
        pending: dict[Any, Task] = {}
        for task in tasks:
            if task.fn not in remotes:
                remotes[task.fn] = ray.remote(num_cpus=cpus_per_task, max_calls=1,
                                              max_retries=0)(task.fn)
            pending[remotes[task.fn].remote(*task.args, **task.kwargs)] = task
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except Exception as exc:  # noqa: BLE001 - reported with the task's settings
                    on_done(task, None, _failure(exc))
                else:
                    on_done(task, result, None)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
