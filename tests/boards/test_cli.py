"""`kws boards list|check`: results on stdout, one `error:` line per bad file, exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from kws import boards_dir
from kws.cli import app
from kws.errors import KwsError

SHIPPED = ("nano33", "nano_rp2040", "portenta_h7", "qemu_m4", "qemu_m55", "qemu_m7", "serial_m4")


def kws(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kws", *args], capture_output=True, text=True,
                          cwd=cwd)


def misspelt_nano33(folder: Path) -> tuple[Path, int]:
    """A copy of nano33.yaml with its top-level `ram_bytes:` renamed `ram_byts:`."""
    lines = (boards_dir() / "nano33.yaml").read_text().splitlines(keepends=True)
    index = next(i for i, ln in enumerate(lines) if ln.startswith("ram_bytes:"))
    lines[index] = lines[index].replace("ram_bytes:", "ram_byts:", 1)
    path = folder / "nano33.yaml"
    path.write_text("".join(lines))
    return path, index + 1


def test_check_passes_for_every_shipped_board():
    proc = kws("boards", "check")
    assert proc.returncode == 0, proc.stderr
    ok = [ln for ln in proc.stdout.splitlines() if ln.startswith("ok  ")]
    assert len(ok) == len(SHIPPED)
    for board_id, line in zip(SHIPPED, ok):
        assert f"{board_id}.yaml ({board_id}, cortex-m" in line


def test_check_names_file_line_and_key(tmp_path):
    bad, line = misspelt_nano33(tmp_path)
    proc = kws("boards", "check", str(bad))
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert errors == [f"error: {bad}:{line} ram_byts: unknown key; did you mean ram_bytes?"]
    assert proc.stdout == ""


def test_check_reports_every_bad_file(tmp_path):
    bad, line = misspelt_nano33(tmp_path)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    good = boards_dir() / "qemu_m4.yaml"
    proc = kws("boards", "check", "nano33.yaml", str(good), "empty.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.splitlines() == [f"ok  {good} (qemu_m4, cortex-m4f)"]
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert errors == [f"error: nano33.yaml:{line} ram_byts: unknown key; did you mean ram_bytes?",
                      "error: empty.yaml:1 empty file; expected board settings (name, core, "
                      "clock_hz, ...)"]
    assert "Traceback" not in proc.stderr


def test_list_json_has_every_board():
    proc = kws("boards", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    boards = json.loads(proc.stdout)["boards"]
    assert [b["id"] for b in boards] == list(SHIPPED)
    nano = boards[0]
    assert nano["core"] == "cortex-m4f" and nano["budget"]["ram_bytes"] > 0
    assert nano["platformio"]["board"] == "nano33ble"


def test_list_table():
    result = CliRunner().invoke(app, ["boards", "list"])
    assert result.exit_code == 0, result.output
    for board_id in SHIPPED:
        assert board_id in result.output
    assert "nordicnrf52@" in result.output and "semihosting" in result.output


def test_list_fails_on_a_broken_board_file(tmp_path, monkeypatch):
    for board_id in ("qemu_m4", "nano_rp2040"):
        (tmp_path / f"{board_id}.yaml").write_text((boards_dir() / f"{board_id}.yaml").read_text())
    bad, line = misspelt_nano33(tmp_path)
    monkeypatch.setattr("kws.boards_dir", lambda: tmp_path)
    result = CliRunner().invoke(app, ["boards", "list", "--json"])
    assert isinstance(result.exception, KwsError)  # kws.cli.main prints it and exits 2
    assert str(result.exception) == f"{bad}:{line} ram_byts: unknown key; did you mean ram_bytes?"
    assert result.stdout == ""


def test_list_exits_2_with_one_line(tmp_path):
    bad, line = misspelt_nano33(tmp_path)
    code = ("import pathlib, sys, kws; folder = pathlib.Path(sys.argv.pop(1)); "
            "kws.boards_dir = lambda: folder; from kws.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), "boards", "list"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert errors == [f"error: {bad}:{line} ram_byts: unknown key; did you mean ram_bytes?"]
