"""`MODEL_CARD.md`: what the model is, what it was trained and measured on, and where it stops.

`render_model_card(info)` takes one nested dict; `CardInfo` below is its exact schema (every
key required unless it shows a default). The metric blocks are the outputs of
`kws.report.metrics.classification_report` and `kws.model.baseline.mean_logmel_baseline` as they
are, and `data.clips` / `data.speakers` match `Dataset.counts()` / `Dataset.speakers()`::

    info = {
        "name": str,                      # run name, e.g. "gru64"
        "model": {
            "architecture": str,          # e.g. "log-mel 40 -> GRU 64 -> Dense 12"
            "params": int,                # trainable parameters
            "tflite_bytes": int,          # size of the int8 .tflite file
            "arena_bytes": int,           # TFLite Micro tensor arena the model needs
            "macs_per_step": int,         # multiply-accumulates per model step (one per hop)
            "ops": [str, ...],            # TFLite builtin ops, e.g. ["FULLY_CONNECTED", "TANH"]
        },
        "data": {
            "folders": [str, ...],        # data roots the clips came from
            "labels": [str, ...],         # class order of the model outputs
            "clips": {label: {"train": int, "validation": int, "test": int}},
            "speakers": {"train": int, "validation": int, "test": int},
            "synthetic_share": float,     # 0..1, share of training clips that are synthetic
            "language": str,              # e.g. "English"
        },
        "metrics": {
            "split": str,                 # the split measured, normally "test"
            "float": classification_report(...),   # Keras model (ece may be None)
            "int8": classification_report(...),    # int8 .tflite model (ece may be None)
            "baseline": mean_logmel_baseline(...), # {"name", "accuracy", "per_class_recall"}
            "step_agreement": float,      # 0..1, share of clips where the one-step model run
                                          # frame by frame predicts what the Keras model does
            "measured": {str: float},     # OPTIONAL, default {}: extra named accuracies, e.g.
                                          # {"test + cafe noise at 5 dB SNR": 0.81}
        },
        "constraints": {
            "sample_rate_hz": int,
            "clip_seconds": float,
            "window_ms": float,
            "hop_ms": float,
            "mel_bands": int,
            "input_scale": float,         # int8 input: real = input_scale * (q - input_zero_point)
            "input_zero_point": int,
        },
    }

Every label of `data.labels` must appear in `data.clips`, in both reports' `per_class` and in
the baseline's `per_class_recall`. A missing key raises `KwsError` naming its dotted path
(e.g. "model card info: missing key 'metrics.int8.per_class.yes'"); the card never prints None.
Only `ece` may be null (shown as "not measured"). Unknown keys are refused (they are typos);
the report dicts may carry extra keys (`confusion`, `labels`, ...).
"""

from __future__ import annotations

from typing import Any

import jinja2
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kws.config import SILENCE_LABEL, UNKNOWN_LABEL
from kws.errors import KwsError

SPLITS = ("train", "validation", "test")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ModelInfo(_Strict):
    architecture: str = Field(description="human-readable layer stack")
    params: int = Field(ge=0, description="trainable parameters")
    tflite_bytes: int = Field(gt=0, description="size of the int8 .tflite file")
    arena_bytes: int = Field(gt=0, description="TFLite Micro tensor arena bytes")
    macs_per_step: int = Field(gt=0, description="multiply-accumulates per model step")
    ops: list[str] = Field(description="TFLite builtin ops the model uses")


class DataInfo(_Strict):
    folders: list[str] = Field(min_length=1, description="data roots")
    labels: list[str] = Field(min_length=1, description="class order of the model outputs")
    clips: dict[str, dict[str, int]] = Field(description="{label: {split: clips}}")
    speakers: dict[str, int] = Field(description="{split: distinct speakers}")
    synthetic_share: float = Field(ge=0, le=1,
                                   description="share of training clips that are synthetic")
    language: str = Field(min_length=1, description="language of the speech")


class ClassInfo(_Open):
    recall: float = Field(ge=0, le=1)
    precision: float = Field(ge=0, le=1)
    support: int = Field(ge=0)


