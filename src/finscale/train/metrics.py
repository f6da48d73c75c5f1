"""Validation metrics of a binary classifier from its logits."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score


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
        `bce`, `auc` (NaN when the labels hold one class), `accuracy`, `precision`, `recall`
        (NaN when undefined), `positive_rate` (of the labels), `pred_mean`, `pred_std`,
        `pred_min`, `pred_max`, `n`.
    """
    z = logits.astype("float64")
    y = labels.astype("float64")
    # log(1 + exp(-|z|)) + max(z, 0) - z*y: BCE with logits, without overflow
    bce = float(np.mean(np.logaddexp(0.0, -np.abs(z)) + np.maximum(z, 0.0) - z * y))
    p = _sigmoid(z)
    predicted = p >= 0.5
    positives = y == 1
    tp = int((predicted & positives).sum())
    auc = float(roc_auc_score(y, p)) if 0 < positives.sum() < len(y) else math.nan
    return {
        "bce": bce,
        "auc": auc,
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
