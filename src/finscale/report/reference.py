"""The reference on a study's validation and test windows, from what the study stored.

The reference is `finscale.train.reference`'s: the constant at the rate of every label a model
may use before the split (train for validation, train + validation for test, refit or not),
computed from the windows record (the training count and rate, the validation labels), so that
studies stored by earlier releases are judged by it too. The stored `base_rate` baseline (a
constant at the training rate on both splits) is used only for its exact training rate.

A split whose rate moved from the reference's is a trap: a model that predicts the move beats
the reference with no skill. `Shift` tests the move: the mean of the split's labels minus the
reference rate, with the Newey–West error of the paired tests. For a fixed constant c the
per-window BCE difference against the reference is an affine function of the label (same lag,
same fixed-b critical value), so a constant that beats the reference in the paired BCE test
implies this test finds the move, and a constant nudged slightly from the reference toward the
split's rate beats it whenever this test does. When it does, a predictor's lower BCE is credited
as skill only if it also beats the floor, a constant at the split's own rate
(`stats.Skill.claim`); the AUC, which no rate moves, stands beside it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from finscale.report import stats
from finscale.train.reference import Reference, reference

if TYPE_CHECKING:
    from finscale.report.collect import StudyResult

SHIFT_LEVEL = 0.05  # two-sided: a constant nudged either way beats the reference at 2.5 %
_EPS = 1e-6


@dataclass(frozen=True)
class Shift:
    """A split's reference, its floor, and how far the split's labels moved from the reference.

    `test` is None when the reference could not be set from earlier labels (a study stored
    without its training rate): the split's own rate stands in, a stricter bar."""

    reference: Reference
    n: int  # the split's windows
    test: stats.PairedTest | None  # the split's labels minus the reference rate

    @property
    def flagged(self) -> bool:
        """The move is larger than the paired test's noise absorbs (two-sided 5 %)."""
        return self.test is not None and self.test.p_value < SHIFT_LEVEL

    @property
    def split(self) -> str:
        return self.reference.split


def study_reference(result: StudyResult, split: str) -> Reference | None:
    """The reference of a study's "val" or "test" windows; None when the study stored neither
    the split's labels nor the training rate."""
    windows = result.windows
    labels = windows.val if split == "val" else windows.test
    if labels is None:
        return None
    base = result.baselines.get("base_rate")
    stored = base.details.get("train_rate") if base is not None else None
    train_rate = float(stored) if stored is not None else windows.train_positive_rate
    val = windows.val
    counts = {"train": windows.train_n, "val": len(val.labels) if val is not None else 0}
    rates = {
        "train": train_rate,
        "val": val.positive_rate if val is not None else math.nan,
        split: labels.positive_rate,
    }
    try:
        return reference(split, counts=counts, rates=rates)
    except ValueError:
        return None


def shift_of(
    ref: Reference | None,
    labels: np.ndarray,
    *,
    split: str,
    horizon: int,
    starts: np.ndarray | None,
) -> Shift:
    """The split's move from its reference (the split's own rate when `ref` is None)."""
    y = np.asarray(labels, dtype="float64")
    if ref is None:
        own = float(y.mean())
        return Shift(Reference(split, own, "own", own), len(y), None)
    test = stats.paired_difference(y, np.full(len(y), ref.rate), min_lag=horizon, starts=starts)
    kind = test.test.split(", ", 1)[-1]
    named = f"the split's labels minus the reference rate, {kind}"
    return Shift(ref, len(y), dataclasses.replace(test, test=named))


def constant(rate: float, n: int) -> np.ndarray:
    """A constant predictor's logits (the rate kept off 0 and 1)."""
    return stats.constant_logits(float(np.clip(rate, _EPS, 1 - _EPS)), n)


def judge(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    shift: Shift,
    baselines: Mapping[str, np.ndarray] | None = None,
    horizon: int,
    starts: np.ndarray | None,
    losses: np.ndarray | None = None,
) -> stats.Skill:
    """One predictor against the split's reference, its floor and the baselines (`stats.skill`
    with the reference of `shift`)."""
    n = len(labels)
    return stats.skill(
        scores,
        labels,
        base_logits=constant(shift.reference.rate, n),
        floor_logits=constant(shift.reference.own_rate, n),
        baselines=baselines,
        min_lag=horizon,
        starts=starts,
        losses=losses,
        shifted=shift.flagged,
    )
