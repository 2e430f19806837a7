"""Offline preparation of PlatformIO for the kws-qemu platform (`python -m kws.pio.setup`).

Idempotent and fast when done (it only reads a few small files then):
1. tool-scons: PlatformIO runs every build with its `tool-scons` core package, which normally
   comes from the PlatformIO registry. Here it is the `scons` wheel from PyPI (the version
   PlatformIO asks for: tool-scons 4.41101.0 = SCons 4.11.1), unpacked into a package folder
   with a package.json and a scons.py entry point, installed with
   `pio pkg install -g -t file://<folder>` and then marked as owned by `platformio` in its
   .piopm so PlatformIO takes it for the official package and never asks the registry.
2. toolchain-gccarmnoneeabi: a package folder whose bin/ holds symlinks to the system's
   arm-none-eabi-* tools (Debian's gcc-arm-none-eabi). It is not installed into PlatformIO:
   the kws-qemu platform (platform.py) refers to it as `symlink://<folder>`, which PlatformIO
   resolves offline, and stock platforms never match it (they ask for owner `platformio`).

PlatformIO keeps its default core folder (~/.platformio, or $PLATFORMIO_CORE_DIR when set), so
a user with internet still builds real boards the ordinary way. Our own folders live in
<cache>/pio/ with <cache> = $KWS_CACHE_DIR, else $XDG_CACHE_HOME/kws, else ~/.cache/kws.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from kws import templates_dir
from kws.csource.host_build import cache_dir
from kws.errors import KwsError
from kws.pio.run import packages_dir, pio_env, pio_executable

TOOLCHAIN = "toolchain-gccarmnoneeabi"
TOOL_PREFIX = "arm-none-eabi-"
SCONS_REQUIREMENT_FALLBACK = "~4.41101.0"  # PlatformIO Core 6.2.0's tool-scons requirement
SCONS_ENTRY = '''\
"""tool-scons entry point made by kws.pio.setup from the PyPI scons wheel: PlatformIO runs
`python scons.py ...`; SCons is imported from this folder."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from SCons.Script.Main import main  # noqa: E402

if __name__ == "__main__":
    main()