class ReportInfo(_Open):
    """The output of `classification_report` (extra keys such as `confusion` are ignored)."""

    accuracy: float = Field(ge=0, le=1)
    clips: int = Field(gt=0)
    macro_recall: float = Field(ge=0, le=1)
    per_class: dict[str, ClassInfo]
    ece: float | None = Field(ge=0, le=1)


class BaselineInfo(_Open):
    """The output of `mean_logmel_baseline`."""

    name: str
    accuracy: float = Field(ge=0, le=1)
    per_class_recall: dict[str, float]


class MetricsInfo(_Strict):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    split: str = Field(min_length=1, description="the split measured")
    float_model: ReportInfo = Field(alias="float", description="Keras float model")
    int8_model: ReportInfo = Field(alias="int8", description="int8 .tflite model")
    baseline: BaselineInfo
    step_agreement: float = Field(ge=0, le=1, description="one-step model vs Keras, share of clips")
    measured: dict[str, float] = Field(default_factory=dict,
                                       description="optional extra named accuracies")


class ConstraintsInfo(_Strict):
    sample_rate_hz: int = Field(gt=0)
    clip_seconds: float = Field(gt=0)
    window_ms: float = Field(gt=0)
    hop_ms: float = Field(gt=0)
    mel_bands: int = Field(gt=0)
    input_scale: float = Field(gt=0)
    input_zero_point: int


class CardInfo(_Strict):
    """Everything `MODEL_CARD.md` states; see the module docstring for the dict layout."""

    name: str = Field(min_length=1)
    model: ModelInfo
    data: DataInfo
    metrics: MetricsInfo
    constraints: ConstraintsInfo


def info_keys(model: type[BaseModel] = CardInfo, prefix: str = "") -> list[str]:
    """Dotted paths of the keys `info` takes (the fixed ones; dict-valued keys end there)."""
    keys = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys.extend(info_keys(sub, key + "."))
        else:
            keys.append(key + ("" if field.is_required() else " (optional)"))
    return keys


def _validate(info: Any) -> CardInfo:
    if not isinstance(info, dict):
        raise KwsError(f"model card info must be a dict, got {type(info).__name__}")
    try:
        card = CardInfo.model_validate(info)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            raise KwsError(f"model card info: missing key '{where}'") from None
        if err["type"] == "extra_forbidden":
            raise KwsError(f"model card info: unknown key '{where}'") from None
        raise KwsError(f"model card info: {where}: {err['msg']}") from None

    data, metrics = card.data, card.metrics
    for split in SPLITS:
        if split not in data.speakers:
            raise KwsError(f"model card info: missing key 'data.speakers.{split}'")
    for label in data.labels:
        if label not in data.clips:
            raise KwsError(f"model card info: missing key 'data.clips.{label}'")
        for split in SPLITS:
            if split not in data.clips[label]:
                raise KwsError(f"model card info: missing key 'data.clips.{label}.{split}'")
        for key, report in (("float", metrics.float_model), ("int8", metrics.int8_model)):
            if label not in report.per_class:
                raise KwsError(f"model card info: missing key 'metrics.{key}.per_class.{label}'")
        if label not in metrics.baseline.per_class_recall:
            raise KwsError(
                f"model card info: missing key 'metrics.baseline.per_class_recall.{label}'")
    return card


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _int(n: int) -> str:
    return f"{n:,}"


def _bytes(n: int) -> str:
    return f"{n:,} bytes ({n / 1024:.1f} KiB)"


def _num(x: float) -> str:
    return f"{x:g}"


def _ece(x: float | None) -> str:
    return "not measured" if x is None else f"{x:.3f}"


def _label(label: str) -> str:
    return f"`{label}`"  # code span: `_silence_` would otherwise render as italics


