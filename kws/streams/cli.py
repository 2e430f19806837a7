"""`kws streams eval|tune`: FRR and false accepts per hour on continuous test streams."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from kws.errors import KwsError

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

streams_app = typer.Typer(
    help="Continuous test streams: FRR per keyword, false accepts per hour, recognizer tuning.",
    no_args_is_help=True,
)

ModelOpt = Annotated[Path, typer.Option("--model", help="Run folder written by `kws train`.")]
DataOpt = Annotated[Optional[list[Path]], typer.Option(
    "--data", help="Speech Commands style folder; repeat to combine (default: the shared data).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
FA_LEVELS = (0.5, 1.0, 2.0, 5.0)
SnrOpt = Annotated[str, typer.Option("--snr", help="Comma-separated SNRs in dB (speech active level over the noise); one keyword stream each.")]


def _snrs(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise KwsError(f"--snr {text}: give numbers in dB, e.g. 20,10,5") from None
    if not values:
        raise KwsError("--snr: give at least one SNR")
    return values


def _dataset(bundle, data: list[Path] | None):
    from kws.data.dataset import default_data_roots, index_folders
    from kws.export.read import data_config

    roots, _ = default_data_roots(data or [])
    if not roots:
        raise KwsError("no data: pass --data DIR (a Speech Commands style folder); the shared "
                       "folders in ../shared/data/ are absent")
    return index_folders(roots, data_config(bundle))


def _progress(msg: str) -> None:
    err.print(f"[dim]{msg}[/]", highlight=False)


def _sweep_summary(points) -> list[dict]:
    from kws.streams.score import best_under

    rows = []
    for level in FA_LEVELS:
        p = best_under(points, level)
        rows.append({"max_fa_per_hour": level,
                     "threshold": p.threshold if p else None,
                     "frr": round(p.tally.frr(), 4) if p else None,
                     "fa_per_hour": round(p.tally.fa_per_hour(), 3) if p else None})
    return rows


def _plot(points, path: Path, title: str, operating=None) -> Path:
    from kws.report.roc import roc_png
    from kws.streams.score import curve

    t = points[0].tally
    curves = {w: curve(points, w)[1:] for w in t.keywords}
    curves["all keywords"] = curve(points)[1:]
    return roc_png(curves, path, title, t.hours, operating_point=operating)


def _tally_table(title: str, d: dict) -> Table:
    table = Table(title=title)
    for col in ("keyword", "events", "missed", "FRR", "false accepts", "FA/h"):
        table.add_column(col, justify="right" if col != "keyword" else "left")
    for w, r in d["per_keyword"].items():
        table.add_row(w, str(r["events"]), str(r["missed"]), f"{r['frr']:.1%}",
                      str(r["false_accepts"]), f"{r['fa_per_hour']:.2f}")
    table.add_row("[bold]all[/]", str(d["events"]), str(d["missed"]), f"[bold]{d['frr']:.1%}[/]",
                  str(d["false_accepts"]), f"[bold]{d['fa_per_hour']:.2f}[/]")
    return table


@streams_app.command("eval")
def eval_cmd(
    model: ModelOpt,
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="validation | test (the training run's speakers)")] = "test",
    minutes: Annotated[float, typer.Option(min=1, help="Minutes of keyword-free (negative) audio for the FA/h figure.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Stream seed (same seed, same audio).")] = 0,
    snr: SnrOpt = "20,10,5",
    plot: Annotated[Optional[Path], typer.Option(help="Write the FRR vs FA/h plot (PNG) here.")] = None,
    drop_blocks: Annotated[float, typer.Option(min=0, max=1, help="Also score with this fraction of audio blocks lost before the firmware (e.g. 0.01).")] = 0.0,
    drift_ppm: Annotated[float, typer.Option(help="Also score with the mic clock off by this many ppm (e.g. 1000).")] = 0.0,
    json_out: JsonOpt = False,
) -> None:
    """Build the split's streams, run the device pipeline, score at the manifest's settings
    (and, with --drop-blocks / --drift-ppm, again under those impairments)."""
    from kws.export.read import load_bundle
    from kws.recognize.recognizer import RecognizerConfig
    from kws.streams.build import SuiteSpec
    from kws.streams.score import false_accept_causes, sweep, tally
    from kws.streams.tune import collect, cost, per_snr, unit_costs

    if split not in ("validation", "test", "train"):
        raise KwsError(f"--split {split}: not one of validation, test, train")
    t0 = time.time()
    bundle = load_bundle(model)
    m = bundle.manifest
    dataset = _dataset(bundle, data)
    k = m.streaming.resets
    runs = collect(bundle, dataset, split, (k,), SuiteSpec(_snrs(snr), negative_minutes=minutes, seed=seed),
                   progress=_progress)
    config = RecognizerConfig.from_manifest(m)
    at = tally(runs.runs[k], config).as_dict()
    points = sweep(runs.runs[k], config)
    result = {
        "model": str(model), "split": split, "resets": k,
        "recognizer": m.recognizer.model_dump(), "window_decisions": config.window,
        "at_manifest": at, "false_accept_causes": false_accept_causes(runs.runs[k], config),
        "sweep": _sweep_summary(points), "audio": runs.info,
        "per_snr": per_snr(runs.runs[k], config), "cost": cost(k, 1000.0 / m.features.hop_ms, units=unit_costs(bundle)), "wall_s": round(time.time() - t0, 1),
    }
    from kws.streams.impair import Impairment

    imp = Impairment(drop_blocks, drift_ppm=drift_ppm, seed=seed)
    if imp.active:
        bad = collect(bundle, dataset, split, (k,), SuiteSpec(_snrs(snr), negative_minutes=minutes,
                                                            seed=seed),
                      progress=_progress, impairment=imp)
        result["impaired"] = {"impairment": imp.describe(),
                              "at_manifest": tally(bad.runs[k], config).as_dict()}
    if plot is not None:
        _plot(points, plot, f"{model.name}: {split} streams, K={k}, window {config.window} "
              f"decision(s), suppression {config.suppression_ms} ms, min count {config.min_count}"
              f"\nSNR {'/'.join(f'{v:g}' for v in _snrs(snr))} dB + keyword-free audio; star = "
              "the manifest's threshold",
              operating=(at["fa_per_hour"], at["frr"]))
        result["plot"] = str(plot)
    if json_out:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    info = runs.info
    out.print(_tally_table(f"{split} streams at the manifest's recognizer "
                           f"(K={k}, threshold {m.recognizer.threshold})", at))
    out.print(f"FA/h: {at['fa_per_hour']:.2f} over all {at['hours']:.2f} h "
              f"(negative {at['fa_per_hour_negative']:.2f} over {at['hours_negative']:.2f} h, "
              f"keyword streams {at['fa_per_hour_keyword_streams']:.2f})")
    causes = result["false_accept_causes"]
    out.print("false accepts heard over: " + ", ".join(
        f"{name.replace('_', ' ')} {n}" for name, n in causes.items()))
    out.print(f"audio: {info['keyword_events']} keyword events from {info['speakers']} speakers, "
              f"{info['distinct_clips_used']} distinct clips, SNR {info['snrs_db']} dB")
    out.print("FRR / FA/h per SNR (dB): " + ", ".join(
        f"{k}: {v['frr']:.1%} / {v['fa_per_hour']:.1f}" for k, v in result["per_snr"].items()))
    for row in result["sweep"]:
        if row["threshold"] is None:
            out.print(f"  <= {row['max_fa_per_hour']:g} FA/h: not reached by any threshold")
        else:
            out.print(f"  <= {row['max_fa_per_hour']:g} FA/h: FRR {row['frr']:.1%} at threshold "
                      f"{row['threshold']:.3f} ({row['fa_per_hour']:.2f} FA/h)")
    if "impaired" in result:
        b = result["impaired"]["at_manifest"]
        out.print(f"with {result['impaired']['impairment']}: FRR {b['frr']:.1%} (clean "
                  f"{at['frr']:.1%}), FA/h {b['fa_per_hour']:.2f} (clean {at['fa_per_hour']:.2f})")
    if plot is not None:
        err.print(f"wrote {plot}")


@streams_app.command("health")
def health_cmd(
    model: ModelOpt,
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="validation | test (the training run's speakers)")] = "test",
    minutes: Annotated[float, typer.Option(min=1, help="Minutes of keyword-free audio heard as one stream (one state, never reset).")] = 120.0,
    seed: Annotated[int, typer.Option(help="Stream seed (same seed, same audio as `streams eval`).")] = 0,
    snr: SnrOpt = "20,10,5",
    parts: Annotated[int, typer.Option(min=1, help="Report each of this many equal stretches of time too.")] = 4,
    json_out: JsonOpt = False,
) -> None:
    """Hours of keyword-free audio as ONE stream: false accepts per hour over time and how often
    the int8 state sits at its limits (a state that drifts into false accepts is a defect)."""
    from kws.export.read import load_bundle
    from kws.streams.health import state_health

    if split not in ("validation", "test", "train"):
        raise KwsError(f"--split {split}: not one of validation, test, train")
    bundle = load_bundle(model)
    result = state_health(bundle, _dataset(bundle, data), split, minutes, _snrs(snr), seed,
                          parts, progress=_progress)
    result["model"] = str(model)
    if json_out:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    table = Table(title=f"{model.name}: {result['minutes']:g} min of keyword-free {split} audio,"
                        f" {'one state never reset' if result['one_state'] else 'clip mode'}")
    for col in ("stretch", "minutes", "false accepts", "FA/h", "state at int8 limits",
                "mean |state|"):
        table.add_column(col, justify="right")
    rows = [(f"{i + 1} of {len(result['parts'])}", p) for i, p in enumerate(result["parts"])]
    for name, p in rows + [("whole", result["whole"])]:
        limit = p["state_at_int8_limits"]
        table.add_row(name, f"{p['seconds'] / 60:.1f}", str(p["false_accepts"]),
                      f"{p['fa_per_hour']:.2f}" if p["fa_per_hour"] is not None else "-",
                      f"{limit:.3%}" if limit is not None else "-",
                      f"{p['state_mean_abs']:.1f}" if p["state_mean_abs"] is not None else "-")
    out.print(table)
    if result["false_accept_labels"]:
        out.print("false accepts as: " + ", ".join(result["false_accept_labels"]))


@streams_app.command("compare")
def compare_cmd(
    models: Annotated[list[Path], typer.Option("--model", help="Run folder; repeat (first = the reference, e.g. the clip model).")],
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="validation | test (the training run's speakers)")] = "test",
    minutes: Annotated[float, typer.Option(min=1, help="Minutes of keyword-free audio.")] = 120.0,
    seed: Annotated[int, typer.Option(help="Stream seed (same seed, same audio).")] = 0,
    snr: SnrOpt = "20,10,5",
    plot: Annotated[Optional[Path], typer.Option(help="ROC of every model's pooled curve (PNG).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Bundles on the same streams: pooled and per-keyword FRR at 0.5 / 1 / 2 / 5 FA/h (each at
    its own recognizer, threshold swept), cost per second of audio, flash and RAM."""
    from kws.export.read import load_bundle
    from kws.report.roc import roc_png
    from kws.streams.build import SuiteSpec
    from kws.streams.compare import beats_everywhere, compare

    if split not in ("validation", "test", "train"):
        raise KwsError(f"--split {split}: not one of validation, test, train")
    bundles = [load_bundle(m) for m in models]
    dataset = _dataset(bundles[0], data)
    result = compare(bundles, dataset, split, SuiteSpec(_snrs(snr), negative_minutes=minutes,
                                                        seed=seed), progress=_progress)
    curves = result.pop("_curves")
    if len(bundles) > 1:
        result["second_beats_first_at_every_level"] = beats_everywhere(result)
    if plot is not None:
        roc_png(curves, plot, f"{split} streams, SNR {'/'.join(f'{v:g}' for v in _snrs(snr))} dB"
                f" + {minutes:g} min keyword-free audio: each model at its recognizer, "
                "threshold swept", result["hours"], pooled="")
        result["plot"] = str(plot)
    if json_out:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    table = Table(title=f"{split} streams, {result['hours']:.2f} h: FRR at <= N false accepts "
                        "per hour (threshold swept)")
    table.add_column("model")
    for level in result["fa_levels"]:
        table.add_column(f"<= {level:g} FA/h", justify="right")
    table.add_column("M instr / s", justify="right")
    table.add_column("flash / RAM", justify="right")
    for row in result["models"]:
        mem = row["memory"]
        table.add_row(row["name"], *[f"{lv['frr']:.1%}" if lv["frr"] is not None else "-"
                                     for lv in row["levels"]],
                      f"{row['cost']['instructions_per_second'] / 1e6:.2f}",
                      f"{mem['flash_bytes']:,} / {mem['ram_bytes']:,}" if "flash_bytes" in mem
                      else "-")
    out.print(table)
    for row in result["models"]:
        lv = next((x for x in row["levels"] if x["max_fa_per_hour"] == 2.0), None)
        if lv and lv["frr_per_keyword"]:
            out.print(f"{row['name']} at <= 2 FA/h: " + ", ".join(
                f"{w} {v:.0%}" for w, v in lv["frr_per_keyword"].items()))
    if plot is not None:
        err.print(f"wrote {plot}")


