"""Streaming training: chunked (TBPTT) inference equals one long run, the step model and the
clip model are the same weights, and a tiny streaming model trains and exports in seconds."""

import json

import numpy as np
import pytest

from kws.model import gru
from kws.model.config import ModelConfig, load_train_config
from kws.model.stream_train import _Loop, _segments, _frame_loss

BANDS, LABELS, CLIP = 40, 4, 49


@pytest.fixture(scope="module")
def streaming_model():
    rng = np.random.default_rng(0)
    model = gru.build_streaming(ModelConfig(units=16, layers=1), CLIP, BANDS, LABELS,
                                rng.normal(-5, 1, BANDS), rng.uniform(0.5, 2, BANDS))
    return model


def test_chunked_run_equals_one_long_run(streaming_model):
    cfg = load_train_config(None, {"model.units": 16, "model.layers": 1, "streaming.enabled": True})
    loop = _Loop(streaming_model, cfg, steps_total=10)
    x = np.random.default_rng(1).normal(-5, 2, (3, 230, BANDS)).astype(np.float32)
    whole = loop.run(x, chunk=230)
    chunked = loop.run(x, chunk=50)  # 50, 50, 50, 50, 30 frames, the state carried
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)


def test_step_model_and_clip_model_share_the_sequence_weights(streaming_model):
    x = np.random.default_rng(2).normal(-5, 2, (2, CLIP, BANDS)).astype(np.float32)
    seq_logits, *_ = streaming_model.sequence.predict(
        [x, np.zeros((2, 16), np.float32)], verbose=0)
    clip_logits = streaming_model.clip.model.predict(x, verbose=0)
    np.testing.assert_allclose(clip_logits, seq_logits[:, -1], rtol=1e-4, atol=1e-5)
    step = gru.step_model(streaming_model.clip)
    state = np.zeros((1, 16), np.float32)
    for t in range(CLIP):
        state, logits = step([x[:1, t], np.asarray(state)])
        np.testing.assert_allclose(np.asarray(logits)[0], seq_logits[0, t], rtol=1e-4, atol=1e-4)


def test_maxpool_loss_scores_a_keyword_window_by_its_best_frame():
    import tensorflow as tf

    logits = np.zeros((1, 4, 3), np.float32)
    logits[0, 2, 2] = 5.0  # only frame 2 of the window is sure of label 2
    y = np.array([[0, 2, 2, 2]], np.int32)
    w = np.ones((1, 4), np.float32)
    win = np.array([[-1, 0, 0, 0]], np.int32)
    ids, seg_w = _segments(win)
    pooled = float(_frame_loss(tf.constant(logits), y, w, win, ids, seg_w, maxpool=True))
    lp = logits[0] - np.log(np.exp(logits[0]).sum(axis=-1, keepdims=True))
    expected = -(lp[0, 0] + lp[2, 2]) / 2  # one silence frame + the window's best frame
    assert pooled == pytest.approx(expected, rel=1e-5)
    ce = float(_frame_loss(tf.constant(logits), y, w, win, ids, seg_w, maxpool=False))
    assert ce == pytest.approx(-(lp[0, 0] + lp[1, 2] + lp[2, 2] + lp[3, 2]) / 4, rel=1e-5)


STREAMING = {"streaming.enabled": True, "streaming.lanes": 4, "streaming.stream_seconds": 6,
             "streaming.chunk_frames": 50, "streaming.blocks_per_epoch": 1,
             "streaming.validation_seconds": 12}