TEMPLATE = """\
# Model card: {{ name }}

Keyword spotter for {{ n_labels }} classes ({{ keyword_list }}, plus silence and unknown words), \
int8 for microcontrollers. Accuracy on the {{ split }} split ({{ split_clips }} clips): \
int8 {{ int8_acc }}, float {{ float_acc }}, baseline {{ base_acc }}.

## Model

| | |
|---|---|
| Architecture | {{ architecture }} |
| Parameters | {{ params }} |
| `.tflite` size | {{ tflite }} |
| Tensor arena | {{ arena }} |
| MACs per step | {{ macs }} (one step every {{ hop_ms }} ms) |
| Ops | {{ ops }} |

## Training data

Folders:
{% for folder in folders %}
- `{{ folder }}`
{% endfor %}

Speakers per split (disjoint; silence clips have none): {{ speakers_line }}.

Synthetic share: {{ synthetic }} of the training clips are synthetic.

| Label | {{ split_names | join(" | ") }} | total |
|---|{% for _ in split_names %}---:|{% endfor %}---:|
{% for row in clip_rows %}
| {{ row | join(" | ") }} |
{% endfor %}

## Metrics

Measured on the {{ split }} split: {{ split_clips }} clips.

| Model | Accuracy | Macro recall | ECE |
|---|---:|---:|---:|
| Float (Keras) | {{ float_acc }} | {{ float_macro }} | {{ float_ece }} |
| int8 (`.tflite`) | {{ int8_acc }} | {{ int8_macro }} | {{ int8_ece }} |
| Baseline: {{ base_name }} | {{ base_acc }} | — | — |

Step-model agreement with Keras: {{ agreement }} of the {{ split }} clips get the same label from \
the one-step model run frame by frame as from the Keras model on the whole clip.

ECE is the expected calibration error of the top-class probability (15 equal-width bins; 0 means \
the confidence matches the accuracy).

| Label | {{ split }} clips | Float recall | int8 recall | int8 precision | Baseline recall |
|---|---:|---:|---:|---:|---:|
{% for row in class_rows %}
| {{ row | join(" | ") }} |
{% endfor %}
{% if measured %}

Other measured conditions (int8 accuracy):
{% for name, value in measured %}
- {{ name }}: {{ value }}
{% endfor %}
{% endif %}

## Constraints

- Audio: {{ sample_rate }} Hz mono, {{ clip_seconds }} s clips.
- Features: {{ mel_bands }} log-mel bands, {{ window_ms }} ms window, {{ hop_ms }} ms hop \
(one model step per hop).
- Input quantization: int8, real value = {{ input_scale }} × {{ input_offset }}, \
i.e. scale {{ input_scale }} and zero point {{ input_zero_point }}.
- Memory: {{ tflite }} of flash for the model, {{ arena }} of RAM for the tensor arena \
(audio buffers and the feature front end come on top).

## Intended use

Recognising the spoken commands {{ keyword_list }} in {{ language }}, one word at a time, \
close to the microphone, on a microcontroller, as a hands-free convenience where a missed or false \
trigger is cheap and can be undone. Other words should come out as `{{ unknown }}` and quiet or \
noise as `{{ silence }}`.

Not for: authentication or speaker identification, safety-critical or medical control, \
transcription, or languages other than {{ language }}.

## Known limits

{% for item in limits %}
- {{ item }}
{% endfor %}
"""


