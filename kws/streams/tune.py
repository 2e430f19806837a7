"""Pick the recognizer defaults and the number of staggered states K on validation streams.

Why a grid on streams: clip accuracy does not say how often the device fires on continuous
audio. The device's decisions (int8 logits per decision) depend only on the model and K, not
on the recognizer, so each stream's decisions are computed once per K with the device's own C
code (host build), and the (cheap, exact) recognizer is re-run for every setting.

Rule: among all settings with FA/h (over all validation audio) <= `max_fa_per_hour`, take the
lowest pooled FRR; ties go to fewer false accepts, then the smaller K (cheaper), then the
higher threshold. When no setting meets the limit, the one with the fewest false accepts wins
(and the result says the target was missed). Test streams are only scored for the choice.

K costs K model steps per frame on the device: see `cost`.

A continuous bundle (`streaming.mode = "continuous"`, a streaming-trained model) runs one state
that is never reset: its decisions come from one run per stream (NativeModel.run_sequence), K is
always 1 (`ks` is ignored), and the windows swept are those of per-frame decisions
(WINDOWS_MS_CONTINUOUS). Its cost is one model step per frame plus features plus the recognizer
per decision.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kws.errors import KwsError
from kws.recognize.recognizer import RecognizerConfig, round_half_up, window_decisions
from kws.recognize.stream import Schedule
from kws.streams.build import NEGATIVE, StreamConfig, SuiteSpec, stream_suite
from kws.streams.score import (
    TOLERANCE_S, Decisions, StreamRun, Tally, average, false_accept_causes, fire, named, sweep,
    tally,
)

KS = (1, 2, 3, 4)
WINDOWS_MS = (250, 500, 750, 1000, 1500)
WINDOWS_MS_CONTINUOUS = (100, 200, 300, 400, 500, 600, 800, 1000)
SUPPRESSION_MS = (500, 1000, 1500)
MIN_COUNTS = (1, 2, 3)
# Finer steps near 1: a streaming model that is sharp in clean speech finds its <= 2 FA/h
# point above 0.99, where 0.01 steps would jump past it.
THRESHOLDS = tuple(round(float(x), 4) for x in (*np.arange(0.30, 0.975, 0.01),
                                         *np.arange(0.98, 0.9985, 0.0025)))
MAX_FA_PER_HOUR = 2.0

# Fallback when QEMU or the cross compiler is missing: the default GRU-64 bundle's guest
# instructions on an emulated Cortex-M4 (`kws bench --json`, chip.qemu_m4).
STEP_INSTRUCTIONS = 44_300
FEATURE_INSTRUCTIONS_PER_FRAME = 26_300
RECOGNIZER_INSTRUCTIONS_PER_DECISION = 2_000  # typical figure; measured when QEMU is present


def is_continuous(manifest) -> bool:
    return manifest.streaming.mode == "continuous"


def windows_for(manifest) -> tuple[int, ...]:
    """The averaging windows swept: per-frame decisions want shorter ones."""
    return WINDOWS_MS_CONTINUOUS if is_continuous(manifest) else WINDOWS_MS


def ks_for(manifest, ks: Sequence[int]) -> tuple[int, ...]:
    """The K values tried: those asked plus the manifest's; (1,) for a continuous bundle."""
    if is_continuous(manifest):
        return (1,)
    return tuple(sorted(set(ks) | {manifest.streaming.resets}))


def with_resets(manifest, k: int):
    """The manifest with `streaming.resets = k` (nothing else changed). A continuous bundle
    has one state: only k = 1 is possible."""
    if is_continuous(manifest):
        if int(k) != 1:
            raise KwsError(f"a continuous bundle runs one state that is never reset; K={k} "
                           "is not possible (K applies to clip-mode bundles only)")
        return manifest
    return manifest.model_copy(update={"streaming": manifest.streaming.model_copy(
        update={"resets": int(k)})})


def unit_costs(bundle) -> tuple[float, float, str]:
    """(instructions per feature frame, per model step, source) on an emulated Cortex-M4."""
    from kws.emulate.bench import features_cost, model_cost

    try:
        frame = features_cost("cortex-m4f", bundle.manifest.features)["instructions_per_frame"]
        step = model_cost(bundle.tflite, "cortex-m4f")["instructions_per_step"]
        return frame, step, "measured in QEMU (cortex-m4f)"
    except KwsError:
        return FEATURE_INSTRUCTIONS_PER_FRAME, STEP_INSTRUCTIONS, "typical GRU-64 figures"


