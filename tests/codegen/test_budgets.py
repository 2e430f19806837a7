"""The memory budgets of every shipped training configuration (the defaults and each file in
kws/presets/): the kws part of the firmware (features, model, recognizer, app, as `kws generate`
measures it) fits boards/nano33.yaml's and boards/nano_rp2040.yaml's flash and RAM budgets
(DESIGN.md "Budgets"; the old 40 KB .tflite cap is lifted). The CPU budget (<= 6.4 M guest
instructions per second of audio on qemu_m4) is measured by `make bench`, not here. Sizes depend
on the model's shape and quantization, not on its trained values, so a random-weight step model
of the configured width stands in for training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import kws
from kws.codegen import project
from kws.csource.targets import CROSS_CC
from kws.export.manifest import write_manifest
from kws.model.config import load_train_config
from tests.bundle_factory import LABELS12, make_manifest
from tests.native.native_models import BANDS, build_step_model

PRESETS = sorted((Path(kws.__file__).parent / "presets").glob("*.yaml"))


def test_presets_exist_and_load():
    assert PRESETS, "kws/presets/ has no configuration"
    for path in PRESETS:
        load_train_config(str(path))


@pytest.mark.skipif(shutil.which(CROSS_CC) is None, reason=f"{CROSS_CC} not installed")
@pytest.mark.parametrize("board", ["nano33", "nano_rp2040"])
@pytest.mark.parametrize("config_file", [None, *PRESETS],
                         ids=lambda p: "defaults" if p is None else p.stem)
def test_configuration_fits_the_board_budgets(tmp_path, config_file, board):
    cfg = load_train_config(str(config_file) if config_file else None)
    assert cfg.features.mel_bands == BANDS
    tflite = build_step_model(cfg.model.units, len(LABELS12), cfg.model.layers, cfg.per_channel)
    frames = cfg.features.frames_for(round(cfg.data.clip_seconds * cfg.features.sample_rate_hz))
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.tflite").write_bytes(tflite)
    write_manifest(make_manifest(tflite, resets=2, clip_frames=frames, labels=LABELS12,
                                 features=cfg.features), run / "manifest.json")
    budget = project.generate(run, board, tmp_path / "fw").budget
    print(f"{config_file}: .tflite {len(tflite):,} B, {board} kws flash {budget.flash_bytes:,} B,"
          f" RAM {budget.ram_bytes:,} B")
    assert 0 < budget.flash_bytes <= budget.flash_budget, f"kws flash {budget.flash_bytes:,} B"
    assert 0 < budget.ram_bytes <= budget.ram_budget, f"kws RAM {budget.ram_bytes:,} B"
