"""Training and export layer: a tiny model goes through train -> int8 step model -> bundle ->
eval in seconds, and the int8 step model agrees with Keras."""

import json

import numpy as np
import pytest

from kws.errors import KwsError
from kws.evaluation.evaluate import evaluate
from kws.export.read import load_bundle
from kws.export.manifest import SCHEMA_VERSION, read_manifest, write_manifest
from kws.model.config import load_train_config, parse_set
from kws.report.metrics import dequantize

EXPECTED_OPS = {"FULLY_CONNECTED", "SPLIT", "STRIDED_SLICE", "ADD", "SUB", "MUL", "LOGISTIC", "TANH"}


def test_bundle_is_complete(tiny_run):
    out, summary = tiny_run
    for name in ("model.keras", "model.tflite", "manifest.json", "report.json", "confusion.png",
                 "MODEL_CARD.md", "config.json"):
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".bundle-")]
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "report.json").read_text())
    for key in ("float", "int8", "baseline", "step_agreement", "params", "tflite_bytes",
                "arena_bytes", "macs_per_step", "training_seconds"):
        assert key in report, key
    assert report["int8"]["ece"] is not None
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Known limits" in card and "yes" in card


def test_manifest_round_trip_and_shared_state_quantization(tiny_run, tmp_path):
    out, _ = tiny_run
    m = read_manifest(out / "manifest.json")
    assert m.schema_version == SCHEMA_VERSION
    assert m.labels == ("_silence_", "_unknown_", "yes", "no")
    assert (m.state.quant.scale, m.state.quant.zero_point) == (1 / 128, 0)
    assert m.state.size == 16 and m.streaming.clip_frames == 49
    assert set(m.ops) <= EXPECTED_OPS and "FULLY_CONNECTED" in m.ops
    assert 0 < m.arena_bytes < 12 * 1024
    write_manifest(m, tmp_path / "manifest.json")
    assert read_manifest(tmp_path / "manifest.json") == m
    bundle = load_bundle(out)
    assert bundle.manifest == m and len(bundle.tflite) == m.tflite_bytes


