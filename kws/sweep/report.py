"""The sweep report: one row per point (score, cost per board, fits the budget), the best
point per board, as JSON, a markdown table and a PNG of accuracy against cost on the chip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.sweep.spec import SweepSpec, points

DPI = 100


def _label(point: dict) -> str:
    return " ".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())


def summarize(spec: SweepSpec, rows: Sequence[dict]) -> list[dict]:
    """Per point (sweep order): score (validation int8 accuracy, or the CV mean over the folds
    that finished), board costs, failures, and whether each board's budget holds."""
    from kws.codegen.project import resolve_board

    budgets = {}
    for board in spec.boards:
        b = resolve_board(board)
        budgets[board] = {"instructions_per_second": spec.boards[board] * b.clock_hz,
                          "flash_bytes": b.budget.flash_bytes, "ram_bytes": b.budget.ram_bytes}
    out = []
    for point in points(spec):
        mine = [r for r in rows if r["settings"]["point"] == point]
        ok = [r["result"] for r in mine if "result" in r]
        folds = [r for r in ok if "int8_tflm_accuracy" in r]
        costs = next((r["boards"] for r in ok if "boards" in r), None)
        entry: dict = {"point": point, "label": _label(point),
                       "failed": [{"part": r["settings"]["part"], "error": r["error"]}
                                  for r in mine if "error" in r]}
        if spec.score == "validation":
            entry["score"] = ok[0]["validation_int8_tflm_accuracy"] if ok else None
            entry["score_float"] = ok[0]["validation_float_accuracy"] if ok else None
        else:
            entry["folds_done"] = len(folds)
            entry["score"] = (float(np.mean([f["int8_tflm_accuracy"] for f in folds]))
                              if folds else None)
            entry["score_float"] = (float(np.mean([f["float_accuracy"] for f in folds]))
                                    if folds else None)
        entry["tflite_bytes"] = next((r["tflite_bytes"] for r in ok if "tflite_bytes" in r), None)
        entry["boards"] = {}
        for board, budget in budgets.items():
            c = (costs or {}).get(board)
            if not c or c.get("instructions_per_second") is None:
                entry["boards"][board] = None
                continue
            fits = (c["instructions_per_second"] <= budget["instructions_per_second"]
                    and c["flash_bytes"] <= budget["flash_bytes"]
                    and c["ram_bytes"] <= budget["ram_bytes"])
            entry["boards"][board] = {**c, "fits": fits}
        out.append(entry)
    return out


def best_per_board(spec: SweepSpec, table: Sequence[dict]) -> dict:
    """board -> the label of the highest-scoring point within its budget (None: none fits)."""
    best = {}
    for board in spec.boards:
        fitting = [e for e in table if e["score"] is not None and e["boards"].get(board)
                   and e["boards"][board]["fits"]]
        # ties go to the cheaper point on that board
        best[board] = max(fitting, key=lambda e: (
            e["score"], -e["boards"][board]["instructions_per_second"]))["label"] if fitting else None
    return best


def markdown(spec: SweepSpec, table: Sequence[dict], best: dict) -> str:
    score = ("validation int8 accuracy" if spec.score == "validation"
             else f"{spec.folds}-fold CV int8 accuracy")
    head = ["setting", score]
    for board in spec.boards:
        head += [f"{board} M instr/s (CPU %)", f"{board} flash KB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in table:
        state = "failed" if e["failed"] else "not done"
        cells = [e["label"], state if e["score"] is None else f"{100 * e['score']:.2f}%"]
        for board in spec.boards:
            c = e["boards"].get(board)
            if c is None:
                cells += ["-", "-"]
                continue
            mark = "" if c["fits"] else " (over)"
            cells += [f"{c['instructions_per_second'] / 1e6:.2f} "
                      f"({100 * c['load_fraction']:.1f}%){mark}", f"{c['flash_bytes'] / 1024:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for board, label in best.items():
        share = 100 * spec.boards[board]
        lines.append(f"- best within {board}'s budget ({share:g}% of its CPU, its flash and RAM "
                     f"budget): {label or 'none fits'}")
    return "\n".join(lines) + "\n"


def png(spec: SweepSpec, table: Sequence[dict], best: dict, path: Path) -> Path:
    """One panel per board: score against that board's instructions per second of audio, the
    board's CPU budget as a dashed line; points over a budget hollow, the best one starred."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from kws.codegen.project import resolve_board

    boards = list(spec.boards)
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(5.2 * max(1, len(boards)), 5.0))
        FigureCanvasAgg(fig)
        if not boards:  # no chip costs asked for: score against model size
            ax = fig.add_subplot(1, 1, 1)
            for e in table:
                if e["score"] is not None and e["tflite_bytes"]:
                    ax.scatter([e["tflite_bytes"] / 1024], [100 * e["score"]], color="C0")
                    ax.annotate(e["label"], (e["tflite_bytes"] / 1024, 100 * e["score"]),
                                textcoords="offset points", xytext=(4, 4), fontsize=7)
            ax.set_xlabel(".tflite KB")
            ax.set_ylabel("int8 accuracy, %")
            ax.grid(True, alpha=0.3)
        for i, board in enumerate(boards):
            ax = fig.add_subplot(1, len(boards), i + 1)
            b = resolve_board(board)
            limit = spec.boards[board] * b.clock_hz / 1e6
            for e in table:
                c = e["boards"].get(board)
                if c is None or e["score"] is None:
                    continue
                x, y = c["instructions_per_second"] / 1e6, 100 * e["score"]
                face = "C0" if c["fits"] else "none"
                ax.scatter([x], [y], s=46, facecolors=face, edgecolors="C0", zorder=3)
                ax.annotate(e["label"], (x, y), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
                if best.get(board) == e["label"]:
                    ax.scatter([x], [y], s=220, marker="*", color="C3", zorder=4,
                               label=f"best: {e['label']}")
            ax.axvline(limit, color="C3", linestyle="--", linewidth=1,
                       label=f"budget {limit:.1f} M/s ({100 * spec.boards[board]:g}% of "
                             f"{b.clock_hz / 1e6:g} MHz)")
            ax.set_xlabel(f"whole firmware, M guest instructions / s of audio ({b.core})")
            ax.set_ylabel("validation int8 accuracy, %" if spec.score == "validation"
                          else f"{spec.folds}-fold CV int8 accuracy, %")
            ax.set_title(f"{board}: flash budget {b.budget.flash_bytes // 1024} KB "
                         "(hollow: over a budget)", fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))  # below: hides no point
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def write_report(spec: SweepSpec, rows: Sequence[dict], out: Path) -> dict:
    """OUT/sweep.json, OUT/sweep.md and OUT/sweep.png from the rows so far."""
    table = summarize(spec, rows)
    best = best_per_board(spec, table)
    report = {"spec": spec.model_dump(mode="json"), "points": table, "best": best}
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "sweep.md").write_text(markdown(spec, table, best))
    png(spec, table, best, out / "sweep.png")
    return report