def cost(k: int, frames_per_second: float, clock_hz: float = 64e6,
         units: tuple[float, float, str] | None = None,
         decisions_per_second: float | None = None,
         recognizer_instructions: float = RECOGNIZER_INSTRUCTIONS_PER_DECISION) -> dict:
    """Device work for K states: K model steps + one feature frame per frame (the bundle's
    frame rate: 1000 / hop_ms, e.g. 31.25 at a 32 ms hop). With `decisions_per_second`
    (continuous bundles: a decision every decision_frames frames), the recognizer per decision
    is counted too."""
    frame, step, source = units or (FEATURE_INSTRUCTIONS_PER_FRAME, STEP_INSTRUCTIONS,
                                    "typical GRU-64 figures")
    per_s = frames_per_second * (frame + k * step)
    out = {"resets": k, "model_steps_per_frame": k}
    if decisions_per_second is not None:
        per_s += decisions_per_second * recognizer_instructions
        out["decisions_per_second"] = round(decisions_per_second, 3)
        out["recognizer_instructions_per_decision"] = recognizer_instructions
    return {**out, "instructions_per_second": int(per_s),
            "share_of_64mhz_m4_at_1_ipc": round(per_s / clock_hz, 3), "source": source}


def recognizer_units(manifest) -> float:
    """Recognizer instructions per decision on an emulated Cortex-M4 (or a typical figure)."""
    from kws.emulate.bench import recognizer_cost

    try:
        return recognizer_cost(manifest, "cortex-m4f")["instructions_per_decision"]
    except KwsError:
        return RECOGNIZER_INSTRUCTIONS_PER_DECISION


# ------------------------------------------------------------------------------ decisions

def stream_decisions(runner, audio: np.ndarray, ks: Sequence[int]) -> dict[int, Decisions]:
    """The device's decisions on `audio` for each K, from one feature pass and one model run
    over the union of decision windows (equal to StreamRunner(with_resets(m, K)).run)."""
    frames = runner.frames(audio)
    if is_continuous(runner.manifest):  # one run of the one state over the whole stream
        ends, logits = runner.decision_logits(frames)
        sched = runner.schedule
        return {k: Decisions(np.array([sched.time_ms(int(e)) for e in ends], np.int64), logits)
                for k in ks}
    clip = runner.manifest.streaming.clip_frames
    plans = {k: (Schedule.from_manifest(with_resets(runner.manifest, k)), None) for k in ks}
    plans = {k: (s, s.decisions(len(frames))) for k, (s, _) in plans.items()}
    ends = sorted({end for _, plan in plans.values() for end, _ in plan})
    if ends:
        windows = np.lib.stride_tricks.sliding_window_view(frames, clip, axis=0)
        clips = np.ascontiguousarray(windows[np.array(ends) - clip + 1].transpose(0, 2, 1))
        logits = runner.model.run_clips(clips)
    row = {end: i for i, end in enumerate(ends)}
    out = {}
    labels = len(runner.manifest.labels)
    for k, (sched, plan) in plans.items():
        if plan:
            out[k] = Decisions([sched.time_ms(end) for end, _ in plan],
                               logits[[row[end] for end, _ in plan]])
        else:
            out[k] = Decisions(np.zeros(0, np.int64), np.zeros((0, labels), np.int8))
    return out


@dataclass
class SplitRuns:
    split: str
    runs: dict[int, list[StreamRun]]
    info: dict


