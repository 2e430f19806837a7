"""Numbers -> C literal text, prepared in Python so templates only print."""

from __future__ import annotations

from typing import Iterable

import numpy as np


def c_float(value: float) -> str:
    """A float32 as a C literal that parses back to the very same float32 (9 significant
    digits always round-trip)."""
    v = float(np.float32(value))
    if not np.isfinite(v):
        raise ValueError(f"non-finite value {v} cannot be a C constant")
    return f"{v:.8e}f"


def rows(values: Iterable[str], per_row: int = 8) -> list[str]:
    """Comma-terminated rows of already formatted literals, for a template loop."""
    items = list(values)
    return [", ".join(items[i : i + per_row]) + "," for i in range(0, len(items), per_row)]


def float_rows(values: np.ndarray, per_row: int = 6) -> list[str]:
    return rows((c_float(v) for v in np.asarray(values).ravel()), per_row)


def int_rows(values: np.ndarray, per_row: int = 16) -> list[str]:
    return rows((str(int(v)) for v in np.asarray(values).ravel()), per_row)
