"""Boards as data: `boards/<id>.yaml` validated into a frozen `Board` (see schema.py).

    from kws.boards import load_by_id
    board = load_by_id("nano33")      # KwsError "boards/nano33.yaml:LINE key: problem" if bad

Names are imported on first use, so `kws --help` does not pay for pydantic and PyYAML.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LOAD = ("board_files", "board_path", "known_ids", "list_boards", "load_board", "load_by_id")
_SCHEMA = ("Audio", "Board", "BoardRuleError", "Budget", "Led", "PlatformIO", "Power", "Qemu")
__all__ = [
    "Audio", "Board", "BoardRuleError", "Budget", "Led", "PlatformIO", "Power", "Qemu",
    "board_files", "board_path", "known_ids", "list_boards", "load_board", "load_by_id",
]

if TYPE_CHECKING:
    from kws.boards.load import (board_files, board_path, known_ids, list_boards, load_board,
                                 load_by_id)
    from kws.boards.schema import (Audio, Board, BoardRuleError, Budget, Led, PlatformIO, Power,
                                   Qemu)


def __getattr__(name: str) -> Any:
    if name in _LOAD:
        return getattr(importlib.import_module("kws.boards.load"), name)
    if name in _SCHEMA:
        return getattr(importlib.import_module("kws.boards.schema"), name)
    raise AttributeError(f"module 'kws.boards' has no attribute {name!r}")
