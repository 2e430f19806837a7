"""Flash and RAM of the portable firmware core for a board's core, measured by compiling it.

`kws generate` checks a board's budget against these numbers before it writes a project: the
core's C files (features, model, recognizer, app) are compiled with arm-none-eabi-gcc for the
board's CPU and summed with arm-none-eabi-size. A probe file instantiates one `kws_app_t`, so
the app's static state (ring buffer, hidden states, recognizer) is counted as the firmware
will hold it. Builds are cached by content.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kws.csource.host_build import NUMERICS, WARNINGS, cache_dir
from kws.csource.targets import CROSS_CC, core_flags
from kws.errors import KwsError

CROSS_SIZE = "arm-none-eabi-size"
FLAGS = ("-std=c99", "-O2", *WARNINGS, *NUMERICS, "-ffunction-sections", "-fdata-sections")
PROBE = "kws_footprint_probe.c"
PROBE_TEXT = ('#include "kws_app.h"\n'
              "/* One app instance, as a firmware main holds it. */\n"
              "kws_app_t kws_footprint_app;\n")


@dataclass(frozen=True)
class Footprint:
    """Bytes: text (code + const data in flash), data (initialized RAM, also in flash), bss."""

    text: int
    data: int
    bss: int

    @property
    def flash_bytes(self) -> int:
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        return self.data + self.bss


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise KwsError(f"{name} not found; run `make setup` (installs gcc-arm-none-eabi with apt-get)")
    return found


def measure(sources: Mapping[str, str], core: str, float_flags: tuple[str, ...] = ()) -> Footprint:
    """Compile every .c of {file name: text} (plus the app probe) for `core`; sum the sizes.
    float_flags come after the core's own (the last -mfloat-abi wins), as in a real build."""
    cc, size = _tool(CROSS_CC), _tool(CROSS_SIZE)
    files = {**sources, PROBE: PROBE_TEXT}
    flags = [*core_flags(core), *float_flags, *FLAGS]
    h = hashlib.sha256(cc.encode() + repr(flags).encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    record = cache_dir().parent / "footprint" / f"{h.hexdigest()[:24]}.txt"
    if record.is_file():
        text, data, bss = (int(v) for v in record.read_text().split())
        return Footprint(text, data, bss)
    with tempfile.TemporaryDirectory(prefix="kws-footprint-") as tmp:
        for name, body in files.items():
            Path(tmp, name).write_text(body)
        objects = []
        for name in sorted(f for f in files if f.endswith(".c")):
            obj = name[:-2] + ".o"
            proc = subprocess.run([cc, *flags, "-c", name, "-o", obj], cwd=tmp,
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                first = next((ln for ln in proc.stderr.splitlines() if "error" in ln),
                             proc.stderr[:300])
                raise KwsError(f"compiling {name} for {core} failed: {first.strip()}")
            objects.append(obj)
        proc = subprocess.run([size, *objects], cwd=tmp, capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise KwsError(f"{CROSS_SIZE} failed: {proc.stderr.strip()[:200]}")
    totals = [0, 0, 0]
    for line in proc.stdout.splitlines()[1:]:
        for i, value in enumerate(line.split()[:3]):
            totals[i] += int(value)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(" ".join(str(v) for v in totals) + "\n")
    return Footprint(*totals)
