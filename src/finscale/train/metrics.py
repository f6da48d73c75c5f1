"""Validation metrics of a binary classifier from its logits."""

from __future__ import annotations

import math

import numpy as np

# scipy.stats and scikit-learn are imported where they are used: together they take about a
# second to import, which a worker would pay before it reserves its first trial.


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|
    return out


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
    # log(1 + exp(-|z|)) + max(z, 0) - z*y: BCE with logits, without overflow
    losses = np.logaddexp(0.0, -np.abs(z)) + np.maximum(z, 0.0) - z * y
    bce = float(losses.mean())
    bce_se = float(losses.std(ddof=1) / math.sqrt(len(losses))) if len(losses) > 1 else math.nan
    p = _sigmoid(z)
    predicted = p >= 0.5
    positives = y == 1
    tp = int((predicted & positives).sum())
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(y, p)) if 0 < positives.sum() < len(y) else math.nan
    return {
        "bce": bce,
        "bce_se": bce_se,
        "auc": auc,
        "auc_se": _auc_standard_error(p, positives) if not math.isnan(auc) else math.nan,
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
    """DeLong's standard error of the AUC, from midranks (O(n log n))."""
    pos, neg = scores[positives], scores[~positives]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    v10 = (ranks[:m] - rankdata(pos)) / n  # per positive: share of negatives it outranks
    v01 = 1.0 - (ranks[m:] - rankdata(neg)) / m  # per negative: share of positives above it
    return math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