@streams_app.command("tune")
def tune_cmd(
    model: ModelOpt,
    data: DataOpt = None,
    minutes: Annotated[float, typer.Option(min=1, help="Minutes of negative audio per split.")] = 60.0,
    snr: SnrOpt = "20,10,5",
    max_fa: Annotated[float, typer.Option("--max-fa", help="False accepts per hour allowed.")] = 2.0,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Result JSON (default: RUN/stream_tuning.json).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="ROC of the chosen setting on test streams (default: RUN/roc.png).")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Write the chosen settings into RUN/manifest.json.")] = False,
    ks: Annotated[str, typer.Option("--ks", help="Comma-separated numbers of staggered model states to try (each costs one model step per frame on the device). Clip-mode bundles only: a continuous bundle runs one state.")] = "1,2,3,4",
    json_out: JsonOpt = False,
) -> None:
    """Pick K and the recognizer settings on validation streams; score the choice on test."""
    from kws.export.read import load_bundle
    from kws.streams.build import SuiteSpec
    from kws.streams.tune import apply_tuning, tune

    bundle = load_bundle(model)
    dataset = _dataset(bundle, data)
    try:
        k_values = tuple(sorted({int(v) for v in ks.split(",") if v.strip()}))
    except ValueError:
        raise KwsError(f"--ks {ks}: give whole numbers, e.g. 1,2") from None
    if not k_values or min(k_values) < 1:
        raise KwsError(f"--ks {ks}: give at least one K >= 1")
    if bundle.manifest.streaming.mode == "continuous":
        if ks != "1,2,3,4" and k_values != (1,):
            err.print(f"--ks {ks} ignored: this continuous bundle runs one state that is never "
                      "reset (K=1); only the recognizer is tuned")
        k_values = (1,)
    result, extra = tune(bundle, dataset, SuiteSpec(_snrs(snr), negative_minutes=minutes),
                         ks=k_values, max_fa_per_hour=max_fa, progress=_progress)
    out_file = out_file or Path(model) / "stream_tuning.json"
    plot = plot or Path(model) / "roc.png"
    c = result.chosen
    _plot(extra["sweep"], plot,
          f"{Path(model).name}: test streams, chosen K={c['resets']}, window "
          f"{c['window_decisions']} decision(s), suppression {c['recognizer']['suppression_ms']} "
          f"ms, min count {c['recognizer']['minimum_count']} (threshold swept)\n"
          f"SNR {'/'.join(f'{v:g}' for v in _snrs(snr))} dB + keyword-free audio; "
          f"chosen on validation, star = its test figure",
          operating=(result.test["fa_per_hour"], result.test["frr"]))
    data_out = result.as_dict()
    data_out["plot"] = str(plot)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(data_out, indent=1) + "\n")
    if apply:
        apply_tuning(model, result)
        data_out["applied"] = True
    if json_out:
        sys.stdout.write(json.dumps(data_out) + "\n")
        return
    out.print(f"chosen on validation: K={c['resets']} {c['recognizer']} "
              f"({'meets' if result.met_target_on_validation else 'MISSES'} "
              f"<= {max_fa:g} FA/h)")
    out.print(_tally_table("validation streams (tuned on)", result.validation))
    out.print(_tally_table("test streams (held out)", result.test))
    cur = result.current
    out.print(f"current manifest (K={cur['resets']}, {cur['recognizer']}): test FRR "
              f"{cur['test']['frr']:.1%} at {cur['test']['fa_per_hour']:.2f} FA/h")
    out.print(f"cost of K={c['resets']}: {result.cost['chosen']['instructions_per_second']:,} "
              "guest instructions per second of audio")
    advice = f"{'apply' if result.recommend_apply else 'do not apply'}: {result.reason}"
    out.print(f"stored in {Path(model) / 'manifest.json'} (--apply); advice was {advice}" if apply
              else advice)
    err.print(f"wrote {out_file} and {plot} in {result.wall_s:.0f} s")
