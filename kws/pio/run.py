"""Calling PlatformIO (`pio`) from kws: where it is, where its core folder is, runs with a hard
timeout, and the offline checks that let `make flash` stop within seconds instead of letting
PlatformIO retry an unreachable registry for a minute."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kws.errors import KwsError

# platformio/__init__.py: __registry_mirror_hosts__; the API lives at https://api.<host>.
REGISTRY_HOSTS = ("api.registry.platformio.org", "api.registry.nm1.platformio.org")
# Set for every pio call from kws: no telemetry, no upgrade check at the end of a command
# (offline, that check retries the registry), no colour codes in captured output.
PIO_ENV_DEFAULTS = {
    "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "no",
    "PLATFORMIO_DISABLE_UPGRADE_CHECK": "true",
    "PLATFORMIO_NO_ANSI": "true",
}
# Printed by the kws-qemu platform's upload target (firmware_templates/platformio/kws-qemu).
_GUEST_STATUS = re.compile(r"^kws-qemu: firmware exited with status (-?\d+)\s*$", re.M)


def pio_executable() -> str:
    """The `pio` of the Python environment kws runs in, else the first one on PATH."""
    here = Path(sys.executable).parent
    for name in ("pio", "platformio"):
        candidate = here / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    for name in ("pio", "platformio"):
        found = shutil.which(name)
        if found:
            return found
    raise KwsError("PlatformIO (`pio`) not found; run `make setup` (installs it into .venv)")


def core_dir() -> Path:
    """PlatformIO's core folder: $PLATFORMIO_CORE_DIR, else ~/.platformio (PlatformIO's rule)."""
    raw = os.environ.get("PLATFORMIO_CORE_DIR")
    return Path(raw).expanduser() if raw else Path.home() / ".platformio"


def packages_dir() -> Path:
    raw = os.environ.get("PLATFORMIO_PACKAGES_DIR")
    return Path(raw).expanduser() if raw else core_dir() / "packages"


def platforms_dir() -> Path:
    raw = os.environ.get("PLATFORMIO_PLATFORMS_DIR")
    return Path(raw).expanduser() if raw else core_dir() / "platforms"


def pio_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ + PIO_ENV_DEFAULTS (unless already set) + `env`."""
    merged = dict(os.environ)
    for key, value in PIO_ENV_DEFAULTS.items():
        merged.setdefault(key, value)
    merged.update(env or {})
    return merged


def run(project_dir: Path | str, args: Sequence[str], timeout: float,
        env: Mapping[str, str] | None = None, echo: bool = False
        ) -> subprocess.CompletedProcess:
    """Run `pio <args>` in `project_dir` and return its exit status and (text) output. The whole
    process group (pio, SCons, compilers, QEMU) is killed after `timeout` seconds with a
    KwsError. echo=True also copies every output line to stderr as it arrives."""
    cmd = [pio_executable(), *args]
    what = "pio " + " ".join(args)
    try:
        proc = subprocess.Popen(cmd, cwd=str(project_dir), env=pio_env(env),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace",
                                start_new_session=True)
    except OSError as exc:
        raise KwsError(f"cannot start {cmd[0]}: {exc.strerror or exc}") from None
    chunks: dict[str, list[str]] = {"out": [], "err": []}

    def pump(stream, key: str) -> None:
        for line in stream:
            chunks[key].append(line)
            if echo:
                sys.stderr.write(line)
                sys.stderr.flush()

    readers = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise KwsError(f"`{what}` in {project_dir} did not finish within {timeout:g} s "
                       "and was stopped") from None
    except BaseException:  # Ctrl-C: pio runs in its own session, so stop it here
        _kill_group(proc)
        raise
    finally:
        for reader in readers:
            reader.join(timeout=5)
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(chunks["out"]),
                                       "".join(chunks["err"]))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def guest_status(output: str) -> int | None:
    """The firmware's exit status from the output of `pio run -t upload` on a kws-qemu board
    (pio itself exits 1 for any non-zero guest status), or None when QEMU did not finish."""
    found = _GUEST_STATUS.findall(output)
    return int(found[-1]) if found else None


def first_error(proc: subprocess.CompletedProcess) -> str:
    """The most telling line of a failed pio run (its "Error: ..." line when there is one)."""
    lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
    for line in lines:
        if line.startswith("Error:") or "error:" in line:
            return line
    return lines[-1] if lines else f"exit status {proc.returncode}"


def validate_config(project_dir: Path | str, timeout: float = 60.0) -> dict[str, dict]:
    """`pio project config --json-output`, offline: {section: {option: value}} of the project's
    platformio.ini, or a KwsError with PlatformIO's reason when the file is invalid."""
    project_dir = Path(project_dir)
    if not (project_dir / "platformio.ini").is_file():
        raise KwsError(f"{project_dir / 'platformio.ini'}: not found")
    proc = run(project_dir, ["project", "config", "--json-output"], timeout)
    if proc.returncode != 0:
        raise KwsError(f"{project_dir / 'platformio.ini'}: {first_error(proc)}")
    try:
        sections = json.loads(proc.stdout)
        return {name: dict(options) for name, options in sections}
    except (ValueError, TypeError) as exc:
        raise KwsError(f"{project_dir / 'platformio.ini'}: unexpected output of "
                       f"`pio project config --json-output` ({exc})") from None


def registry_reachable(timeout: float = 5.0) -> bool:
    """True when an HTTPS request to the PlatformIO registry API gets any answer within
    `timeout` seconds (any HTTP status counts; proxies from the environment are used)."""
    import requests  # a PlatformIO dependency

    answered = threading.Event()

    def probe(host: str) -> None:
        try:
            requests.head(f"https://{host}/", timeout=timeout, allow_redirects=False)
        except requests.RequestException:
            return
        answered.set()

    workers = [threading.Thread(target=probe, args=(host,), daemon=True)
               for host in REGISTRY_HOSTS]
    for worker in workers:
        worker.start()
    # name resolution is not covered by requests' timeout: bound the whole probe here, and
    # stop early when one host answered or every probe failed
    deadline = time.monotonic() + timeout
    while not answered.is_set() and time.monotonic() < deadline:
        if not any(w.is_alive() for w in workers):
            break
        answered.wait(0.02)
    return answered.is_set()


def platform_installed(spec: str) -> bool:
    """Whether PlatformIO has a platform matching `spec` ("nordicnrf52@10.5.0",
    "platformio/ststm32@^17", "symlink://<dir>") in its platforms folder. Offline and fast:
    PlatformIO's own package matching, no registry."""
    try:
        from platformio.package.manager.platform import PlatformPackageManager
        from platformio.package.meta import PackageSpec

        manager = PlatformPackageManager(str(platforms_dir()))
        return manager.get_package(PackageSpec(spec)) is not None
    except Exception as exc:  # noqa: BLE001 - a broken install reads as "not installed"
        print(f"kws: could not inspect PlatformIO's platforms ({exc})", file=sys.stderr)
        return False


def ensure_platform(spec: str, board_id: str, timeout: float = 5.0) -> None:
    """Return when `pio run` can get platform `spec`: it is installed, or the registry answers.
    Otherwise a KwsError within seconds (PlatformIO itself would retry for about a minute)."""
    if platform_installed(spec) or registry_reachable(timeout):
        return
    raise KwsError(f"{board_id}: PlatformIO platform {spec} is not installed and the registry "
                   "is unreachable (offline?); connect to the internet or install it with: "
                   f"pio pkg install -g -p {spec}")
