"""Bundle reports: hand-computed metrics, the confusion PNG, the baseline, the model card."""

from __future__ import annotations

import copy
import json
import struct
import warnings

import numpy as np
import pytest

from kws.config import DataConfig
from kws.errors import KwsError
from kws.report.metrics import classification_report, dequantize, softmax
from kws.report.model_card import info_keys, render_model_card
from kws.report.plots import confusion_png

ABC = ["a", "b", "c"]
LABELS = list(DataConfig().labels)


# ---------------------------------------------------------------- metrics

def _hand_case() -> dict:
    # true:  a a a b b c      confusion (rows true, cols predicted):
    # pred:  a a b b a b        a: [2 1 0]   b: [1 1 0]   c: [0 1 0]
    return classification_report(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 0, 1]),
                                  None, ABC)


def test_accuracy_confusion_and_per_class_by_hand():
    r = _hand_case()
    assert r["clips"] == 6
    assert r["accuracy"] == pytest.approx(0.5)
    assert r["confusion"] == [[2, 1, 0], [1, 1, 0], [0, 1, 0]]
    a, b, c = (r["per_class"][k] for k in ABC)
    assert (a["recall"], a["precision"], a["support"]) == pytest.approx((2 / 3, 2 / 3, 3))
    assert (b["recall"], b["precision"], b["support"]) == pytest.approx((1 / 2, 1 / 3, 2))
    # c is never predicted: precision 0, not NaN
    assert (c["recall"], c["precision"], c["support"]) == (0.0, 0.0, 1)
    assert r["macro_recall"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert r["ece"] is None


def test_confusion_rows_are_true_labels():
    r = classification_report(np.array([0, 0]), np.array([2, 2]), None, ABC)
    assert r["confusion"][0][2] == 2 and r["confusion"][2][0] == 0
    assert r["per_class"]["c"] == {"recall": 0.0, "precision": 0.0, "support": 0}
    assert r["macro_recall"] == 0.0  # over labels that have clips only (a)


def test_report_is_plain_json():
    probs = softmax(np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32))
    r = classification_report(np.array([0, 0, 0, 1, 1, 2]), probs.argmax(1), probs, ABC)
    assert json.loads(json.dumps(r)) == r
    assert type(r["accuracy"]) is float and type(r["clips"]) is int and type(r["ece"]) is float
    assert all(type(v) is int for row in r["confusion"] for v in row)
    assert r["labels"] == ABC


def test_ece_zero_when_confidence_matches_accuracy():
    # four clips at confidence 0.75, three of them right
    probs = np.array([[0.75, 0.25]] * 4)
    r = classification_report(np.array([0, 0, 0, 1]), np.zeros(4, int), probs, ["x", "y"])
    assert r["ece"] == pytest.approx(0.0, abs=1e-12)
    # all right at confidence 1
    r = classification_report(np.array([0, 1]), np.array([0, 1]), np.eye(2), ["x", "y"])
    assert r["ece"] == pytest.approx(0.0, abs=1e-12)


def test_ece_known_value():
    # bin (13/15, 14/15]: conf 0.90 right + conf 0.88 wrong -> 2/3 * |0.5 - 0.89|
    # bin (8/15, 9/15]:   conf 0.60 wrong                   -> 1/3 * |0 - 0.6|
    probs = np.array([[0.9, 0.1], [0.12, 0.88], [0.6, 0.4]])
    y = np.array([0, 0, 1])
    r = classification_report(y, probs.argmax(1), probs, ["x", "y"])
    assert r["ece"] == pytest.approx(2 / 3 * 0.39 + 1 / 3 * 0.6)


def test_sklearn_agrees_on_random_data():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 5, 300), rng.integers(0, 4, 300)  # label 4 never predicted
    r = classification_report(y, p, None, list("vwxyz"))
    assert r["confusion"] == metrics.confusion_matrix(y, p, labels=range(5)).tolist()
    rec = metrics.recall_score(y, p, labels=range(5), average=None, zero_division=0)
    prec = metrics.precision_score(y, p, labels=range(5), average=None, zero_division=0)
    assert [r["per_class"][k]["recall"] for k in "vwxyz"] == pytest.approx(rec)
    assert [r["per_class"][k]["precision"] for k in "vwxyz"] == pytest.approx(prec)


@pytest.mark.parametrize("y_true, y_pred, probs, match", [
    ([0, 1], [0], None, "2 true labels but 1"),
    ([0, 3], [0, 1], None, "index 3"),
    ([], [], None, "no clips"),
    ([0, 1], [0, 1], [[2.0, -1.0, 0.0], [0.0, 1.0, 3.0]], "probabilities"),
    ([0, 1], [0, 1], [[0.2, 0.2, 0.2], [0.0, 1.0, 0.0]], "sums to"),
    ([0, 1], [0, 1], [[1.0, 0.0], [0.0, 1.0]], "shape"),
])
def test_bad_inputs_raise(y_true, y_pred, probs, match):
    with pytest.raises(KwsError, match=match):
        classification_report(np.array(y_true, int), np.array(y_pred, int),
                              None if probs is None else np.array(probs), ABC)


