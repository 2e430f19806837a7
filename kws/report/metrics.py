"""Classification metrics for `report.json`: accuracy, per-class recall/precision, confusion
matrix and expected calibration error. Pure numpy; every value returned is a plain Python
int/float/list/dict (or None), so `json.dumps` takes the result as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kws.errors import KwsError

ECE_BINS = 15
"""Equal-width confidence bins over [0, 1] for the expected calibration error."""

PROB_SUM_TOLERANCE = 0.05
"""How far a row of `probs` may sum from 1. Loose on purpose: dequantized int8 softmax outputs
(scale 1/256) carry up to half a step of rounding per class; logits passed by mistake fail."""


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities from logits along `axis`, stable for any finite magnitude (the row maximum
    is subtracted before `exp`, so 1e4 and -1e4 logits give 1.0 and 0.0, never NaN/inf).

    Float inputs keep their precision (float32 stays float32); integers become float64.
    """
    x = np.asarray(logits)
    x = x.astype(np.result_type(x.dtype, np.float32), copy=False)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def dequantize(q: np.ndarray, scale: float | np.ndarray,
               zero_point: int | np.ndarray) -> np.ndarray:
    """Real values of affine-quantized integers: `(q - zero_point) * scale`, as float64.

    `scale` and `zero_point` broadcast against `q` (per-tensor scalars or per-channel arrays).
    """
    scale_arr = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(scale_arr)) or np.any(scale_arr <= 0):
        raise KwsError(f"dequantize: scale must be positive and finite, got {scale!r}")
    return (np.asarray(q).astype(np.float64) - np.asarray(zero_point, dtype=np.float64)) * scale_arr


def _label_indices(y: np.ndarray, name: str, n_labels: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise KwsError(f"classification_report: {name} must be 1-D label indices, "
                       f"got shape {y.shape}")
    whole = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))
    if y.size and not whole:
        raise KwsError(f"classification_report: {name} must hold integer label indices "
                       f"(dtype {y.dtype})")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_labels):
        bad = int(y[(y < 0) | (y >= n_labels)][0])
        raise KwsError(f"classification_report: {name} holds index {bad}, outside the "
                       f"{n_labels} labels")
    return y


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> np.ndarray:
    """[n_labels, n_labels] int64 counts; row = true label index, column = predicted index."""
    counts = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """ECE over `bins` equal-width bins of the top-class probability.

    Bin b holds clips whose confidence c = max(probs) falls in (b/bins, (b+1)/bins] (c = 0 goes
    to the first bin). ECE = sum over bins of |B|/N * |accuracy(B) - mean confidence(B)|, where
    a clip is correct when argmax(probs) equals its true label.
    """
    conf = np.clip(probs.max(axis=1), 0.0, 1.0)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    n = len(conf)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() / n * abs(correct[mask].mean() - conf[mask].mean())
    return float(total)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray | None,
                          labels: Sequence[str]) -> dict:
    """Metrics of one evaluated set, JSON-ready.

    y_true, y_pred: [N] integer indices into `labels`. probs: [N, len(labels)] class
    probabilities (softmax or dequantized int8 outputs) or None. Returns

    - `labels`: the label order used by `per_class` and `confusion`
    - `clips`: N
    - `accuracy`: share of clips with y_pred == y_true
    - `per_class`: {label: {"recall", "precision", "support"}}; support = true clips of the
      label. A label never predicted has precision 0.0, one with no clips has recall 0.0
      (never NaN, which JSON cannot hold); `support` tells these cases apart.
    - `macro_recall`: mean recall over the labels with support > 0
    - `confusion`: list of rows, row i = true label i, column j = predicted label j
    - `ece`: expected calibration error of `probs` (see `expected_calibration_error`; it uses
      argmax(probs), which may differ from `y_pred`), None when probs is None
    """
    labels = [str(label) for label in labels]
    n_labels = len(labels)
    if n_labels == 0:
        raise KwsError("classification_report: no labels given")
    if len(set(labels)) != n_labels:
        raise KwsError("classification_report: labels must be unique")
    y_true = _label_indices(y_true, "y_true", n_labels)
    y_pred = _label_indices(y_pred, "y_pred", n_labels)
    if len(y_true) != len(y_pred):
        raise KwsError(f"classification_report: {len(y_true)} true labels but "
                       f"{len(y_pred)} predictions")
    n = len(y_true)
    if n == 0:
        raise KwsError("classification_report: no clips to evaluate")

    counts = confusion_matrix(y_true, y_pred, n_labels)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    hits = np.diag(counts)
    recall = np.divide(hits, support, out=np.zeros(n_labels), where=support > 0)
    precision = np.divide(hits, predicted, out=np.zeros(n_labels), where=predicted > 0)

    ece = None
    if probs is not None:
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != (n, n_labels):
            raise KwsError(f"classification_report: probs has shape {p.shape}, "
                           f"expected ({n}, {n_labels})")
        if not np.all(np.isfinite(p)) or p.min() < -1e-6 or p.max() > 1 + 1e-6:
            raise KwsError("classification_report: probs must be probabilities in [0, 1] "
                           "(pass softmax(logits), not logits)")
        worst = float(np.max(np.abs(p.sum(axis=1) - 1.0)))
        if worst > PROB_SUM_TOLERANCE:
            raise KwsError(f"classification_report: a row of probs sums to {1 + worst:.3f} "
                           f"or {1 - worst:.3f}, not 1")
        ece = expected_calibration_error(p, y_true)

    present = support > 0
    return {
        "labels": labels,
        "clips": int(n),
        "accuracy": float(hits.sum() / n),
        "macro_recall": float(recall[present].mean()),
        "per_class": {
            label: {
                "recall": float(recall[i]),
                "precision": float(precision[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": counts.tolist(),
        "ece": ece,
    }
