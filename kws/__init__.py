"""kws: train a GRU keyword spotter and generate Cortex-M firmware for it."""

from pathlib import Path

__version__ = "0.1.0"

REPO_ROOT = Path(__file__).resolve().parent.parent


def templates_dir() -> Path:
    """Where the Jinja templates and portable C sources live.

    In an editable install (the only kind `make setup` makes) they are the repo's
    `firmware_templates/`; a wheel carries a copy inside the package.
    """
    repo = REPO_ROOT / "firmware_templates"
    if repo.is_dir():
        return repo
    return Path(__file__).resolve().parent / "_firmware_templates"


def boards_dir() -> Path:
    """Where the board files (`<id>.yaml`) live: the repo's `boards/` in a checkout, a copy
    inside the package in a wheel (same rule as templates_dir)."""
    repo = REPO_ROOT / "boards"
    if repo.is_dir():
        return repo
    return Path(__file__).resolve().parent / "_boards"
