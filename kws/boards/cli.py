"""`kws boards list|check`: what boards there are, and whether their files are valid.

Results go to stdout; a bad file is one `error: boards/x.yaml:LINE key: problem` line on
stderr and exit code 2 (`check` reports every bad file before exiting).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kws.errors import KwsError

boards_app = typer.Typer(help="Board files in boards/: list them, check them, preflight a flash.",
                         no_args_is_help=True)

_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)


def _kb(n: int) -> str:
    return f"{n / 1024:g}"


@boards_app.command("list")
def list_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Every board in boards/ with its core, clock, memory, budget, audio and platform."""
    from kws.boards.load import list_boards

    boards = list_boards()
    if json_out:
        sys.stdout.write(json.dumps({"boards": [b.model_dump(mode="json") for b in boards]})
                         + "\n")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column, justify in (("id", "left"), ("core", "left"), ("MHz", "right"),
                            ("flash KB", "right"), ("RAM KB", "right"),
                            ("budget KB flash/RAM", "right"), ("audio", "left"),
                            ("platform", "left"), ("name", "left")):
        table.add_column(column, justify=justify, no_wrap=column != "name")
    for b in boards:
        table.add_row(b.id, b.core, f"{b.clock_hz / 1e6:g}", _kb(b.flash_bytes),
                      _kb(b.ram_bytes), f"{_kb(b.budget.flash_bytes)}/{_kb(b.budget.ram_bytes)}",
                      b.audio.source, b.platformio.platform, b.name)
    # Piped output is not cut to 80 columns: the table is the result.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@boards_app.command("check")
def check_cmd(
    files: Annotated[Optional[list[Path]], typer.Argument(
        help="Board YAML files (default: every boards/*.yaml).")] = None,
) -> None:
    """Validate board files: `ok  FILE (id, core)` per good file, one error line per bad one."""
    from kws.boards.load import board_files, boards_dir, load_board

    paths = list(files) if files else board_files()
    if not paths:
        raise KwsError(f"no board files (*.yaml) in {boards_dir()}")
    failed = 0
    for path in paths:
        try:
            board = load_board(path)
        except KwsError as exc:
            failed += 1
            _err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
            continue
        _out.print(f"ok  {path} ({board.id}, {board.core})", highlight=False, markup=False)
    if failed:
        raise typer.Exit(code=2)


@boards_app.command("preflight")
def preflight_cmd(
    board_id: Annotated[str, typer.Argument(help="Board id (file name in boards/).")],
) -> None:
    """Before `pio run` for a board: stop within seconds when its PlatformIO platform is not
    installed and the registry is unreachable (instead of PlatformIO retrying for minutes)."""
    from kws.boards.load import load_by_id
    from kws.pio.run import ensure_platform
    from kws.pio.setup import toolchain_dir

    board = load_by_id(board_id)
    if board.is_emulated:
        if not (toolchain_dir() / "package.json").is_file():
            raise KwsError(f"{board.id}: the offline PlatformIO toolchain is not prepared; "
                           "run `make setup`")
        return
    ensure_platform(board.platformio.platform, board.id)