def collect(bundle, dataset, split: str, ks: Sequence[int], spec: SuiteSpec = SuiteSpec(),
            config: StreamConfig = StreamConfig(), negative: StreamConfig = NEGATIVE,
            progress: Callable[[str], None] = lambda _m: None,
            impairment=None) -> SplitRuns:
    """Build the split's streams one by one and keep only their decisions per K. With an
    `impairment` (kws.streams.impair) each stream loses blocks / drifts before the device
    pipeline hears it."""
    from kws.streams.impair import apply
    from kws.evaluation import backends

    ks = ks_for(bundle.manifest, ks) if is_continuous(bundle.manifest) else ks
    runner = backends.get("native", bundle).stream_runner(with_resets(bundle.manifest, max(ks)))
    runs: dict[int, list[StreamRun]] = {k: [] for k in ks}
    clips: set[str] = set()
    kw_clips: set[str] = set()
    seconds = {"keywords": 0.0, "negative": 0.0}
    notes: list[str] = []
    n_streams = {"keywords": 0, "negative": 0}
    events = 0
    fillers = 0
    for stream in stream_suite(dataset, split, spec, config, negative):
        t0 = time.time()
        if impairment is not None:
            stream = apply(stream, impairment)
        decisions = stream_decisions(runner, stream.audio, ks)
        for k in ks:
            runs[k].append(StreamRun(stream.name, stream.kind, stream.seconds, stream.events,
                                     decisions[k], stream.snr_db, stream.fillers))
        clips |= stream.clips
        kw_clips |= {c for c in stream.clips if stream.kind == "keywords"}
        seconds[stream.kind] += stream.seconds
        n_streams[stream.kind] += 1
        events += len(stream.events)
        fillers += len(stream.fillers)
        notes += [n for n in stream.notes if n not in notes]
        progress(f"{stream.name}: {stream.seconds / 60:.1f} min, {len(stream.events)} keywords, "
                 f"{len(stream.fillers)} unknown words ({time.time() - t0:.1f} s)")
    from kws.streams.build import split_word_clips

    keywords, unknown = split_word_clips(dataset, split)
    speakers = {c.speaker for c in keywords + unknown}
    info = {
        "split": split,
        "speakers": len(speakers),
        "keyword_clips_in_split": len(keywords),
        "unknown_clips_in_split": len(unknown),
        "distinct_clips_used": len(clips),
        "keyword_events": events,
        "unknown_words_placed": fillers,
        "streams": n_streams,
        "snrs_db": list(spec.snrs_db),
        "hours_keyword_streams": round(seconds["keywords"] / 3600, 4),
        "hours_negative": round(seconds["negative"] / 3600, 4),
        "noise_files": len(dataset.noise_files),
        "notes": notes,
    }
    return SplitRuns(split, runs, info)


# ------------------------------------------------------------------------------ the grid

@dataclass(frozen=True)
class Setting:
    resets: int
    average_window_ms: int
    window_decisions: int
    threshold: float
    suppression_ms: int
    minimum_count: int

    def recognizer(self) -> dict:
        return {"average_window_ms": self.average_window_ms, "threshold": self.threshold,
                "suppression_ms": self.suppression_ms, "minimum_count": self.minimum_count}


@dataclass
class GridRow:
    setting: Setting
    frr: float
    fa_per_hour: float
    false_accepts: int = 0

    def as_dict(self) -> dict:
        return {**asdict(self.setting), "frr": round(self.frr, 4),
                "fa_per_hour": round(self.fa_per_hour, 3), "false_accepts": self.false_accepts}


def pick(rows: Sequence[GridRow], max_fa_per_hour: float = MAX_FA_PER_HOUR
         ) -> tuple[GridRow, bool]:
    """(chosen row, whether it meets the FA limit) by the rule in the module docstring."""
    if not rows:
        raise KwsError("tuning: no setting to pick from")
    ok = [r for r in rows if r.fa_per_hour <= max_fa_per_hour and r.frr == r.frr]
    if ok:
        return min(ok, key=lambda r: (r.frr, r.fa_per_hour, r.setting.resets,
                                      -r.setting.threshold)), True
    return min(rows, key=lambda r: (r.fa_per_hour, r.frr, r.setting.resets,
                                    -r.setting.threshold)), False


def canonical_windows(k: int, period_ms: float, windows_ms: Sequence[int]) -> dict[int, int]:
    """{N decisions: average_window_ms} for the windows asked, one ms value per distinct N
    (N * period, rounded, which maps back to N)."""
    out: dict[int, int] = {}
    for ms in windows_ms:
        n = window_decisions(ms, period_ms)
        if n not in out:
            canon = max(1, round_half_up(n * period_ms))
            out[n] = canon if window_decisions(canon, period_ms) == n else int(ms)
    return out


def grid(split_runs: SplitRuns, manifest, windows_ms: Sequence[int] | None = None,
         suppressions_ms: Sequence[int] = SUPPRESSION_MS, min_counts: Sequence[int] = MIN_COUNTS,
         thresholds: Sequence[float] = THRESHOLDS,
         tolerance_s: float = TOLERANCE_S) -> list[GridRow]:
    """Every setting scored on the split's streams (all K in split_runs). `windows_ms`: by
    default `windows_for(manifest)`."""
    windows_ms = windows_for(manifest) if windows_ms is None else windows_ms
    rows = []
    labels = manifest.labels
    keywords = tuple(w for w in labels if not w.startswith("_"))
    for k, runs in sorted(split_runs.runs.items()):
        period = Schedule.from_manifest(with_resets(manifest, k)).decision_period_ms
        for n, ms in canonical_windows(k, period, windows_ms).items():
            base = RecognizerConfig.build(labels, manifest.logits_quant.scale, n, 0.5, 0, 1)
            averaged = [average(base, run.decisions) for run in runs]
            for mc in sorted({min(c, n) for c in min_counts}):
                for sup in suppressions_ms:
                    for thr in thresholds:
                        q15 = round_half_up(thr * 32768)
                        t = Tally(keywords)
                        for run, avg in zip(runs, averaged):
                            dets = fire(avg, q15, mc, sup)
                            t.add(run.kind, run.seconds, run.events, named(labels, dets),
                                  tolerance_s)
                        rows.append(GridRow(Setting(k, ms, n, float(thr), int(sup), int(mc)),
                                            t.frr(), t.fa_per_hour(), t.false_accepts()))
    return rows