def test_softmax_stable_for_big_logits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = softmax(np.array([[1000.0, 1000.0, -1000.0], [1e4, 0.0, -1e4]]))
        p32 = softmax(np.array([[3e38, 0.0]], dtype=np.float32))
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1.0)
    assert p[0] == pytest.approx([0.5, 0.5, 0.0]) and p[1] == pytest.approx([1.0, 0.0, 0.0])
    assert p32.dtype == np.float32 and p32[0] == pytest.approx([1.0, 0.0])
    small = np.array([0.1, -0.4, 2.0])
    assert softmax(small) == pytest.approx(np.exp(small) / np.exp(small).sum())
    assert softmax(small + 500) == pytest.approx(softmax(small))


def test_dequantize():
    q = np.array([-128, 0, 127], dtype=np.int8)
    assert dequantize(q, 1 / 256, -128) == pytest.approx([0.0, 0.5, 255 / 256])
    assert dequantize(np.array([10, 10]), np.array([0.5, 2.0]), np.array([0, 5])) == \
        pytest.approx([5.0, 10.0])
    with pytest.raises(KwsError, match="scale"):
        dequantize(q, 0.0, 0)


# ---------------------------------------------------------------- plot

def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_confusion_png(tmp_path):
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 5, (12, 12)) + np.diag(rng.integers(50, 200, 12))
    path = confusion_png(counts.tolist(), LABELS, tmp_path / "sub" / "confusion.png", "test split")
    data = path.read_bytes()
    width, height = _png_size(data)
    assert 600 <= width <= 2500 and 600 <= height <= 2500
    assert 10_000 < len(data) < 1_000_000
    assert b"Software" not in data
    again = confusion_png(counts, LABELS, tmp_path / "again.png", "test split").read_bytes()
    assert again == data  # deterministic bytes


def test_confusion_png_empty_row_and_bad_shape(tmp_path):
    counts = np.array([[3, 1, 0], [0, 0, 0], [1, 0, 4]])  # label b has no clips
    assert _png_size(confusion_png(counts, ABC, tmp_path / "c.png", "t").read_bytes())
    with pytest.raises(KwsError, match="shape"):
        confusion_png(counts, ["a", "b"], tmp_path / "d.png", "t")


# ---------------------------------------------------------------- baseline

@pytest.mark.filterwarnings("error")
def test_baseline_beats_chance_on_separable_data():
    pytest.importorskip("sklearn")
    from kws.model.baseline import NAME, mean_logmel_baseline

    rng = np.random.default_rng(0)
    labels = ["w", "x", "y", "z"]
    centers = rng.normal(size=(4, 40)) * 0.6
    spread = np.array([1.0, 1.0, 2.5, 2.5])  # y and z share w/x's means but not their spread
    centers[2], centers[3] = centers[0], centers[1]

    def make(n):
        y = rng.integers(0, 4, n)
        x = rng.normal(size=(n, 49, 40)) * spread[y, None, None] + centers[y][:, None, :]
        return x.astype(np.float32), y

    (xtr, ytr), (xte, yte) = make(400), make(200)
    out = mean_logmel_baseline(xtr, ytr, xte, yte, labels, seed=0)
    assert out["name"] == NAME
    assert set(out) == {"name", "accuracy", "per_class_recall"}
    assert out["accuracy"] > 0.9  # chance is 0.25; needs both mean and std features
    assert list(out["per_class_recall"]) == labels
    assert all(v > 0.8 for v in out["per_class_recall"].values())
    assert mean_logmel_baseline(xtr, ytr, xte, yte, labels, seed=0) == out


def test_baseline_bad_input():
    pytest.importorskip("sklearn")
    from kws.model.baseline import mean_logmel_baseline

    x = np.zeros((4, 5, 3), np.float32)
    with pytest.raises(KwsError, match="two labels"):
        mean_logmel_baseline(x, np.zeros(4, int), x, np.zeros(4, int), ["a", "b"])
    with pytest.raises(KwsError, match="bands"):
        mean_logmel_baseline(x, np.array([0, 1, 0, 1]), x[:, :, :2], np.zeros(4, int), ["a", "b"])


# ---------------------------------------------------------------- model card

