"""`manifest.json`: the versioned hand-off from training to firmware. Codegen reads only this,
the .tflite it names, and a board file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from kws.config import Frozen
from kws.errors import KwsError
from kws.features.params import FeatureParams

SCHEMA_VERSION = 1


class Quant(Frozen):
    scale: float = Field(gt=0)
    zero_point: int = Field(ge=-128, le=127)


class StateSpec(Frozen):
    size: int = Field(gt=0, description="int8 values carried from one step to the next")
    layers: int = Field(ge=1)
    units: int = Field(gt=0)
    quant: Quant


class RecognizerParams(Frozen):
    """Streaming decisions (mirrored in C): average the posteriors over a window, fire when the
    best keyword's average passes the threshold with enough supporting steps, then stay quiet."""

    average_window_ms: int = Field(600, gt=0)
    threshold: float = Field(0.7, gt=0, le=1)
    suppression_ms: int = Field(1000, ge=0)
    minimum_count: int = Field(3, ge=1)


class StreamingSpec(Frozen):
    """How the model runs on a stream.

    - `clip` (a clip-trained model; the default, so old manifests load unchanged):
      `clip_frames` steps from a zero state make one decision; `resets` staggered states give
      a decision every clip_frames/resets frames.
    - `continuous` (a streaming-trained model): one state (`resets` must be 1) that is never
      reset steps every frame, with a decision every `decision_frames` frames (at frames where
      (index + 1) % decision_frames == 0). `clip_frames` is still the frames of one training
      clip (clip evaluation)."""

    clip_frames: int = Field(gt=0)
    resets: int = Field(gt=0)
    mode: Literal["clip", "continuous"] = "clip"
    decision_frames: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _one_state_when_continuous(self):
        if self.mode == "continuous" and self.resets != 1:
            raise ValueError(f"continuous mode runs one state that is never reset: resets must "
                             f"be 1, not {self.resets}")
        return self


class Manifest(Frozen):
    schema_version: int = SCHEMA_VERSION
    generator: str
    labels: tuple[str, ...]
    features: FeatureParams
    input_quant: Quant
    state: StateSpec
    logits_quant: Quant
    recognizer: RecognizerParams = RecognizerParams()
    streaming: StreamingSpec
    ops: tuple[str, ...]
    arena_bytes: int = Field(gt=0, description="tflite-micro arena measured by its interpreter")
    tflite_bytes: int = Field(gt=0)
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    params: int
    macs_per_step: int


def write_manifest(manifest: Manifest, path: Path) -> None:
    path.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")


def read_manifest(path: Path) -> Manifest:
    """Load and validate; a newer schema or a broken file is a one-line error naming the file."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KwsError(f"{path}: no manifest (is this a model run folder from `kws train`?)") from None
    except (OSError, ValueError) as exc:
        raise KwsError(f"{path}: unreadable manifest ({exc})") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if not isinstance(version, int):
        raise KwsError(f"{path}: schema_version missing")
    if version > SCHEMA_VERSION:
        raise KwsError(f"{path}: manifest schema {version} is newer than this kws understands "
                       f"({SCHEMA_VERSION}); upgrade kws")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise KwsError(f"{path}: {where}: {err['msg']}") from None
