"""What `kws sweep FILE.yaml` tries: a grid or a random draw over any `--set` keys.

    search: grid                 # or random (then `samples` points drawn with `seed`)
    config: my_recipe.yaml       # optional training settings file (relative to this file)
    set: {epochs: 25, streaming.enabled: false}   # fixed for every point
    params:                      # dotted settings keys -> values to try
      model.units: [64, 96, 128]
      features:                  # a value may set several keys at once
        - {hop_ms: 20}
        - {hop_ms: 32, window_ms: 32}
    score: validation            # validation (int8 accuracy, validation speakers) | cv
    folds: 5                     # score: cv
    boards: {nano33: 0.10, nano_rp2040: 1.0}      # board -> share of its CPU the firmware may use
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from kws.config import Frozen, build, read_config_file
from kws.errors import KwsError
from kws.model.config import TrainConfig, load_train_config


class SweepSpec(Frozen):
    search: Literal["grid", "random"] = "grid"
    samples: int = Field(8, ge=1, description="random search: points to draw")
    seed: int = Field(0, description="random search: which points")
    config: str | None = Field(None, description="training settings file every point starts from")
    set: dict[str, Any] = Field(default_factory=dict, description="settings fixed for every point")
    params: dict[str, list[Any]] = Field(description="settings key -> values to try")
    score: Literal["validation", "cv"] = "validation"
    folds: int = Field(5, ge=2)
    boards: dict[str, float] = Field(default_factory=lambda: {"nano33": 0.10, "nano_rp2040": 1.0},
                                     description="board -> share of its CPU the whole firmware "
                                     "may use (DESIGN.md: 10% of the nano33)")

    @model_validator(mode="after")
    def _check(self) -> "SweepSpec":
        if not self.params:
            raise ValueError("give at least one key under params")
        for key, values in self.params.items():
            if not values:
                raise ValueError(f"params.{key}: give at least one value")
        for board, share in self.boards.items():
            if not 0 < share <= 1:
                raise ValueError(f"boards.{board}: a CPU share in (0, 1], not {share}")
        return self


def load_spec(path: Path) -> tuple[SweepSpec, Path | None]:
    """The spec and its base config path (resolved next to the sweep file)."""
    spec = build(SweepSpec, read_config_file(path), source=str(path))
    from kws.codegen.project import resolve_board

    for board in spec.boards:  # before anything trains, not when the report is drawn
        try:
            resolve_board(board)
        except KwsError as exc:
            raise KwsError(f"{path}: boards.{board}: {exc}") from None
    base = None
    if spec.config:
        base = Path(spec.config)
        if not base.is_absolute():
            base = (Path(path).parent / base) if (Path(path).parent / base).exists() else base
        if not base.is_file():
            raise KwsError(f"{path}: config {spec.config} does not exist")
    return spec, base


def points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every setting to train: the grid in file order, or `samples` distinct grid points drawn
    with `seed` (fewer if the grid is smaller)."""
    keys = list(spec.params)
    grid = [dict(zip(keys, combo)) for combo in itertools.product(*spec.params.values())]
    if spec.search == "random":
        grid = random.Random(spec.seed).sample(grid, min(spec.samples, len(grid)))
    return [flatten(p) for p in grid]


def flatten(point: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"features": {"hop_ms": 32}} -> {"features.hop_ms": 32}: a dict value sets several keys
    (and leaves the group's other settings as they are)."""
    out: dict[str, Any] = {}
    for key, value in point.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def point_config(spec: SweepSpec, base: Path | None, point: dict[str, Any],
                 source: str = "sweep") -> TrainConfig:
    """The full training settings of one point: base file <- `set` <- the point."""
    try:
        return load_train_config(str(base) if base else None, {**spec.set, **point})
    except KwsError as exc:
        raise KwsError(f"{source}: point {json.dumps(point)}: {exc}") from None


def point_key(config: TrainConfig, part: str = "") -> str:
    """Stable name of a training in the results file: digest of its full settings."""
    from kws.cluster.results import settings_digest

    return f"sweep-{settings_digest(config)}{part}"
