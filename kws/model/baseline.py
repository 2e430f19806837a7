"""A deliberately simple reference model for the model card: multinomial logistic regression
on each clip's per-band mean and standard deviation of the log-mel frames.

It sees no time order, so the GRU should beat it clearly; when it does not, the GRU (or its
training) is the suspect. Needs scikit-learn, imported only when the baseline is run.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from kws.errors import KwsError
from kws.report.metrics import classification_report

NAME = "logistic regression on mean+std log-mel"
MAX_ITER = 2000
"""lbfgs iterations; standardized 2F-dimensional inputs converge in well under 200."""


def clip_statistics(feats: np.ndarray) -> np.ndarray:
    """[N, T, F] log-mel -> [N, 2F] float64: per-band mean over time, then per-band std."""
    x = np.asarray(feats, dtype=np.float64)
    return np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1)


def _check(feats: np.ndarray, y: np.ndarray, name: str,
           n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(feats)
    y = np.asarray(y)
    if feats.ndim != 3:
        raise KwsError(f"baseline: {name} features must be [clips, frames, bands], "
                       f"got shape {feats.shape}")
    if len(feats) == 0:
        raise KwsError(f"baseline: no {name} clips")
    if y.shape != (len(feats),):
        raise KwsError(f"baseline: {len(feats)} {name} clips but labels of shape {y.shape}")
    if not np.all(np.isfinite(feats)):
        raise KwsError(f"baseline: {name} features hold NaN or infinite values")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_labels:
        raise KwsError(f"baseline: {name} labels must be integer indices below {n_labels}")
    return feats, y.astype(np.int64)


def mean_logmel_baseline(train_feats: np.ndarray, train_y: np.ndarray, test_feats: np.ndarray,
                         test_y: np.ndarray, labels: Sequence[str], seed: int = 0) -> dict:
    """Fit on the training clips, score on the test clips.

    train_feats / test_feats: [N, T, F] log-mel (T may differ between the two, F may not);
    train_y / test_y: [N] indices into `labels`. Features are standardized with the training
    statistics. Returns {"name": NAME, "accuracy": float, "per_class_recall": {label: float}}
    (recall 0.0 for a label with no test clips, as in `classification_report`).
    """
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise KwsError(
            "baseline: scikit-learn is not installed (pip install scikit-learn)") from None

    labels = [str(label) for label in labels]
    train_feats, train_y = _check(train_feats, train_y, "training", len(labels))
    test_feats, test_y = _check(test_feats, test_y, "test", len(labels))
    if train_feats.shape[2] != test_feats.shape[2]:
        raise KwsError(f"baseline: training clips have {train_feats.shape[2]} bands, test clips "
                       f"{test_feats.shape[2]}")
    if len(np.unique(train_y)) < 2:
        raise KwsError("baseline: the training clips must cover at least two labels")

    scaler = StandardScaler()
    x_train = scaler.fit_transform(clip_statistics(train_feats))
    x_test = scaler.transform(clip_statistics(test_feats))
    clf = LogisticRegression(C=1.0, max_iter=MAX_ITER, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            clf.fit(x_train, train_y)
        except ConvergenceWarning:
            raise KwsError(f"baseline: logistic regression did not converge in {MAX_ITER} "
                           "iterations") from None
    pred = clf.predict(x_test).astype(np.int64)  # classes_ are the original label indices
    report = classification_report(test_y, pred, None, labels)
    return {
        "name": NAME,
        "accuracy": report["accuracy"],
        "per_class_recall": {label: v["recall"] for label, v in report["per_class"].items()},
    }