def per_snr(runs: Sequence[StreamRun], config: RecognizerConfig,
            tolerance_s: float = TOLERANCE_S) -> dict[str, dict]:
    """FRR (keyword streams) and FA/h (all streams) at each SNR, to see what noise costs."""
    out = {}
    for snr in sorted({r.snr_db for r in runs}, reverse=True):
        t = tally([r for r in runs if r.snr_db == snr], config, tolerance_s)
        out[f"{snr:g}"] = {"frr": round(t.frr(), 4), "fa_per_hour": round(t.fa_per_hour(), 3),
                           "fa_per_hour_negative": round(t.fa_per_hour("negative"), 3)}
    return out


def config_for(manifest, setting: Setting) -> RecognizerConfig:
    m = with_resets(manifest, setting.resets)
    m = m.model_copy(update={"recognizer": m.recognizer.model_copy(update=setting.recognizer())})
    return RecognizerConfig.from_manifest(m)


def current_setting(manifest) -> Setting:
    rp = manifest.recognizer
    period = Schedule.from_manifest(manifest).decision_period_ms
    return Setting(manifest.streaming.resets, rp.average_window_ms,
                   window_decisions(rp.average_window_ms, period), rp.threshold,
                   rp.suppression_ms, rp.minimum_count)


# ------------------------------------------------------------------------------ the result

@dataclass
class TuneResult:
    model: str
    model_sha256: str
    max_fa_per_hour: float
    tolerance_s: float
    chosen: dict
    met_target_on_validation: bool
    validation: dict
    test: dict
    current: dict
    cost: dict
    audio: dict
    grid: dict
    best_per_k: list[dict]
    recommend_apply: bool
    reason: str
    per_snr: dict = field(default_factory=dict)
    wall_s: float = 0.0
    sweep_test: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def tune(bundle, dataset, spec: SuiteSpec = SuiteSpec(), ks: Sequence[int] = KS,
         max_fa_per_hour: float = MAX_FA_PER_HOUR, tolerance_s: float = TOLERANCE_S,
         progress: Callable[[str], None] = lambda _m: None) -> tuple[TuneResult, dict]:
    """Grid on validation streams, the choice scored on test streams. Returns the result and
    {"validation": SplitRuns, "test": SplitRuns} (e.g. for a plot)."""
    t0 = time.time()
    m = bundle.manifest
    ks = ks_for(m, ks)
    progress("validation streams")
    val = collect(bundle, dataset, "validation", ks, spec, progress=progress)
    progress(f"grid over K={list(ks)}")
    rows = grid(val, m, tolerance_s=tolerance_s)
    chosen, met = pick(rows, max_fa_per_hour)
    s = chosen.setting
    per_k = []
    for k in ks:
        rk = [r for r in rows if r.setting.resets == k]
        best, ok = pick(rk, max_fa_per_hour)
        per_k.append({**best.as_dict(), "meets_limit": ok})
    progress("test streams")
    test = collect(bundle, dataset, "test", sorted({s.resets, m.streaming.resets}), spec,
                   progress=progress)
    cfg = config_for(m, s)
    cur = current_setting(m)
    cur_cfg = config_for(m, cur)
    v_t = tally(val.runs[s.resets], cfg, tolerance_s)
    t_t = tally(test.runs[s.resets], cfg, tolerance_s)
    cur_v = tally(val.runs[cur.resets], cur_cfg, tolerance_s)
    cur_t = tally(test.runs[cur.resets], cur_cfg, tolerance_s)
    test_sweep = sweep(test.runs[s.resets], cfg, tolerance_s=tolerance_s)
    recommend, reason = _recommendation(met, t_t, cur_t, max_fa_per_hour, s, cur)
    units = unit_costs(bundle)  # measured once in QEMU, shared by both cost figures
    fps = 1000.0 / m.features.hop_ms
    per_decision = ({"decisions_per_second": 1000.0 / cfg.decision_period_ms,
                     "recognizer_instructions": recognizer_units(m)}
                    if is_continuous(m) else {})
    result = TuneResult(
        model=str(bundle.folder), model_sha256=m.model_sha256, max_fa_per_hour=max_fa_per_hour,
        tolerance_s=tolerance_s,
        chosen={"resets": s.resets, "recognizer": s.recognizer(),
                "window_decisions": s.window_decisions,
                "decision_period_ms": cfg.decision_period_ms},
        met_target_on_validation=met,
        validation={**v_t.as_dict(), "false_accept_causes": false_accept_causes(
            val.runs[s.resets], cfg, tolerance_s)},
        test={**t_t.as_dict(), "false_accept_causes": false_accept_causes(
            test.runs[s.resets], cfg, tolerance_s)},
        current={"resets": cur.resets, "recognizer": cur.recognizer(),
                 "validation": cur_v.as_dict(), "test": cur_t.as_dict()},
        cost={"chosen": cost(s.resets, fps, units=units, **per_decision),
              "current": cost(cur.resets, fps, units=units, **per_decision)},
        audio={"validation": val.info, "test": test.info},
        grid={"settings": len(rows), "ks": list(ks), "windows_ms": list(windows_for(m)),
              "mode": m.streaming.mode,
              "suppression_ms": list(SUPPRESSION_MS), "minimum_counts": list(MIN_COUNTS),
              "thresholds": [THRESHOLDS[0], THRESHOLDS[-1], len(THRESHOLDS)]},
        best_per_k=per_k, recommend_apply=recommend, reason=reason,
        per_snr={"validation": per_snr(val.runs[s.resets], cfg, tolerance_s),
                 "test": per_snr(test.runs[s.resets], cfg, tolerance_s),
                 "test_current": per_snr(test.runs[cur.resets], cur_cfg, tolerance_s)},
        sweep_test=[{"threshold": p.threshold, "frr": round(p.tally.frr(), 4),
                     "fa_per_hour": round(p.tally.fa_per_hour(), 3)} for p in test_sweep],
    )
    result.wall_s = round(time.time() - t0, 1)
    return result, {"validation": val, "test": test, "config": cfg, "sweep": test_sweep}