def _environment() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def render_model_card(info: dict) -> str:
    """MODEL_CARD.md text from `info` (layout in the module docstring). Raises KwsError naming
    the first missing or invalid key."""
    card = _validate(info)
    m, d, met, c = card.model, card.data, card.metrics, card.constraints
    labels = d.labels
    keywords = [lab for lab in labels if lab not in (SILENCE_LABEL, UNKNOWN_LABEL)]
    keyword_list = ", ".join(_label(k) for k in keywords) or "(none)"

    clip_rows = []
    totals = [0] * (len(SPLITS) + 1)
    for label in labels:
        counts = [d.clips[label][s] for s in SPLITS]
        counts.append(sum(counts))
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        clip_rows.append([_label(label), *(_int(n) for n in counts)])
    clip_rows.append(["**total**", *(f"**{_int(n)}**" for n in totals)])

    class_rows = []
    for label in labels:
        f_cls, q_cls = met.float_model.per_class[label], met.int8_model.per_class[label]
        if q_cls.support == 0:
            recalls = ["—", "—"]
            base = "—"
        else:
            recalls = [_pct(f_cls.recall), _pct(q_cls.recall)]
            base = _pct(met.baseline.per_class_recall[label])
        class_rows.append([_label(label), _int(q_cls.support), *recalls,
                           _pct(q_cls.precision), base])

    train_clips = sum(d.clips[label]["train"] for label in labels)
    limits = [
        (f"Trained on {_int(d.speakers['train'])} speakers ({_int(train_clips)} clips) and "
         f"measured on {_int(met.int8_model.clips)} {met.split} clips; voices, accents and ages "
         "unlike theirs may do worse."),
        f"Language: {d.language} only.",
        (f"Input is {_num(c.clip_seconds)} s per word at {_int(c.sample_rate_hz)} Hz; longer "
         "phrases, fast repeated words or other sample rates are outside what was trained."),
    ]
    if met.measured:
        limits.append("Far-field and noisy audio: only the conditions listed under Metrics were "
                      "measured; others are unknown.")
    else:
        limits.append("Performance on far-field or noisy audio is unknown: it was not measured.")
    if d.synthetic_share > 0:
        limits.append(
            f"{_pct(d.synthetic_share)} of the training clips are synthetic (text-to-speech); "
            "synthetic voices are cleaner and less varied than real speakers, and accuracy on "
            "synthetic clips overstates accuracy on real speech.")
    present = [lab for lab in keywords if met.int8_model.per_class[lab].support > 0]
    if present:
        weakest = min(present, key=lambda lab: met.int8_model.per_class[lab].recall)
        limits.append(f"Weakest keyword on the int8 model: {_label(weakest)} "
                      f"(recall {_pct(met.int8_model.per_class[weakest].recall)}).")
    missing = [lab for lab in labels if met.int8_model.per_class[lab].support == 0]
    if missing:
        limits.append("No " + met.split + " clips for " + ", ".join(_label(x) for x in missing)
                      + ": their recall is unmeasured.")
    if met.step_agreement < 1:
        limits.append(f"The device's one-step model disagrees with the Keras model on "
                      f"{_pct(1 - met.step_agreement)} of the {met.split} clips.")

    context = {
        "name": card.name,
        "n_labels": len(labels),
        "keyword_list": keyword_list,
        "split": met.split,
        "split_clips": _int(met.int8_model.clips),
        "architecture": m.architecture,
        "params": _int(m.params),
        "tflite": _bytes(m.tflite_bytes),
        "arena": _bytes(m.arena_bytes),
        "macs": _int(m.macs_per_step),
        "ops": ", ".join(f"`{op}`" for op in m.ops) or "(none listed)",
        "folders": d.folders,
        "speakers_line": ", ".join(f"{s} {_int(d.speakers[s])}" for s in SPLITS),
        "synthetic": _pct(d.synthetic_share),
        "split_names": list(SPLITS),
        "clip_rows": clip_rows,
        "float_acc": _pct(met.float_model.accuracy),
        "int8_acc": _pct(met.int8_model.accuracy),
        "base_acc": _pct(met.baseline.accuracy),
        "base_name": met.baseline.name,
        "float_macro": _pct(met.float_model.macro_recall),
        "int8_macro": _pct(met.int8_model.macro_recall),
        "float_ece": _ece(met.float_model.ece),
        "int8_ece": _ece(met.int8_model.ece),
        "agreement": _pct(met.step_agreement),
        "class_rows": class_rows,
        "measured": [(name, _pct(v)) for name, v in met.measured.items()],
        "sample_rate": _int(c.sample_rate_hz),
        "clip_seconds": _num(c.clip_seconds),
        "mel_bands": c.mel_bands,
        "window_ms": _num(c.window_ms),
        "hop_ms": _num(c.hop_ms),
        "input_scale": f"{c.input_scale:.6g}",
        "input_zero_point": c.input_zero_point,
        "input_offset": (f"(q − {c.input_zero_point})" if c.input_zero_point >= 0
                         else f"(q + {-c.input_zero_point})"),
        "language": d.language,
        "unknown": UNKNOWN_LABEL,
        "silence": SILENCE_LABEL,
        "limits": limits,
    }
    return _environment().from_string(TEMPLATE).render(context)