def test_newer_schema_and_tampered_model_are_refused(tiny_run, tmp_path):
    out, _ = tiny_run
    data = json.loads((out / "manifest.json").read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(KwsError, match="newer than this kws"):
        read_manifest(tmp_path / "manifest.json")
    data["schema_version"] = SCHEMA_VERSION
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    (tmp_path / "model.tflite").write_bytes((out / "model.tflite").read_bytes() + b"x")
    with pytest.raises(KwsError, match="sha256 differs"):
        load_bundle(tmp_path)


def test_step_model_agrees_with_keras(tiny_run, tiny_data):
    out, _ = tiny_run
    m = read_manifest(out / "manifest.json")
    _, keras_logits = evaluate(out, [tiny_data], "keras")
    _, q = evaluate(out, [tiny_data], "tflm")
    assert q.dtype == np.int8 and q.shape == keras_logits.shape
    deq = dequantize(q, m.logits_quant.scale, m.logits_quant.zero_point)
    lo = (-128 - m.logits_quant.zero_point) * m.logits_quant.scale
    hi = (127 - m.logits_quant.zero_point) * m.logits_quant.scale
    steps = np.abs(deq - np.clip(keras_logits, lo, hi)) / m.logits_quant.scale
    assert np.mean(steps) <= 2.0
    assert np.mean(deq.argmax(1) == keras_logits.argmax(1)) >= 0.9


def test_eval_backends_score_and_dump(tiny_run, tiny_data):
    out, _ = tiny_run
    results = {b: evaluate(out, [tiny_data], b) for b in ("keras", "tflite", "tflm")}
    for backend, (result, logits) in results.items():
        assert result["clips"] == len(logits) and result["backend"] == backend
        assert 0 <= result["accuracy"] <= 1
    tflm, tflite = results["tflm"][1], results["tflite"][1]
    assert np.mean(tflm.argmax(1) == tflite.argmax(1)) >= 0.95  # near, not bit-exact (see note)


def test_settings_overrides_and_errors(tmp_path):
    cfg = load_train_config(None, parse_set(["model.units=128", "augment.snr_db=[5, 20]"]))
    assert cfg.model.units == 128 and cfg.augment.snr_db == (5.0, 20.0)
    (tmp_path / "c.yaml").write_text("model:\n  layers: 2\nepochs: 7\n")
    assert load_train_config(str(tmp_path / "c.yaml"), {"epochs": 3}).epochs == 3
    with pytest.raises(KwsError, match="model.unitz"):
        load_train_config(None, {"model.unitz": 3})
    with pytest.raises(KwsError, match="KEY=VALUE"):
        parse_set(["units"])
    with pytest.raises(KwsError, match="model.units"):
        load_train_config(None, {"model.units": 1000})


def test_existing_bundle_is_not_overwritten_without_force(tiny_run):
    from kws.commands.train import check_out_dir

    out, _ = tiny_run
    with pytest.raises(KwsError, match="--force"):
        check_out_dir(out, resume=False, force=False)
    check_out_dir(out, resume=False, force=True)


def test_interrupt_keeps_best_and_resume_continues(tiny_data, tiny_config, tmp_path):
    from kws.model.prepare import prepare
    from kws.model.train import train

    prep = prepare([tiny_data], tiny_config)

    def stop_after_two(epoch, _logs):
        if epoch == 2:
            raise KeyboardInterrupt

    first = train(prep, tiny_config, tmp_path, on_epoch=stop_after_two)
    assert first.interrupted and len(first.history) == 2
    assert (tmp_path / "checkpoints" / "best.weights.h5").is_file()
    resumed = train(prep, tiny_config, tmp_path, resume=True)
    assert not resumed.interrupted
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


def test_yes_no_on_off_stay_words_in_settings():
    cfg = load_train_config(None, parse_set(["data.keywords=[yes, no, on, off]"]))
    assert cfg.data.keywords == ("yes", "no", "on", "off")


def test_eval_test_split_reproduces_the_training_report(tiny_run, tiny_data):
    out, _ = tiny_run
    report = json.loads((out / "report.json").read_text())
    result, _ = evaluate(out, [tiny_data], "tflm", split=report["split"])
    assert result["clips"] == report["int8"]["clips"]
    assert result["accuracy"] == report["int8"]["accuracy"]
    with pytest.raises(KwsError, match="--split"):
        evaluate(out, [tiny_data], "tflm", split="dev")


def test_two_layer_model_exports_with_one_shared_state(tiny_data, tmp_path):
    from rich.console import Console

    from kws.commands.train import train_run
    from tests.model.conftest import TINY

    sets = [f"{k}={v}" for k, v in TINY.items() if k not in ("epochs", "model.units")]
    sets = [s.replace("'", "") for s in sets] + ["model.layers=2"]
    summary = train_run(tmp_path / "two", [tiny_data], None, 1, 8, sets, resume=False, force=False,
                        err=Console(stderr=True, quiet=True))
    m = read_manifest(tmp_path / "two" / "manifest.json")
    assert m.state.layers == 2 and m.state.size == 16
    assert (m.state.quant.scale, m.state.quant.zero_point) == (1 / 128, 0)
    assert summary["step_agreement"] >= 0.8


def test_native_dump_equals_tflm_dump(tiny_run, tiny_data):
    out, _ = tiny_run
    _, native = evaluate(out, [tiny_data], "native")
    _, tflm = evaluate(out, [tiny_data], "tflm")
    assert native.dtype == np.int8 and np.array_equal(native, tflm)


@pytest.mark.real_data
def test_native_equals_tflm_on_every_shared_clip(tiny_run):
    """L2 == L3 on real audio: every shared clip through the tiny bundle, byte for byte."""
    from kws.data.dataset import shared_speech_commands

    root = shared_speech_commands()
    if root is None:
        pytest.skip("../shared/data/speech_commands not present (set KWS_SHARED_DATA)")
    out, _ = tiny_run
    native_result, native = evaluate(out, [root], "native")
    _, tflm = evaluate(out, [root], "tflm")
    assert native_result["clips"] == 2440
    assert native.tobytes() == tflm.tobytes()


def test_same_seed_same_bundle_bytes(tiny_run, tiny_data, tmp_path):
    """Determinism: a second training with the same settings and seed gives the same model and
    manifest bytes (so the same generated firmware)."""
    import hashlib

    from rich.console import Console

    from kws.commands.train import train_run
    from tests.model.conftest import TINY

    out, _ = tiny_run
    again = tmp_path / "again"
    sets = [f"{k}={v}" for k, v in TINY.items() if k not in ("epochs", "model.units")]
    sets = [s.replace("'", "").replace('"', "") for s in sets]
    train_run(again, [tiny_data], None, TINY["epochs"], TINY["model.units"], sets, resume=False,
              force=False, err=Console(stderr=True, quiet=True))
    for name in ("model.tflite", "manifest.json"):
        assert hashlib.sha256((again / name).read_bytes()).hexdigest() == \
            hashlib.sha256((out / name).read_bytes()).hexdigest(), name


def test_ema_weights_are_what_is_validated_and_kept(tiny_data, tiny_config, tmp_path):
    import keras

    from kws.model.prepare import prepare
    from kws.model.train import train

    config = tiny_config.model_copy(update={"ema_momentum": 0.9, "epochs": 2})
    prep = prepare([tiny_data], config)
    result = train(prep, config, tmp_path)
    optimizer = result.model.model.optimizer
    averaged = [np.asarray(v) for v in optimizer._model_variables_moving_average]
    kept = result.model.model.get_weights()
    raw = [np.asarray(v) for v in optimizer._trainable_variables]
    # The model ends with the best epoch's averaged weights (epoch 2's average or epoch 1's)
    best = keras.models.clone_model(result.model.model)
    best.load_weights(tmp_path / "checkpoints" / "best.weights.h5")
    for a, b in zip(best.get_weights(), kept):
        np.testing.assert_array_equal(a, b)
    if result.best_epoch == 2:
        for a, b in zip(averaged, kept):
            np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(averaged, raw))
    val = prep.splits["validation"]
    scored = float(np.mean(result.model.model.predict(val.features, verbose=0).argmax(1)
                           == val.labels))
    assert scored == pytest.approx(result.best_val_accuracy, abs=1e-6)


def test_keep_last_trains_every_epoch_and_keeps_the_final_weights(tiny_data, tmp_path):
    import keras

    from kws.model.prepare import prepare
    from kws.model.train import train
    from tests.model.conftest import TINY

    config = load_train_config(None, {**TINY, "keep": "last", "patience": 1,
                                      "learning_rate": 0.05})
    prep = prepare([tiny_data], config)
    result = train(prep, config, tmp_path)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]  # patience 1 does not stop it
    assert result.kept_epoch == 3
    last = keras.models.clone_model(result.model.model)
    last.load_weights(tmp_path / "checkpoints" / "last.weights.h5")
    for kept, saved in zip(result.model.model.get_weights(), last.get_weights()):
        np.testing.assert_array_equal(kept, saved)
    best = train(prep, load_train_config(None, {**TINY, "learning_rate": 0.05}), tmp_path / "b")
    assert best.kept_epoch == best.best_epoch
