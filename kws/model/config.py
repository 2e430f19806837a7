"""Training settings: one typed, frozen tree. `--config FILE` fills it, `--set a.b=v` overrides."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kws.config import AugmentConfig, DataConfig, Frozen, build, read_config_file
from kws.errors import KwsError
from kws.features.params import FeatureParams


class ModelConfig(Frozen):
    units: int = Field(64, ge=8, le=256, description="GRU width (hidden state size)")
    layers: int = Field(1, ge=1, le=2, description="stacked GRU layers")
    dropout: float = Field(0.1, ge=0, lt=1, description="before the output layer, training only")


class DistillConfig(Frozen):
    """Knowledge distillation: a wider GRU, trained first on the same clips with the same
    settings, supplies soft targets. The device only ever runs the student (`model.units`)."""

    teacher_units: int | None = Field(
        None, ge=8, le=512, description="teacher GRU width; None = no distillation"
    )
    weight: float = Field(0.5, ge=0, le=1, description="share of the teacher's softened "
                          "output in every training target (the rest is the one-hot label)")
    temperature: float = Field(2.0, gt=0, description="teacher logits are divided by this "
                               "before the softmax (higher = softer targets)")


class TrainConfig(Frozen):
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    distill: DistillConfig = DistillConfig()
    features: FeatureParams = FeatureParams()
    epochs: int = Field(120, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(2e-3, gt=0, description="peak Adam learning rate")
    final_learning_rate: float = Field(1e-4, gt=0, description="cosine decay ends here")
    warmup_epochs: int = Field(1, ge=0)
    clip_global_norm: float = Field(1.0, gt=0)
    label_smoothing: float = Field(0.05, ge=0, lt=1)
    ema_momentum: float = Field(
        0.0, ge=0, lt=1, description="validate, checkpoint and export an exponential moving "
        "average of the weights (per step; 0 = off, 0.995 = about the last 200 steps)"
    )
    balance: Literal["weights", "sampling", "none"] = Field(
        "sampling", description="class balancing: loss weights, balanced batches, or none"
    )
    train_only_share: float | None = Field(
        None, ge=0, le=1, description="share of each epoch's draws that come from --train-only "
        "clips (e.g. synthetic voices), each group balanced by class on its own; None = as many "
        "as their count gives (with `balance: sampling`)"
    )
    keep: Literal["best", "last"] = Field(
        "best", description="weights to keep and export: the epoch with the best validation "
        "accuracy (early stopping after `patience` epochs without gain), or the last epoch of "
        "the full cosine schedule (no early stopping; validation is only reported)"
    )
    patience: int = Field(30, ge=1, description="epochs without validation gain before stopping")
    seed: int = 0
    calibration_clips: int = Field(300, ge=1, description="training clips whose frames and "
                                   "states calibrate the int8 export")
    per_channel: bool = Field(True, description="int8 weights with one scale per output channel "
                              "(more accurate; its metadata adds ~9 KB to a GRU-64 .tflite)")


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise KwsError(f"--set {dotted}: {key} is not a group of settings")
    node[keys[-1]] = value


def load_train_config(path: str | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults <- config file <- command-line overrides (dotted keys, e.g. model.units)."""
    values: dict[str, Any] = read_config_file(path) if path else {}
    for dotted, value in (overrides or {}).items():
        _set_dotted(values, dotted, value)
    return build(TrainConfig, values, source=str(path) if path else "settings")


def parse_set(items: list[str]) -> dict[str, Any]:
    """`key=value` strings -> {key: value}; values parsed as YAML scalars (1e-3, true, [a, b])."""
    from kws.config import yaml_load

    out = {}
    for item in items:
        if "=" not in item:
            raise KwsError(f"--set {item}: expected KEY=VALUE, e.g. model.units=128")
        key, raw = item.split("=", 1)
        out[key.strip()] = yaml_load(raw)
    return out
