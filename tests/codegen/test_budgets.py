"""The device budgets of every shipped training configuration (the defaults and each file in
kws/presets/): .tflite <= 40 KB, and the kws part of the nano33 firmware (features, model,
recognizer, app, as `kws generate` measures it) <= 48 KB of flash. Sizes depend on the model's
shape and quantization, not on its trained values, so a random-weight step model of the
configured width stands in for training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import kws
from kws.codegen import project
from kws.codegen.targets import CROSS_CC
from kws.export.manifest import write_manifest
from kws.model.config import load_train_config
from tests.bundle_factory import LABELS12, make_manifest
from tests.native.native_models import BANDS, build_step_model

TFLITE_BUDGET_BYTES = 40 * 1024
FLASH_BUDGET_BYTES = 48 * 1024
PRESETS = sorted((Path(kws.__file__).parent / "presets").glob("*.yaml"))


def test_presets_exist_and_load():
    assert PRESETS, "kws/presets/ has no configuration"
    for path in PRESETS:
        load_train_config(str(path))


@pytest.mark.skipif(shutil.which(CROSS_CC) is None, reason=f"{CROSS_CC} not installed")
@pytest.mark.parametrize("config_file", [None, *PRESETS],
                         ids=lambda p: "defaults" if p is None else p.stem)
def test_configuration_fits_the_nano33_budgets(tmp_path, config_file):
    cfg = load_train_config(str(config_file) if config_file else None)
    assert cfg.features.mel_bands == BANDS and cfg.model.layers == 1
    tflite = build_step_model(cfg.model.units, len(LABELS12), 1, cfg.per_channel)
    frames = cfg.features.frames_for(round(cfg.data.clip_seconds * cfg.features.sample_rate_hz))
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.tflite").write_bytes(tflite)
    write_manifest(make_manifest(tflite, resets=2, clip_frames=frames, labels=LABELS12,
                                 features=cfg.features), run / "manifest.json")
    budget = project.generate(run, "nano33", tmp_path / "fw").budget
    print(f"{config_file}: .tflite {len(tflite):,} B, nano33 kws flash {budget.flash_bytes:,} B")
    assert len(tflite) <= TFLITE_BUDGET_BYTES, f".tflite {len(tflite):,} B"
    assert budget.flash_bytes <= FLASH_BUDGET_BYTES, f"kws flash {budget.flash_bytes:,} B"
