"""Fixtures for the native-backend tests.

- `default_model`: the trained bundle in runs/default, when this checkout has one (CI has no
  trained run; those tests skip and the built models cover the same ground).
- `build_model`: native_models.build_step_model (random-weight GRU step models, cached).
- `zoo`: the built models of native_models.BUILT, plus runs/default when present.
"""

from __future__ import annotations

import pytest
from native_models import BUILT, DEFAULT_MODEL, REPO, build_step_model


@pytest.fixture(scope="session")
def build_model():
    return build_step_model


@pytest.fixture(scope="session")
def default_model() -> bytes:
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"{DEFAULT_MODEL.relative_to(REPO)} not found: no trained run in this checkout "
                    "(as in CI); the built random-weight models cover the same checks")
    return DEFAULT_MODEL.read_bytes()


@pytest.fixture(scope="session")
def zoo() -> dict[str, bytes]:
    """Models the op-level tests draw their quantizations and weights from: the built ones,
    plus runs/default when present (no skip here: the built ones suffice)."""
    models = {name: build_step_model(*spec) for name, spec in BUILT.items()}
    if DEFAULT_MODEL.is_file():
        models["runs/default"] = DEFAULT_MODEL.read_bytes()
    return models
