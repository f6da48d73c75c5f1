"""Validation metrics: the standard errors describe how much the metric moves between
validation samples of the same size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from finscale.train import binary_metrics


def _samples(n: int, repeats: int, seed: int = 0) -> list[dict[str, float]]:
    """Metrics of one fixed, informative classifier on `repeats` fresh validation samples."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(repeats):
        signal = rng.normal(size=n)
        labels = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * signal - 1.5)))).astype("float32")
        logits = (1.2 * signal - 1.4).astype("float32")
        out.append(binary_metrics(logits, labels))
    return out


@pytest.mark.parametrize("metric", ["bce", "auc"])
def test_standard_error_matches_the_spread_across_validation_samples(metric: str) -> None:
    runs = _samples(n=400, repeats=300)
    observed = float(np.std([r[metric] for r in runs], ddof=1))
    reported = float(np.mean([r[f"{metric}_se"] for r in runs]))
    assert reported == pytest.approx(observed, rel=0.15)


def test_standard_errors_shrink_with_the_square_root_of_the_sample() -> None:
    small = np.mean([r["bce_se"] for r in _samples(n=200, repeats=50)])
    large = np.mean([r["bce_se"] for r in _samples(n=3200, repeats=50)])
    assert small / large == pytest.approx(4.0, rel=0.15)


def test_one_class_has_no_auc_and_no_auc_error() -> None:
    m = binary_metrics(np.array([0.1, -0.3, 0.7]), np.zeros(3))
    assert math.isnan(m["auc"]) and math.isnan(m["auc_se"])
    assert m["bce_se"] > 0
