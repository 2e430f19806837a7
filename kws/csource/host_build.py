"""Compile generated C for the host (a shared library loaded with ctypes), cached by content.

The flags are the device's numerics flags: no FMA contraction, no fast-math, so what the host
library computes is what the Cortex-M computes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from kws.errors import KwsError

WARNINGS = ("-Wall", "-Wextra", "-Werror", "-pedantic")
NUMERICS = ("-ffp-contract=off", "-fno-fast-math")
HOST_FLAGS = ("-std=c99", "-O2", "-fPIC", *WARNINGS, *NUMERICS)


def cache_dir() -> Path:
    base = os.environ.get("KWS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "kws"
    )
    path = Path(base) / "host"
    path.mkdir(parents=True, exist_ok=True)
    return path


def compiler(name: str = "gcc") -> str:
    found = shutil.which(os.environ.get("CC", name) if name == "gcc" else name)
    if not found:
        raise KwsError(f"{name}: C compiler not found; run `make setup` (installs it with apt-get)")
    return found


def build_shared(
    sources: Mapping[str, str], name: str, extra_flags: Sequence[str] = ()
) -> Path:
    """Compile {file name: text} (every .c file) into lib<name>-<hash>.so and return its path.
    Identical sources and flags reuse the cached library."""
    cc = compiler()
    flags = [*HOST_FLAGS, *extra_flags]
    h = hashlib.sha256(cc.encode() + repr(flags).encode())
    for fname in sorted(sources):
        h.update(fname.encode() + b"\0" + sources[fname].encode() + b"\0")
    lib = cache_dir() / f"lib{name}-{h.hexdigest()[:16]}.so"
    if lib.is_file():
        return lib
    with tempfile.TemporaryDirectory(prefix=f"kws-{name}-") as tmp:
        for fname, text in sources.items():
            Path(tmp, fname).write_text(text)
        c_files = sorted(f for f in sources if f.endswith(".c"))
        out = Path(tmp) / lib.name
        cmd = [cc, *flags, "-shared", "-o", str(out), *c_files, "-lm"]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr[:300])
            raise KwsError(f"host build of {name} failed: {first.strip()}")
        shutil.move(str(out), lib)  # atomic within one filesystem; concurrent builds agree
    return lib
