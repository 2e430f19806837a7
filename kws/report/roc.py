"""`roc.png`: false rejection rate vs false accepts per hour, per keyword and pooled.

Each curve is a threshold sweep of the streaming recognizer (kws.streams.score.sweep). The
x axis is logarithmic; a point with no false accept at all cannot sit on a log axis, so it is
drawn at `zero_at` (half of one false accept in the audio's hours) and that tick reads "0".
Same object API and determinism as plots.py (no pyplot, default style, no Software stamp).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kws.errors import KwsError
from kws.report.plots import save_png

DPI = 100


def roc_png(curves: dict[str, tuple[Sequence[float], Sequence[float]]], path: str | Path,
            title: str, hours: float, pooled: str = "all keywords",
            target: tuple[float, float] | None = (2.0, 0.10),
            operating_point: tuple[float, float] | None = None) -> Path:
    """Write the plot. `curves[name] = (fa_per_hour, frr)` arrays of one sweep; the curve named
    `pooled` is drawn thick and black. `target` = (FA/h, FRR) shades the acceptable corner;
    `operating_point` = (FA/h, FRR) of the chosen setting is marked."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise KwsError("roc_png: no curves")
    if not hours > 0:
        raise KwsError(f"roc_png: hours of audio must be positive, got {hours}")
    zero_at = 0.5 / hours
    path = Path(path)

    def xs(fa):
        fa = np.asarray(fa, np.float64)
        return np.where(fa > 0, fa, zero_at)

    def envelope(fa, frr):
        """The best FRR reachable at each FA/h of the sweep (thresholds that give the same FA
        but a worse FRR are hidden), as a step curve sorted by FA/h."""
        x, y = xs(fa), np.asarray(frr, np.float64) * 100
        keep = ~np.isnan(x) & ~np.isnan(y)
        x, y = x[keep], y[keep]
        ux = np.unique(x)
        uy = np.array([y[x == v].min() for v in ux])
        return ux, np.minimum.accumulate(uy) if len(uy) else uy

    top = max(max((float(np.nanmax(fa)) for fa, _ in curves.values() if len(fa)), default=1.0),
              10 * zero_at)
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(12, 7), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["tab10"]
        names = [n for n in curves if n != pooled]
        for i, name in enumerate(names):
            ax.step(*envelope(*curves[name]), where="post", color=cmap(i % 10), linewidth=1.4,
                    alpha=0.9, label=name)
        if pooled in curves:
            ax.step(*envelope(*curves[pooled]), where="post", color="black", linewidth=3.0,
                    label=pooled)
        if target is not None:
            tx, ty = target
            ax.fill_between([zero_at * 0.8, tx], 0, ty * 100, color="tab:green", alpha=0.12,
                            label=f"target: FRR <= {ty:.0%} at <= {tx:g} FA/h")
            ax.axvline(tx, color="tab:green", linestyle="--", linewidth=1)
            ax.axhline(ty * 100, color="tab:green", linestyle="--", linewidth=1)
        if operating_point is not None:
            ox, oy = operating_point
            ax.plot([xs([ox])[0]], [oy * 100], marker="*", markersize=16, color="red",
                    markeredgecolor="black", linestyle="none", label="chosen setting")
        ax.set_xscale("log")
        ax.set_xlim(zero_at * 0.8, top * 1.3)
        ax.set_ylim(0, 100)
        ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
                 if zero_at * 1.5 < t < top * 1.3]
        ax.set_xticks([zero_at, *ticks], ["0", *[f"{t:g}" for t in ticks]])
        ax.minorticks_off()
        ax.set_xlabel(f"false accepts per hour (log; {hours:.2f} h of audio)")
        ax.set_ylabel("false rejection rate (%)")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(title, fontsize=12)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, borderaxespad=0)
        save_png(fig, path, "ROC plot", DPI)
    return path
