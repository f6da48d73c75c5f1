"""Metrics of a binary classifier from its logits, the one copy the trainer, the search and the
report use: per-window BCE, the base rate's entropy, AUC and DeLong's components.

scipy and scikit-learn load inside the functions that need them: a worker imports this module
at start, long before its first validation.
"""

from __future__ import annotations

import math

import numpy as np


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|
    return out


def bce_per_window(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Binary cross-entropy of each window, computed stably from logits (nats).

    `log(1 + e^x) - y·x`, which equals `-[y log σ(x) + (1-y) log(1-σ(x))]` without overflow.

    Raises:
        ValueError: shapes differ.
    """
    x = np.asarray(logits, dtype="float64")
    y = np.asarray(labels, dtype="float64")
    if x.shape != y.shape:
        raise ValueError(f"logits {x.shape} and labels {y.shape} differ in shape")
    return np.asarray(np.logaddexp(0.0, x) - y * x)


def binary_entropy(rate: float) -> float:
    """The BCE of predicting a split's own positive rate for each of its windows (nats): the
    best any constant can do there, the floor of `finscale.train.reference`."""
    if not 0.0 < rate < 1.0:
        return 0.0
    return -(rate * math.log(rate) + (1.0 - rate) * math.log(1.0 - rate))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The area under the ROC curve of `scores` (any ranking) for 0/1 `labels`; NaN when the
    labels hold one class."""
    y = np.asarray(labels)
    positives = int((y == 1).sum())
    if not 0 < positives < len(y):
        return math.nan
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def delong_components(
    scores: np.ndarray, labels: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """AUC, DeLong's V10 (per positive) and V01 (per negative), and the positive mask, from
    midranks (O(n log n)).

    Raises:
        ValueError: shapes differ or are not 1-D, or the labels hold one class.
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype="float64")
    y = np.asarray(labels)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be equal 1-D arrays")
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("an AUC needs both positive and negative windows")
    ranks = rankdata(s)
    v10 = (ranks[pos] - rankdata(s[pos])) / n0  # share of negatives below each positive
    v01 = 1.0 - (ranks[~pos] - rankdata(s[~pos])) / n1  # share of positives above each neg.
    return float(v10.mean()), v10, v01, pos


def delong_variance(v10: np.ndarray, v01: np.ndarray) -> float:
    """DeLong's variance of the AUC from its components, treating windows as independent (a
    class with one window contributes nothing)."""
    n1, n0 = len(v10), len(v01)
    return float(
        (v10.var(ddof=1) if n1 > 1 else 0.0) / n1 + (v01.var(ddof=1) if n0 > 1 else 0.0) / n0
    )


def binary_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """BCE, AUC and the metrics at a 0.5 threshold, plus how spread the predictions are.

    A prediction spread near zero means the model answers the base rate for every window
    (the research system's "prior collapse").

    Args:
        logits: one logit per window.
        labels: 0/1 per window.

    Returns:
        `bce`, `auc` (NaN when the labels hold one class), their standard errors `bce_se` and
        `auc_se` (how much the metric would move on another validation sample of the same size;
        they treat windows as independent, so overlapping windows make them lower bounds),
        `accuracy`, `precision`, `recall` (NaN when undefined), `positive_rate` (of the labels),
        `pred_mean`, `pred_std`, `pred_min`, `pred_max`, `n`.
    """
    z = logits.astype("float64")
    y = labels.astype("float64")
    losses = bce_per_window(z, y)
    bce = float(losses.mean())
    bce_se = float(losses.std(ddof=1) / math.sqrt(len(losses))) if len(losses) > 1 else math.nan
    p = _sigmoid(z)
    predicted = p >= 0.5
    positives = y == 1
    tp = int((predicted & positives).sum())
    area = auc(p, y)
    return {
        "bce": bce,
        "bce_se": bce_se,
        "auc": area,
        "auc_se": _auc_standard_error(p, positives) if not math.isnan(area) else math.nan,
        "accuracy": float((predicted == positives).mean()),
        "precision": tp / int(predicted.sum()) if predicted.any() else math.nan,
        "recall": tp / int(positives.sum()) if positives.any() else math.nan,
        "positive_rate": float(positives.mean()),
        "pred_mean": float(p.mean()),
        "pred_std": float(p.std()),
        "pred_min": float(p.min()),
        "pred_max": float(p.max()),
        "n": float(len(y)),
    }


def _auc_standard_error(scores: np.ndarray, positives: np.ndarray) -> float:
    """DeLong's standard error of the AUC; NaN with fewer than two windows of a class."""
    if int(positives.sum()) < 2 or int((~positives).sum()) < 2:
        return math.nan
    _area, v10, v01, _pos = delong_components(scores, positives)
    return math.sqrt(delong_variance(v10, v01))