'''
PIO_TIMEOUT_S = 120.0
PIP_TIMEOUT_S = 300.0


def platform_dir() -> Path:
    """The kws-qemu PlatformIO platform (for `platform = symlink://<this>`)."""
    return (templates_dir() / "platformio" / "kws-qemu").resolve()


def pio_cache_dir() -> Path:
    """<cache>/pio: the kws-made package folders and the downloaded scons wheel."""
    path = (cache_dir().parent / "pio").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def toolchain_dir() -> Path:
    """The toolchain-gccarmnoneeabi package folder (symlinks to the system's cross tools).
    kws-qemu's platform.py computes the same path without importing kws."""
    return pio_cache_dir() / TOOLCHAIN


# --- tool-scons ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SconsVersion:
    """PlatformIO numbers tool-scons as 4.<major><minor:02><patch:02>.0 (4.41101.0 = 4.11.1)."""

    requirement: str  # what PlatformIO Core asks for, e.g. "~4.41101.0"
    package: str  # the tool-scons version we install, e.g. "4.41101.0"
    scons: str  # the PyPI scons version, e.g. "4.11.1"


def scons_version() -> SconsVersion:
    requirement = _core_requirement("tool-scons") or SCONS_REQUIREMENT_FALLBACK
    match = re.search(r"(\d+)\.(\d{5})\.(\d+)", requirement)
    if not match:
        raise KwsError(f"cannot read PlatformIO's tool-scons requirement {requirement!r}")
    code = int(match.group(2))
    scons = f"{code // 10000}.{code // 100 % 100}.{code % 100}"
    return SconsVersion(requirement, f"{match.group(1)}.{match.group(2)}.0", scons)


def _core_requirement(name: str) -> str | None:
    try:  # PlatformIO Core >= 6.1.17
        from platformio.dependencies import get_core_dependencies

        return get_core_dependencies().get(name)
    except ImportError:
        pass
    try:  # older 6.x
        import platformio

        return getattr(platformio, "__core_packages__", {}).get(name)
    except ImportError:
        raise KwsError("PlatformIO is not installed in this Python; run `make setup`") from None


def installed_scons(version: SconsVersion) -> Path | None:
    """A tool-scons in PlatformIO's packages folder that PlatformIO accepts: owner platformio,
    a version inside the requirement, a scons.py."""
    import semantic_version  # a PlatformIO dependency

    wanted = semantic_version.SimpleSpec(version.requirement)
    for meta in _package_metas(packages_dir()):
        data = _read_json(meta)
        spec = data.get("spec") or {}
        if data.get("name") != "tool-scons" or spec.get("owner") != "platformio":
            continue
        try:
            ok = semantic_version.Version(str(data.get("version"))) in wanted
        except ValueError:
            ok = False
        if ok and (meta.parent / "scons.py").is_file():
            return meta.parent
    return None


def scons_package(version: SconsVersion) -> Path:
    """<cache>/pio/tool-scons-<version>: the unpacked wheel + package.json + scons.py."""
    folder = pio_cache_dir() / f"tool-scons-{version.package}"
    if (folder / "package.json").is_file() and (folder / "SCons" / "__init__.py").is_file():
        return folder
    wheel = _scons_wheel(version.scons)
    tmp = Path(tempfile.mkdtemp(prefix="tool-scons-", dir=pio_cache_dir()))
    try:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        (tmp / "scons.py").write_text(SCONS_ENTRY)
        (tmp / "package.json").write_text(json.dumps({
            "name": "tool-scons",
            "version": version.package,
            "description": f"SCons {version.scons} from the PyPI wheel (made by kws.pio.setup)",
            "homepage": "https://scons.org",
            "license": "MIT",
            "system": "*",
        }, indent=2) + "\n")
        try:
            tmp.rename(folder)
        except OSError:  # made by a concurrent setup meanwhile
            if not (folder / "package.json").is_file():
                raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise KwsError(f"cannot unpack {wheel}: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _scons_wheel(scons: str) -> Path:
    downloads = pio_cache_dir() / "downloads"
    downloads.mkdir(exist_ok=True)
    pattern = f"scons-{scons}-py3-none-any.whl"
    if (downloads / pattern).is_file():
        return downloads / pattern
    cmd = [sys.executable, "-m", "pip", "download", f"scons=={scons}", "--no-deps",
           "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", str(downloads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        proc = None
    found = sorted(downloads.glob(f"scons-{scons}-*.whl"))
    if proc is None or proc.returncode != 0 or not found:
        why = "timed out" if proc is None else _last_line(proc.stderr) or "no wheel"
        raise KwsError(f"cannot download scons=={scons} from PyPI ({why}); connect to the "
                       f"internet or put {pattern} into {downloads}")
    return found[0]


def install_scons(version: SconsVersion) -> Path:
    """`pio pkg install -g -t file://<folder>`, then owner platformio in the installed .piopm."""
    folder = scons_package(version)
    uri = f"file://{folder}"
    cmd = [pio_executable(), "pkg", "install", "-g", "-t", uri]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=pio_env(),
                              timeout=PIO_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise KwsError(f"`pio pkg install -g -t {uri}` did not finish within "
                       f"{PIO_TIMEOUT_S:g} s") from None
    if proc.returncode != 0:
        raise KwsError(f"`pio pkg install -g -t {uri}` failed: "
                       f"{_last_line(proc.stderr + proc.stdout)}")
    for meta in _package_metas(packages_dir()):
        data = _read_json(meta)
        if (data.get("spec") or {}).get("uri") == uri:
            data["name"] = "tool-scons"
            data["version"] = version.package
            data["spec"] = {"owner": "platformio", "id": None, "name": "tool-scons",
                            "requirements": None, "uri": None}
            meta.write_text(json.dumps(data))
            return meta.parent
    raise KwsError(f"`pio pkg install -g -t {uri}` left no package in {packages_dir()}")


def ensure_scons() -> tuple[str, Path]:
    version = scons_version()
    found = installed_scons(version)
    if found:
        return f"tool-scons {version.package}: already present ({found})", found
    path = install_scons(version)
    if installed_scons(version) != path:
        raise KwsError(f"{path}: installed tool-scons is not accepted for "
                       f"{version.requirement}")
    return f"tool-scons {version.package} (SCons {version.scons} from PyPI): installed " \
           f"({path})", path


# --- toolchain-gccarmnoneeabi ----------------------------------------------------------------

def toolchain_manifest(gcc: str) -> dict:
    """package.json of the toolchain folder; version in PlatformIO's style (GCC 12.2.1 ->
    1.120201.0)."""
    proc = subprocess.run([gcc, "-dumpfullversion"], capture_output=True, text=True,
                          timeout=30, check=False)
    text = proc.stdout.strip()
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text)
    if proc.returncode != 0 or not match:
        raise KwsError(f"{gcc} -dumpfullversion gave {text or proc.stderr.strip()!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return {
        "name": TOOLCHAIN,
        "version": f"1.{major}{minor:02d}{patch:02d}.0",
        "description": f"GNU Arm Embedded {text}: symlinks to {Path(gcc).parent} (kws.pio.setup)",
        "system": "*",
    }


def system_tools(gcc: str) -> dict[str, Path]:
    """{name: path} of every arm-none-eabi-* program next to the system's cross gcc."""
    bin_dir = Path(gcc).parent
    return {p.name: p for p in sorted(bin_dir.glob(TOOL_PREFIX + "*"))
            if p.is_file() and os.access(p, os.X_OK)}


def ensure_toolchain() -> tuple[str, Path]:
    gcc = shutil.which(TOOL_PREFIX + "gcc")
    if not gcc:
        raise KwsError("arm-none-eabi-gcc not found on PATH; install Debian's "
                       "gcc-arm-none-eabi and libnewlib-arm-none-eabi (`make apt` does)")
    folder = toolchain_dir()
    manifest = toolchain_manifest(gcc)
    tools = system_tools(gcc)
    manifest_text = json.dumps(manifest, indent=2) + "\n"
    bin_dir = folder / "bin"
    current = {p.name: os.readlink(p) for p in bin_dir.iterdir() if p.is_symlink()} \
        if bin_dir.is_dir() else {}
    wanted = {name: str(path) for name, path in tools.items()}
    manifest_path = folder / "package.json"
    if current == wanted and manifest_path.is_file() and \
            manifest_path.read_text() == manifest_text:
        return f"{TOOLCHAIN} {manifest['version']}: already present ({folder})", folder
    bin_dir.mkdir(parents=True, exist_ok=True)
    for entry in bin_dir.iterdir():
        if entry.name not in wanted or current.get(entry.name) != wanted[entry.name]:
            entry.unlink()
    for name, target in wanted.items():
        link = bin_dir / name
        if not link.is_symlink():
            tmp = bin_dir / f".{name}.tmp{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target)
            tmp.replace(link)
    tmp_manifest = folder / f".package.json.tmp{os.getpid()}"
    tmp_manifest.write_text(manifest_text)
    tmp_manifest.replace(manifest_path)
    return (f"{TOOLCHAIN} {manifest['version']}: linked {len(wanted)} {TOOL_PREFIX}* tools "
            f"from {Path(gcc).parent} ({folder})"), folder


# --- helpers ---------------------------------------------------------------------------------

def _package_metas(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p / ".piopm" for p in root.iterdir() if (p / ".piopm").is_file())


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def setup(log=None) -> dict[str, Path]:
    """Both steps; `log(line)` gets one line per step. Returns {"tool-scons": installed
    package folder, "toolchain": toolchain_dir(), "platform": platform_dir()}."""
    log = log or (lambda line: print(line, file=sys.stderr))
    result = {}
    for key, step in (("tool-scons", ensure_scons), ("toolchain", ensure_toolchain)):
        line, path = step()
        log(f"pio setup: {line}")
        result[key] = path
    result["platform"] = platform_dir()
    return result


def main() -> int:
    try:
        setup()
    except KwsError as exc:
        print(f"pio setup: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
