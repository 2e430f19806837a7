"""Two or more bundles on the SAME streams: FRR pooled and per keyword at fixed false accepts
per hour, the cost on the chip and the memory, and one ROC with every bundle's pooled curve.

Each bundle runs at its manifest's recognizer (averaging window, suppression, minimum count,
K); only the threshold is swept, so a point "at <= 1 FA/h" is the lowest FRR any threshold of
that recognizer reaches within that false-accept rate on these streams (an oracle threshold on
test audio: it compares models, it is not a shipped setting; `kws streams tune` picks those on
validation streams).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Sequence

from kws.streams.build import SuiteSpec

FA_LEVELS = (0.5, 1.0, 2.0, 5.0)


def _memory(bundle, board: str) -> dict:
    from kws.codegen.project import generate
    from kws.errors import KwsError

    try:
        with tempfile.TemporaryDirectory(prefix="kws-compare-") as tmp:
            b = generate(bundle.folder, board, Path(tmp) / "fw", force=True).budget
        return {"board": board, "flash_bytes": b.flash_bytes, "ram_bytes": b.ram_bytes}
    except KwsError as exc:
        return {"board": board, "unavailable": str(exc)}


def _cost(bundle) -> dict:
    from kws.recognize.recognizer import RecognizerConfig
    from kws.streams.tune import cost, is_continuous, recognizer_units, unit_costs

    m = bundle.manifest
    per_decision = {}
    if is_continuous(m):
        period = RecognizerConfig.from_manifest(m).decision_period_ms
        per_decision = {"decisions_per_second": 1000.0 / period,
                        "recognizer_instructions": recognizer_units(m)}
    return cost(m.streaming.resets, 1000.0 / m.features.hop_ms, units=unit_costs(bundle),
                **per_decision)


def compare(bundles: Sequence, dataset, split: str, spec: SuiteSpec,
            progress: Callable[[str], None] = lambda _m: None,
            board: str = "nano33") -> dict:
    from kws.recognize.recognizer import RecognizerConfig
    from kws.streams.score import best_under, sweep, tally
    from kws.streams.tune import collect, is_continuous

    rows, curves, hours = [], {}, 0.0
    for bundle in bundles:
        m = bundle.manifest
        k = m.streaming.resets
        runs = collect(bundle, dataset, split, (k,), spec, progress=progress).runs[k]
        config = RecognizerConfig.from_manifest(m)
        points = sweep(runs, config)
        at = tally(runs, config)
        keywords = points[0].tally.keywords
        levels = []
        for level in FA_LEVELS:
            p = best_under(points, level)
            levels.append({
                "max_fa_per_hour": level,
                "threshold": p.threshold if p else None,
                "fa_per_hour": round(p.tally.fa_per_hour(), 3) if p else None,
                "frr": round(p.tally.frr(), 4) if p else None,
                "frr_per_keyword": ({w: round(p.tally.frr(w), 4) for w in keywords}
                                    if p else None)})
        name = f"{bundle.folder.name} ({'one state' if is_continuous(m) else f'clip, K={k}'})"
        curves[name] = ([p.tally.fa_per_hour() for p in points],
                        [p.tally.frr() for p in points])
        hours = points[0].tally.hours
        rows.append({
            "model": str(bundle.folder), "name": name, "mode": m.streaming.mode,
            "resets": k, "units": m.state.units, "hop_ms": m.features.hop_ms,
            "recognizer": m.recognizer.model_dump(),
            "at_manifest": {"frr": round(at.frr(), 4), "fa_per_hour": round(at.fa_per_hour(), 3),
                            "events": at.as_dict()["events"]},
            "levels": levels, "cost": _cost(bundle), "memory": _memory(bundle, board),
            "tflite_bytes": len(bundle.tflite)})
    return {"split": split, "hours": round(hours, 3), "snrs_db": list(spec.snrs_db),
            "negative_minutes": spec.negative_minutes, "fa_levels": list(FA_LEVELS),
            "models": rows, "_curves": curves}


def beats_everywhere(result: dict, better: int = 1, worse: int = 0) -> bool:
    """Whether model `better` has a lower pooled FRR than model `worse` at every FA/h level
    (a level one of them cannot reach counts as FRR 100%)."""
    def frr(row, i):
        v = row["levels"][i]["frr"]
        return 1.0 if v is None else v

    a, b = result["models"][better], result["models"][worse]
    return all(frr(a, i) < frr(b, i) for i in range(len(result["fa_levels"])))