def _info() -> dict:
    per_class = {lab: {"recall": 0.9, "precision": 0.8, "support": 30} for lab in LABELS}
    per_class["go"] = {"recall": 0.625, "precision": 0.7, "support": 40}
    report = {"accuracy": 0.9123, "clips": 400, "macro_recall": 0.8877, "per_class": per_class,
              "ece": 0.0421, "confusion": [[0]], "labels": LABELS}
    int8 = copy.deepcopy(report) | {"accuracy": 0.9071, "ece": None}
    return {
        "name": "gru64-test",
        "model": {"architecture": "log-mel 40 -> GRU 64 -> Dense 12", "params": 21004,
                  "tflite_bytes": 31234, "arena_bytes": 6144, "macs_per_step": 20736,
                  "ops": ["FULLY_CONNECTED", "LOGISTIC", "TANH"]},
        "data": {"folders": ["../shared/data/speech_commands"], "labels": LABELS,
                 "clips": {lab: {"train": 1500, "validation": 170, "test": 180} for lab in LABELS},
                 "speakers": {"train": 1873, "validation": 211, "test": 227},
                 "synthetic_share": 0.0, "language": "English"},
        "metrics": {"split": "test", "float": report, "int8": int8,
                    "baseline": {"name": "logistic regression on mean+std log-mel",
                                 "accuracy": 0.4567,
                                 "per_class_recall": {lab: 0.5 for lab in LABELS}},
                    "step_agreement": 0.9975},
        "constraints": {"sample_rate_hz": 16000, "clip_seconds": 1.0, "window_ms": 30.0,
                        "hop_ms": 20.0, "mel_bands": 40, "input_scale": 0.0712345,
                        "input_zero_point": -17},
    }


def test_model_card_sections_and_numbers():
    text = render_model_card(_info())
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Model", "## Training data", "## Metrics", "## Constraints",
                        "## Intended use", "## Known limits"]
    for needle in [
        "gru64-test", "log-mel 40 -> GRU 64 -> Dense 12", "21,004", "31,234 bytes", "6,144 bytes",
        "20,736", "`FULLY_CONNECTED`", "../shared/data/speech_commands",
        "| `_silence_` | 1,500 | 170 | 180 | 1,850 |", "**18,000**",
        "train 1,873, validation 211, test 227", "Synthetic share: 0.0%",
        "91.2%", "90.7%", "45.7%", "0.042", "not measured", "99.8%",
        "| `go` | 40 | 62.5% | 62.5% | 70.0% | 50.0% |",
        "16,000 Hz", "1 s clips", "40 log-mel bands", "30 ms window", "20 ms hop",
        "0.0712345 × (q + 17)", "zero point -17", "Trained on 1,873 speakers", "English only",
        "far-field or noisy audio is unknown", "Weakest keyword on the int8 model: `go`",
    ]:
        assert needle in text, needle
    assert "None" not in text
    assert "synthetic (text-to-speech)" not in text


def test_model_card_synthetic_caveat_and_measured_conditions():
    info = _info()
    info["data"]["synthetic_share"] = 0.25
    info["metrics"]["measured"] = {"test + cafe noise at 5 dB SNR": 0.8125}
    text = render_model_card(info)
    assert "25.0% of the training clips are synthetic (text-to-speech)" in text
    assert "- test + cafe noise at 5 dB SNR: 81.2%" in text
    assert "far-field or noisy audio is unknown" not in text


@pytest.mark.parametrize("path", [
    ("constraints",), ("name",), ("model", "arena_bytes"), ("data", "speakers", "test"),
    ("metrics", "int8", "accuracy"), ("metrics", "float", "per_class", "yes"),
    ("metrics", "baseline", "per_class_recall", "go"), ("data", "clips", "stop", "validation"),
    ("metrics", "step_agreement"),
])
def test_model_card_missing_key_is_named(path):
    info = _info()
    node = info
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    with pytest.raises(KwsError, match=f"missing key '{'.'.join(path)}'"):
        render_model_card(info)


def test_model_card_rejects_unknown_key_and_bad_value():
    info = _info()
    info["model"]["tflite_size"] = 1
    with pytest.raises(KwsError, match="unknown key 'model.tflite_size'"):
        render_model_card(info)
    info = _info()
    info["metrics"]["step_agreement"] = None
    with pytest.raises(KwsError, match="metrics.step_agreement"):
        render_model_card(info)


def test_info_keys_lists_the_schema():
    keys = info_keys()
    assert "metrics.int8.accuracy" in keys and "constraints.input_zero_point" in keys
    assert "metrics.measured (optional)" in keys


def test_model_card_from_real_reports():
    """The outputs of classification_report feed the card unchanged."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 12, 240)
    probs = softmax(rng.normal(size=(240, 12)) + 4 * np.eye(12)[y])
    info = _info()
    info["metrics"]["float"] = classification_report(y, probs.argmax(1), probs, LABELS)
    info["metrics"]["int8"] = classification_report(y, probs.argmax(1), None, LABELS)
    text = render_model_card(info)
    assert f"{info['metrics']['float']['accuracy'] * 100:.1f}%" in text