def test_tiny_streaming_model_pretrains_trains_exports_and_resumes(tiny_data, tmp_path):
    from rich.console import Console

    from kws.export.manifest import read_manifest
    from kws.commands.train import train_run
    from tests.model.conftest import TINY

    out = tmp_path / "stream"
    sets = [f"{k}={v}" for k, v in {**TINY, **STREAMING, "streaming.pretrain_epochs": 1}.items()
            if k not in ("epochs", "model.units")]
    sets = [s.replace("'", "").replace('"', "") for s in sets]
    quiet = Console(stderr=True, quiet=True)
    summary = train_run(out, [tiny_data], None, 2, 16, sets, resume=False, force=False, err=quiet)
    manifest = read_manifest(out / "manifest.json")
    assert manifest.streaming.mode == "continuous" and manifest.streaming.resets == 1
    assert manifest.streaming.decision_frames == 1
    assert summary["step_agreement"] > 0.6  # int8 step model vs float clip model (tiny, 2 epochs)
    progress = json.loads((out / "checkpoints" / "progress.json").read_text())
    assert progress["epoch"] == 2 and len(progress["history"]) == 2
    pretrain = out / "checkpoints" / "pretrain"
    report = json.loads((out / "report.json").read_text())
    assert report["pretrain"]["epochs"] == 1 and (pretrain / "done.json").is_file()
    done_before = (pretrain / "checkpoints" / "best.weights.h5").stat().st_mtime_ns
    again = train_run(out, [tiny_data], None, 3, 16, sets, resume=True, force=False, err=quiet)
    assert again["training_seconds"] > summary["training_seconds"]  # counts the first session
    progress = json.loads((out / "checkpoints" / "progress.json").read_text())
    assert progress["epoch"] == 3 and [h["epoch"] for h in progress["history"]] == [1, 2, 3]
    # the finished clip pretraining is reloaded on resume, not trained again
    assert (pretrain / "checkpoints" / "best.weights.h5").stat().st_mtime_ns == done_before


def test_init_from_a_clip_run_copies_its_gru_and_output(streaming_model, tmp_path):
    from kws.errors import KwsError
    from kws.model.stream_train import init_from_clip_run

    rng = np.random.default_rng(5)
    clip = gru.build(ModelConfig(units=16, layers=1), CLIP, BANDS, LABELS, rng.normal(-5, 1, BANDS),
                     rng.uniform(0.5, 2, BANDS))
    (tmp_path / "run").mkdir()
    clip.model.save(tmp_path / "run" / "model.keras")
    fresh = gru.build_streaming(ModelConfig(units=16, layers=1), CLIP, BANDS, LABELS,
                                np.asarray(clip.mean), np.asarray(clip.std))
    cfg = load_train_config(None, {"model.units": 16, "model.layers": 1, "streaming.enabled": True})
    init_from_clip_run(fresh, str(tmp_path / "run"), cfg)
    x = rng.normal(-5, 2, (2, CLIP, BANDS)).astype(np.float32)
    np.testing.assert_allclose(fresh.clip.model.predict(x, verbose=0),
                               clip.model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    wide = load_train_config(None, {"model.units": 32, "model.layers": 1, "streaming.enabled": True})
    with pytest.raises(KwsError, match="GRU-16 .* this run is 1 x GRU-32"):
        init_from_clip_run(gru.build_streaming(ModelConfig(units=32, layers=1), CLIP, BANDS, LABELS,
                                               clip.mean, clip.std), str(tmp_path / "run"), wide)
    with pytest.raises(KwsError, match="names no clip model"):
        init_from_clip_run(fresh, str(tmp_path / "nothing"), cfg)


def test_clip_term_adds_the_clip_cross_entropy():
    import keras

    rng = np.random.default_rng(6)
    streaming_model = gru.build_streaming(ModelConfig(units=16, layers=1, dropout=0.0), CLIP, BANDS, LABELS,
                                          rng.normal(-5, 1, BANDS), rng.uniform(0.5, 2, BANDS))
    batch = {"x": rng.normal(-5, 2, (2, 20, BANDS)).astype(np.float32),
             "y": np.zeros((2, 20), np.int32), "w": np.ones((2, 20), np.float32),
             "win": -np.ones((2, 20), np.int32)}
    clips = (rng.normal(-5, 2, (3, CLIP, BANDS)).astype(np.float32), np.array([1, 2, 3], np.int32))
    states = [np.zeros((2, 16), np.float32)]
    losses = {}
    weights = [w.copy() for w in streaming_model.sequence.get_weights()]
    for weight in (0.0, 1.0):
        cfg = load_train_config(None, {"model.units": 16, "model.layers": 1, "streaming.enabled": True,
                                       "streaming.clip_weight": weight, "learning_rate": 1e-9,
                                       "final_learning_rate": 1e-9})
        streaming_model.sequence.set_weights(weights)
        losses[weight], _ = _Loop(streaming_model, cfg, 10).train_chunk(batch, states, clips)
    streaming_model.sequence.set_weights(weights)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        clips[1], streaming_model.clip.model(clips[0], training=False))
    assert losses[1.0] - losses[0.0] == pytest.approx(float(ce), rel=1e-3)
