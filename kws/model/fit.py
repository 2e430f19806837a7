"""One entry to training: the recipe the settings name (streaming or clip), for `kws train`,
cross-validation and anything else that trains a bundle's model."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from kws.model.config import TrainConfig
from kws.model.prepare import Prepared
from kws.model.train import TrainResult


def fit(prep: Prepared, config: TrainConfig, run_dir: Path, resume: bool = False,
        on_epoch: Callable[[int, dict], None] = lambda _e, _l: None) -> TrainResult:
    if config.streaming.enabled:
        from kws.model.stream_train import train_streaming

        return train_streaming(prep, config, run_dir, resume=resume, on_epoch=on_epoch)
    from kws.model.train import train

    return train(prep, config, run_dir, resume=resume, on_epoch=on_epoch)
