"""Results of many trainings, one JSON line each, written the moment each one finishes.

An interrupted sweep or cross-validation keeps every line already written; `--resume` reads
them back and skips the runs that succeeded (failed runs are tried again).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from kws.errors import KwsError


def settings_digest(config) -> str:
    """12 hex digits naming a training's full settings (a pydantic model): the same settings,
    the same name, so --resume matches exactly the trainings already done."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class ResultLog:
    """Append-only JSONL: {"key", "settings", "result"} or {"key", "settings", "error"}."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path is not None else None

    def rows(self) -> list[dict]:
        if self.path is None or not self.path.is_file():
            return []
        rows = []
        lines = self.path.read_text().splitlines()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                # a line cut short by a kill mid-write: the run it belonged to is done again
                if n == len(lines):
                    continue
                raise KwsError(f"{self.path}:{n}: not a JSON line (a results file of kws)") from None
            if not isinstance(row, dict) or "key" not in row:
                raise KwsError(f"{self.path}:{n}: a JSON line without a run key")
            rows.append(row)
        return rows

    def done(self) -> dict[str, dict]:
        """key -> the last successful row of that key."""
        return {r["key"]: r for r in self.rows() if "result" in r}

    def start(self, resume: bool) -> None:
        """A fresh log unless resuming (an existing log without --resume is an error, so a
        finished sweep is never overwritten by accident)."""
        if self.path is None:
            return
        if self.path.exists() and not resume:
            raise KwsError(f"{self.path}: already holds results; use --resume to continue, or "
                           "another output folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()

    def record(self, key: str, settings: dict, result: dict | None, error: str | None) -> dict:
        """Append one finished task (its result, or its error) and return the row."""
        row = {"key": key, "settings": settings,
               **({"result": result} if result is not None else {"error": error})}
        self.append(row)
        return row

    def append(self, row: dict) -> None:
        if self.path is None:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
