"""Training settings: one typed, frozen tree. `--config FILE` fills it, `--set a.b=v` overrides."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from kws.config import AugmentConfig, DataConfig, Frozen, build, read_config_file
from kws.errors import KwsError
from kws.features.params import FeatureParams


class ModelConfig(Frozen):
    units: int = Field(64, ge=8, le=256, description="GRU width (hidden state size) of each "
                       "layer; 2 x 64 by measurement on streams (README, \"The default model\")")
    layers: int = Field(2, ge=1, le=2, description="stacked GRU layers (the device carries one "
                        "state of layers x units)")
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


class StreamTrainConfig(Frozen):
    """Streaming training (`enabled`): the GRU learns on long synthetic streams of training
    clips with one state that is never reset (truncated BPTT, the state carried from chunk to
    chunk and stream to stream), with a target at every frame. See kws/model/sequences.py for
    how a stream and its frame targets are made and kws/model/stream_train.py for the loop."""

    enabled: bool = Field(True, description="train on streams (one state, a decision every "
                          "frame on the device) instead of 1 s clips with a reset state (false:"
                          " the clip model with K staggered states)")
    lanes: int = Field(32, ge=1, description="streams trained side by side (the batch)")
    chunk_frames: int = Field(100, ge=4, description="frames per truncated-BPTT chunk")
    stream_seconds: float = Field(40.0, gt=1, description="length of each generated stream; "
                                  "the next one continues the lane with the state carried")
    blocks_per_epoch: int = Field(3, ge=1, description="blocks of `lanes` streams per epoch")
    reset_prob: float = Field(0.03, ge=0, le=1, description="chance per chunk that a lane's "
                              "state starts again from zero (as after the device boots)")
    keyword_share: float = Field(0.5, ge=0, le=1, description="share of slots holding a keyword")
    keyword_balance: bool = Field(False, description="draw a stream's keywords label first, "
                                  "then a clip (every keyword equally often, however few clips "
                                  "it has); false: every keyword clip equally often")
    unknown_share: float = Field(0.35, ge=0, le=1, description="share of slots holding a "
                                 "non-keyword word (_unknown_ clips); the rest stay pauses")
    gap_s: tuple[float, float] = Field((0.1, 1.2), description="pause after each word (uniform)")
    pause_s: tuple[float, float] = Field((0.3, 2.5), description="length of an empty slot")
    speech_dbfs: tuple[float, float] = Field((-40.0, -14.0), description="per-stream speech "
                                             "level (active RMS, dB re full scale)")
    level_jitter_db: float = Field(6.0, ge=0, description="per-word level change, +-dB")
    snr_db: tuple[float, float] = Field((0.0, 30.0), description="per-stream speech-to-noise")
    colored_noise_share: float = Field(0.3, ge=0, le=1, description="share of noise segments "
                                       "that are synthetic colored noise (else recordings)")
    speed_range: tuple[float, float] = Field((0.9, 1.1), description="per-word playback rate")
    hold_ms: float = Field(400.0, gt=0, description="a keyword's label lasts this long after "
                           "the end of its speech (cut at the next word's onset)")
    lead_ms: float = Field(40.0, ge=0, description="...and starts this long before the end")
    span_floor_db: float | None = Field(None, ge=0, description="where a word ends: its "
                                           "frames must also be this many dB above the clip's "
                                           "noise floor (None: within 30 dB of its loudest "
                                           "frame only; a noisy clip then ends at its end)")
    unknown_mask_ms: float = Field(150.0, ge=0, description="the start of a non-keyword word "
                                   "carries no target (it may sound like a keyword's start)")
    loss: Literal["ce", "maxpool"] = Field("ce", description="ce: cross-entropy on every "
                                           "unmasked frame; maxpool: a keyword's window is "
                                           "scored by its best frame (Sun et al. 2016)")
    validation_seconds: float = Field(600.0, gt=0, description="validation streams per epoch")
    init_from: str | None = Field(None, description="a clip-trained run folder (or its "
                                  "model.keras) of the same width and layers whose GRU and "
                                  "output weights start the streaming training")
    pretrain_epochs: int = Field(40, ge=0, description="epochs of ordinary clip training in the "
                                 "same run (RUN/checkpoints/pretrain) whose weights start the "
                                 "streaming training; ignored when init_from is set")
    clip_weight: float = Field(0.5, ge=0, description="weight of an extra cross-entropy term on "
                               "a batch of 1 s training clips scored at their last frame from "
                               "the zero state (how `kws eval` scores a clip) per chunk")

    @model_validator(mode="after")
    def _ranges(self) -> "StreamTrainConfig":
        for name in ("gap_s", "pause_s", "speech_dbfs", "snr_db", "speed_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: low {lo} is above high {hi}")
        if self.keyword_share + self.unknown_share > 1:
            raise ValueError("keyword_share + unknown_share must be at most 1")
        if self.speed_range[0] <= 0:
            raise ValueError("speed_range must be positive")
        return self


class TrainConfig(Frozen):
    model: ModelConfig = ModelConfig()
    streaming: StreamTrainConfig = StreamTrainConfig()
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
