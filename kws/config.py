"""Typed settings. Every pipeline stage takes one of these frozen models, never a loose dict.

A `--config FILE` (YAML or TOML) fills them; command-line flags override single fields.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kws.errors import KwsError

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
NOISE_FOLDER = "_background_noise_"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(Frozen):
    """How folders of WAVs become labelled, speaker-disjoint splits."""

    keywords: tuple[str, ...] = Field(KEYWORDS, description="labels to detect; other words -> _unknown_")
    clip_seconds: float = Field(1.0, gt=0, description="every example is padded/trimmed to this")
    validation_percent: float = Field(10.0, ge=0, lt=100, description="share of speakers for validation")
    testing_percent: float = Field(10.0, ge=0, lt=100, description="share of speakers for testing")
    silence_clips: int | None = Field(
        None, ge=0,
        description="silence clips cut from background noise when a folder has no _silence_ clips; "
        "None = as many as the average keyword has",
    )
    seed: int = Field(0, description="seed for the silence cuts")
    train_speaker_percent: float = Field(
        100.0, gt=0, le=100,
        description="keep the real training clips of only this share of the training speakers "
        "(picked by speaker hash; the others are left out, never moved to validation or test): "
        "learning curves, i.e. how accuracy grows with the number of speakers",
    )
    split_salt: str | None = Field(
        None,
        description="text mixed into the speaker hash. None = the data set's own rule, unless it "
        "leaves the training or validation split empty (a folder that is one official split, "
        "like ../shared/data), then 'kws' is used and the summary says so",
    )

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if self.validation_percent + self.testing_percent >= 100:
            raise ValueError("validation_percent + testing_percent must be below 100")
        if len(set(self.keywords)) != len(self.keywords):
            raise ValueError("keywords must be unique")
        for word in self.keywords:
            if word in (SILENCE_LABEL, UNKNOWN_LABEL, NOISE_FOLDER) or not word:
                raise ValueError(f"keyword {word!r} is reserved")
        return self

    @property
    def labels(self) -> tuple[str, ...]:
        """Class order used everywhere (model outputs, manifest, reports)."""
        return (SILENCE_LABEL, UNKNOWN_LABEL, *self.keywords)


class AugmentConfig(Frozen):
    """On-the-fly training augmentation; each transform fires with its probability.

    Defaults are for continuous audio (`kws streams`), where words land anywhere in the 1 s
    window and the background is noise: time shift up to +-400 ms (p 0.9) and background noise
    (p 0.8, 0-20 dB SNR, recordings' training region or coloured noise). Measured with
    `make train`'s data (`--train-only build/synth`), `kws streams tune --model RUN --json`
    (validation streams at 20/10/5 dB + 1 h keyword-free audio) and RUN/report.json:

    | augmentation                         | test int8 | val FRR @ <=2 FA/h | 20/10/5 dB FRR |
    | shift 100 ms p 0.5 (old default)     | 85.8%     | 95.9% @ 1.5 (K=4)  | 88/100/100%    |
    | + noise p 0.8 0-20 dB                | 89.9%     | 93.0% @ 1.5 (K=4)  | 87/93/99%      |
    | noise + shift 300 ms p 0.8 + gain    | 87.0%     | 75.4% @ 2.0 (K=4)  | 66/76/84%      |
    | noise + shift 400 ms p 0.9 + gain    | 88.3%     | 75.5% @ 2.0 (K=4)  | 67/78/82%      |
    | noise + shift 400 ms p 0.9 (default) | 89.5%     | 73.0% @ 1.5 (K=4)  | 66/72/81%      |

    The long shift is what helps on streams (the recognizer averages decisions 245 ms apart,
    so a word must be recognized at many offsets); noise moves the window accuracy at 10 dB
    from 11% to ~77% (K=4, best-aligned window). Gain (p 0.5, -12..6 dB) did not help on
    these streams (their words are level-normalized to -26 +-3 dBFS). Command:
    `kws train --out runs/exp_ns400 --force --train-only build/synth --set
    augment.noise_prob=0.8 --set augment.snr_db=[0,20] --set augment.shift_prob=0.9 --set
    augment.shift_max_ms=400`; ~27% more time per epoch than the old defaults (4.2 vs 3.3 s
    on 2 shared cores). Older 5-fold CV on clean clips only (before the streams existed) scored
    noise at 10-30 dB, gain and SpecAugment 2 points below shift-only (72-73% vs 74.7%). 5-fold
    CV with `make train`'s data (`make bench`): noise + shift 78.9%, + speed change (p 0.8,
    rates 0.85-1.15, the default) 80.1% int8.
    """

    speed_prob: float = Field(0.8, ge=0, le=1, description="resample the clip about its centre")
    speed_range: tuple[float, float] = Field(
        (0.85, 1.15), description="playback-rate factors: >1 = faster and higher-pitched"
    )
    shift_prob: float = Field(0.9, ge=0, le=1)
    shift_max_ms: float = Field(400.0, ge=0, description="circular-free shift, zero filled")
    shift_keep_db: float | None = Field(
        None, gt=0, description="limit each clip's shift so its frames within this many dB of "
        "the loudest (the word) stay inside the clip; None = shift blindly"
    )
    gain_prob: float = Field(0.0, ge=0, le=1)
    gain_db: tuple[float, float] = (-12.0, 6.0)
    noise_prob: float = Field(0.8, ge=0, le=1)
    snr_db: tuple[float, float] = (0.0, 20.0)
    colored_noise_share: float = Field(
        0.3, ge=0, le=1, description="share of noise draws from synthetic colored noise"
    )
    reverb_prob: float = Field(0.0, ge=0, le=1)
    rt60_s: tuple[float, float] = (0.15, 0.8)
    specaug_prob: float = Field(0.0, ge=0, le=1)
    time_masks: int = Field(2, ge=0)
    time_mask_max_frames: int = Field(5, ge=0)
    freq_masks: int = Field(2, ge=0)
    freq_mask_max_bands: int = Field(5, ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> "AugmentConfig":
        for name in ("gain_db", "snr_db", "rt60_s", "speed_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: low {lo} is above high {hi}")
        if self.rt60_s[0] <= 0:
            raise ValueError("rt60_s must be positive")
        if self.speed_range[0] <= 0:
            raise ValueError("speed_range must be positive")
        return self


class _Yaml12BoolLoader(yaml.SafeLoader):
    """Safe YAML where only true/false are booleans: YAML 1.1 also reads yes/no/on/off as
    booleans, and those are keywords here (`keywords: [yes, no, on, off]`)."""


_Yaml12BoolLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12BoolLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12BoolLoader)  # noqa: S506 - a SafeLoader subclass


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Load a YAML or TOML settings file as a dict (safe loader; top level must be a table)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise KwsError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise KwsError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'} "
                       f"({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KwsError(f"{path}: top level must be a mapping of settings")
    return data


def build(model: type[Frozen], values: dict[str, Any], source: str = "settings") -> Any:
    """Validate `values` into `model`, turning pydantic's report into one KwsError line."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or model.__name__
        raise KwsError(f"{source}: {where}: {err['msg']}") from None
