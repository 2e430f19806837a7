"""`confusion.png`: the confusion matrix as a heat map, drawn without a display.

Uses matplotlib's object API (`Figure` + the Agg canvas), so importing this module or calling
it never selects a GUI backend or touches pyplot's global state. Drawing happens under
matplotlib's default style (a user's matplotlibrc does not change the picture) and the PNG
carries no "Software" stamp, so the same input gives the same bytes with the same matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kws.errors import KwsError

DPI = 100


def confusion_png(confusion: Sequence[Sequence[int]] | np.ndarray, labels: Sequence[str],
                  path: str | Path, title: str) -> Path:
    """Write a confusion-matrix heat map to `path` (PNG) and return the path.

    `confusion[i][j]` counts clips of true label i predicted as label j (the orientation of
    `classification_report`). Cell colors are row-normalized (share of the true label's clips,
    so rare classes read as clearly as common ones; square-root scale so small confusions show);
    each cell prints its raw count. The title
    is `title` followed by the accuracy (trace / total) and the number of clips.
    """
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    counts = np.asarray(confusion)
    labels = [str(label) for label in labels]
    n = len(labels)
    if counts.ndim != 2 or counts.shape != (n, n):
        raise KwsError(f"confusion_png: confusion has shape {counts.shape}, expected ({n}, {n}) "
                       f"for {n} labels")
    if n == 0:
        raise KwsError("confusion_png: no labels given")
    if not np.all(np.isfinite(counts)) or counts.min() < 0 or np.any(counts != np.round(counts)):
        raise KwsError("confusion_png: confusion must hold non-negative whole counts")
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    accuracy = np.trace(counts) / total if total else 0.0
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)

    side = max(4.0, 0.62 * n + 2.6)  # ~10 in for 12 classes
    font = 10 if n <= 12 else max(5, int(10 * 12 / n))
    path = Path(path)

    with matplotlib.style.context("default"):
        fig = Figure(figsize=(side + 1.2, side), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        # gamma 0.5: a 2 % confusion is already a visible tint, the diagonal stays dark
        norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
        image = ax.imshow(share, cmap="Blues", norm=norm, interpolation="nearest")
        cbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        cbar.set_ticks([0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 1.0])
        cbar.set_label("share of the true label's clips")

        ticks = np.arange(n)
        ax.set_xticks(ticks, labels, rotation=45, ha="right", rotation_mode="anchor",
                      fontsize=font)
        ax.set_yticks(ticks, labels, fontsize=font)
        ax.set_xlabel("predicted label")
        ax.set_ylabel("true label")
        ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=1.0)
        ax.tick_params(which="minor", length=0)
        for i in range(n):
            for j in range(n):
                color = "white" if norm(share[i, j]) > 0.6 else "black"
                if counts[i, j] == 0:
                    color = "#b8b8b8"  # zeros stay legible but recede
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=font - 1,
                        color=color)
        ax.set_title(f"{title}\naccuracy {accuracy * 100:.1f}% on {total} clips", fontsize=12)
        save_png(fig, path, "confusion plot")
    return path


def save_png(fig, path: Path, what: str, dpi: int = DPI) -> None:
    """Lay out and write a figure as a byte-stable PNG (no software tag); one-line error."""
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=dpi, metadata={"Software": None})
    except OSError as exc:
        raise KwsError(f"{path}: cannot write the {what} ({exc.strerror})") from None
