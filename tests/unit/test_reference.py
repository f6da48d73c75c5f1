"""The reference a model is judged against: a constant at the rate of every label it may use
(train for validation, train + validation for test), one definition for `finscale train` and the
report; a shift of the label rate between splits is flagged, and a world with drift and no skill
is not called "better than the reference"."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from finscale.report import stats
from finscale.report.reference import judge, shift_of
from finscale.train.reference import Reference, cross_entropy, reference

N = 450  # test windows, as in the shipped sample


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_validation_is_judged_against_the_training_rate_and_test_against_train_and_val() -> None:
    # given the S&P 500 sample's splits: train 0.147 (3766), val 0.124 (444), test 0.079 (442)
    counts = {"train": 3766, "val": 444, "test": 442}
    rates = {"train": 0.14684, "val": 0.12387, "test": 0.07919}
    # then validation's reference is the training rate, test's the pooled train+val rate
    val, test = (
        reference("val", counts=counts, rates=rates),
        reference("test", counts=counts, rates=rates),
    )
    assert (val.rate, val.source, val.own_rate) == (0.14684, "train", 0.12387)
    pooled = (3766 * 0.14684 + 444 * 0.12387) / (3766 + 444)
    assert test.rate == pytest.approx(pooled) and test.source == "train+val"
    assert test.rate == pytest.approx(0.1444, abs=1e-4)
    # the floor is the split's own entropy, below the reference's BCE by what the shift is worth
    assert test.floor == pytest.approx(-(0.07919 * math.log(0.07919) + 0.92081 * math.log(0.92081)))
    assert test.shift_gain == pytest.approx(test.bce - test.floor) and test.shift_gain > 0.019
    # and a count that is not known leaves the training rate alone, saying so
    alone = reference("test", counts={"train": 0, "val": 444}, rates=rates)
    assert (alone.rate, alone.source) == (0.14684, "train")
    with pytest.raises(ValueError, match="'val' or 'test'"):
        reference("train", counts=counts, rates=rates)


def test_the_reference_bce_is_the_mean_bce_of_its_constant_on_the_split() -> None:
    labels = (np.random.default_rng(0).random(1000) < 0.08).astype(float)
    ref = Reference("test", 0.144, "train+val", float(labels.mean()))
    constant = stats.constant_logits(0.144, len(labels))
    assert ref.bce == pytest.approx(stats.bce_per_window(constant, labels).mean(), rel=1e-12)
    own = stats.constant_logits(float(labels.mean()), len(labels))
    assert ref.floor == pytest.approx(stats.bce_per_window(own, labels).mean(), rel=1e-12)
    assert cross_entropy(0.3, 0.3) == pytest.approx(stats.binary_entropy(0.3))
    assert cross_entropy(0.3, 0.0) == math.inf


def _labels(rng: np.random.Generator, rate: float, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels of overlapping windows: whether the sum of the next `horizon` daily shocks is
    high (neighbours share horizon − 1 days), and that sum (what a skilled model sees)."""
    shocks = rng.normal(size=N + horizon)
    summed = np.convolve(shocks, np.ones(horizon), "valid")[:N] / math.sqrt(horizon)
    return (summed > norm.ppf(1 - rate)).astype(float), summed


def test_a_constant_beats_the_reference_only_where_the_shift_is_flagged() -> None:
    # given label sets around a reference rate of 0.144, some shifted, some not
    rng = np.random.default_rng(1)
    agree = flagged = 0
    for i in range(40):
        labels, _ = _labels(rng, 0.144 + 0.002 * (i - 20), horizon=5)
        ref = Reference("test", 0.144, "train+val", float(labels.mean()))
        shift = shift_of(ref, labels, split="test", horizon=5, starts=None)
        reference_loss = stats.bce_per_window(stats.constant_logits(0.144, N), labels)

        def beats(c: float, labels: np.ndarray = labels, base: np.ndarray = reference_loss) -> bool:
            loss = stats.bce_per_window(stats.constant_logits(c, N), labels)
            return stats.paired_difference(loss, base, min_lag=5).p_lower < 0.025

        # then no constant beats the reference unless the shift test finds the move
        assert all(not beats(c) or shift.flagged for c in (0.06, 0.10, 0.13, 0.16, 0.20))
        # and one nudged slightly toward the split's rate beats it exactly when it does
        nudged = 0.144 + 1e-4 * float(np.sign(labels.mean() - 0.144))
        agree += beats(nudged) == shift.flagged
        flagged += shift.flagged
    assert agree == 40 and 5 <= flagged <= 35  # both cases occur


def _world(
    rng: np.random.Generator, *, reference_rate: float, rate: float, horizon: int, model: str
) -> tuple[bool, str, bool]:
    """One test split: whether the shift is flagged, the model's claim, and whether the old
    rule (lower BCE than a constant at the earlier rate, one-sided 2.5 %) would call it better."""
    labels, seen = _labels(rng, rate, horizon)
    if model == "knows the rate":  # a regime feature told it the level: no skill
        logits = np.full(N, _logit(rate))
    elif model == "noise":  # predictions that wander around the new rate, blind to the labels
        wander = np.convolve(rng.normal(size=N + horizon), np.ones(horizon), "valid")[:N]
        logits = _logit(rate) + 0.3 * wander / math.sqrt(horizon)
    else:  # skilled: it sees part of the future shocks
        logits = _logit(rate) + 0.6 * seen + rng.normal(0, 0.3, N)
    ref = Reference("test", reference_rate, "train+val", float(labels.mean()))
    shift = shift_of(ref, labels, split="test", horizon=horizon, starts=None)
    skill = judge(logits, labels, shift=shift, horizon=horizon, starts=None)
    return shift.flagged, skill.claim, skill.vs_base_rate.p_lower < 0.025


REPS = 400


@pytest.mark.slow  # about 90 s per horizon on a shared 2-core machine: 4,000 test splits
@pytest.mark.parametrize("horizon", [1, 5])
def test_drift_without_skill_is_not_called_better_than_the_reference(horizon: int) -> None:
    # given 400 test splits of 450 overlapping windows whose rate fell from 0.15 to 0.06
    def share(model: str, rate: float, what: int, value: object = True) -> float:
        rng = np.random.default_rng(horizon * 100 + int(rate * 1000) + len(model))
        runs = [
            _world(rng, reference_rate=0.15, rate=rate, horizon=horizon, model=model)
            for _ in range(REPS)
        ]
        return float(np.mean([r[what] == value for r in runs]))

    for model in ("knows the rate", "noise"):
        # then a model with no skill is called better at no more than the nominal 2.5 %
        # (plus the simulation's noise), with drift and without
        assert share(model, 0.06, 1, "better") <= 0.04, model
        assert share(model, 0.15, 1, "better") <= 0.04, model
    # while the old bar, a constant at the earlier rate, is beaten by drift alone in most splits
    assert share("knows the rate", 0.06, 2) >= 0.4
    # the shift itself is flagged in ≥ 90 % of the drifted splits, in ≤ 10 % of the others
    assert share("noise", 0.06, 0) >= 0.9
    assert share("noise", 0.15, 0) <= 0.10
    # and real skill is still called better under drift in most splits (it must beat the floor)
    assert share("skilled", 0.06, 1, "better") >= 0.5
    assert share("skilled", 0.15, 1, "better") >= 0.9