USEFUL_FRR = 0.5
"""Above this test FRR a setting is not recommended even when it meets the FA limit: a device
that ignores most keywords looks broken, and the fix is the model, not the recognizer."""


def _recommendation(met: bool, test: Tally, current: Tally, limit: float, chosen: Setting,
                    cur: Setting) -> tuple[bool, str]:
    if chosen == cur:
        return False, "the manifest already holds the chosen setting"
    fa, frr = test.fa_per_hour(), test.frr()
    cfa, cfrr = current.fa_per_hour(), current.frr()
    now = f"test: FRR {frr:.1%} at {fa:.2f} FA/h vs the current {cfrr:.1%} at {cfa:.2f} FA/h"
    if not met:
        return False, (f"no setting met {limit:g} FA/h on validation; the model, not the "
                       f"recognizer, limits it ({now})")
    if fa > 2 * limit:
        return False, f"validation met the limit but test did not hold it ({now})"
    if frr > USEFUL_FRR:
        return False, (f"the FA limit is met only by rejecting most keywords ({now}); "
                       "retrain for noise/continuous audio, then re-tune")
    if fa <= max(limit, cfa) and (frr <= cfrr or cfa > limit):
        return True, now
    return False, now


def apply_tuning(run_dir: Path, result: TuneResult | dict) -> Path:
    """Rewrite the bundle manifest's `recognizer` and `streaming.resets` with the result's
    choice, atomically (a temp file in the same folder, then os.replace). Refuses a result
    tuned for another model."""
    from kws.export.manifest import Manifest, read_manifest

    data = result.as_dict() if isinstance(result, TuneResult) else dict(result)
    path = Path(run_dir) / "manifest.json"
    manifest = read_manifest(path)
    if data.get("model_sha256") != manifest.model_sha256:
        raise KwsError(f"{path}: the tuning result is for model {data.get('model_sha256')}, "
                       f"not this bundle's {manifest.model_sha256}")
    chosen = data["chosen"]
    raw = json.loads(path.read_text())
    raw["recognizer"] = dict(chosen["recognizer"])
    raw["streaming"] = {**raw["streaming"], "resets": int(chosen["resets"])}
    try:
        Manifest.model_validate(raw)
    except Exception as exc:  # noqa: BLE001 - any validation problem is a one-line error
        raise KwsError(f"{path}: the tuned settings do not validate ({exc})") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(raw, indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
