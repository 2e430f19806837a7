"""The portable C core (firmware_templates/core/) rendered from a Manifest.

`core_sources(manifest, digest)` -> {file name: text} of kws_recognizer.h/.c and kws_app.h/.c.
They include kws_features.h (kws.features.ctables) and kws_model.h (kws.native.cgen, or the
TFLM backend's header with the same API). Every number is prepared here; the templates print.
"""

from __future__ import annotations

from kws.csource.carrays import int_rows
from kws.csource.render import render
from kws.errors import KwsError
from kws.recognize.recognizer import RecognizerConfig
from kws.recognize.stream import Schedule

RECOGNIZER_TEMPLATES = {
    "kws_recognizer.h": "core/kws_recognizer.h.j2",
    "kws_recognizer.c": "core/kws_recognizer.c.j2",
}
APP_TEMPLATES = {
    "kws_app.h": "core/kws_app.h.j2",
    "kws_app.c": "core/kws_app.c.j2",
}
RING_HOPS = 4  # default ring: the smallest power of two holding this many hops
_SIMPLE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    " _-.,:;!#$%&'()+<=>@[]^`{|}~")
_NAMED = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "?": "\\?"}


def c_string(text: str) -> str:
    """`text` as a C string literal that is only ever a string: `"` `\\` and control
    characters escaped, `?` escaped (no trigraphs in C99), `*` and `/` escaped (the literal can
    never open or close a comment), every other byte outside printable ASCII written as a
    three-digit octal escape of its UTF-8 bytes (octal, because a hex escape would swallow
    following hex digits). NUL is refused: C would end the string there."""
    if not isinstance(text, str):
        raise KwsError(f"{text!r} is not text")
    if "\0" in text:
        raise KwsError(f"{text!r}: a NUL character cannot be part of a C string")
    out = []
    for ch in text:
        if ch in _SIMPLE:
            out.append(ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def _decimal(value: float) -> str:
    return f"{value:.6g}"


def recognizer_context(config: RecognizerConfig) -> dict:
    if config.threshold_q15 < 1:
        raise KwsError(f"recognizer threshold {config.threshold_q15}/32768 rounds to 0")
    for label in config.labels:
        if not label:
            raise KwsError("an empty label cannot be reported")
    period = config.decision_period_ms
    return {
        "label_count": len(config.labels),
        "keyword_count": sum(config.keyword),
        "window": config.window,
        "threshold_q15": config.threshold_q15,
        "suppression_ms": config.suppression_ms,
        "min_count": config.min_count,
        "logits_scale": _decimal(config.logits_scale),
        "label_literals": [c_string(lb) for lb in config.labels],
        "keyword_rows": int_rows([int(k) for k in config.keyword]),
        "exp_rows": int_rows(config.exp_table, per_row=12),
        # for the header comment only
        "decision_period_ms": "(not given)" if period is None else _decimal(period),
        "threshold": _decimal(config.threshold_q15 / 32768),
    }


def recognizer_sources(config: RecognizerConfig, digest: str) -> dict[str, str]:
    """kws_recognizer.h/.c alone (they depend on nothing else; tests build them by themselves)."""
    ctx = recognizer_context(config)
    return {name: render(tpl, ctx, digest) for name, tpl in RECOGNIZER_TEMPLATES.items()}


def default_ring_samples(hop_samples: int, hops: int = RING_HOPS) -> int:
    return 1 << max(0, hops * hop_samples - 1).bit_length()


def app_context(manifest, ring_samples: int | None = None) -> dict:
    sched = Schedule.from_manifest(manifest)
    hop = sched.hop_samples
    ring = default_ring_samples(hop) if ring_samples is None else int(ring_samples)
    if ring < hop or ring & (ring - 1) or ring > 1 << 31:
        raise KwsError(f"audio ring of {ring} samples: must be a power of two of at least one "
                       f"hop ({hop} samples)")
    return {
        "states": sched.states,
        "clip_frames": sched.clip_frames,
        "reset_states": 1 if sched.reset else 0,
        "mode": "clip" if sched.reset else "continuous",
        "ring_samples": ring,
        "ring_hops": ring // hop,
        "ring_ms": _decimal(ring * 1000 / sched.sample_rate_hz),
        "decision_period_ms": _decimal(sched.decision_period_ms),
        "start_frame_rows": int_rows(sched.start_frames),
    }


def core_sources(manifest, digest: str, ring_samples: int | None = None) -> dict[str, str]:
    """{file name: text} of the four core files. `ring_samples`: audio ring capacity (a power
    of two >= one hop); by default the smallest power of two holding RING_HOPS hops."""
    files = recognizer_sources(RecognizerConfig.from_manifest(manifest), digest)
    ctx = app_context(manifest, ring_samples)
    files.update({name: render(tpl, ctx, digest) for name, tpl in APP_TEMPLATES.items()})
    return files
