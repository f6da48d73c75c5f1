"""The reference a model's loss on a split is judged against, the one definition `finscale
train` and the report use.

The reference of a split is the constant at the positive rate of every label a model may use
before that split: the training labels for validation; the training and validation labels for
test (the search chose on validation, and a refit trains on it). A label rate that drifts from
one split to the next cannot beat it by accident of definition: a model that "beats" a constant
at the training rate on a test split whose rate fell may only have predicted the fall.

The split's own rate gives the floor: the loss of a constant that knew the split's rate, the
best any constant can do there, unattainable without its labels. The gap between reference and
floor is what knowing the shift alone is worth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from finscale.train.metrics import binary_entropy

SPLITS_BEFORE = {"val": ("train",), "test": ("train", "val")}  # whose labels a model may use


def cross_entropy(rate: float, predicted: float) -> float:
    """The mean BCE (nats) of predicting `predicted` for every window of a split whose positive
    rate is `rate`; infinite when a class that occurs is predicted with probability 0."""
    if rate == predicted:
        return binary_entropy(rate)
    if not 0.0 < predicted < 1.0:
        return math.inf
    return -(rate * math.log(predicted) + (1.0 - rate) * math.log(1.0 - predicted))


def pooled_rate(parts: Iterable[tuple[int, float]]) -> float:
    """The positive rate of several splits' labels together, from each one's (count, rate)."""
    counted = [(n, r) for n, r in parts if n > 0 and math.isfinite(r)]
    total = sum(n for n, _ in counted)
    return sum(n * r for n, r in counted) / total if total else math.nan


@dataclass(frozen=True)
class Reference:
    """A split's reference constant and its floor."""

    split: str  # "val" or "test"
    rate: float  # the reference constant: the positive rate of the labels a model may use
    source: str  # whose labels set it: "train" or "train+val"
    own_rate: float  # the split's own positive rate

    @property
    def bce(self) -> float:
        """The reference constant's BCE on the split."""
        return cross_entropy(self.own_rate, self.rate)

    @property
    def floor(self) -> float:
        """The BCE of a constant that knew the split's rate (its entropy): unattainable."""
        return binary_entropy(self.own_rate)

    @property
    def shift_gain(self) -> float:
        """What knowing the split's rate is worth against the reference (BCE, ≥ 0)."""
        return self.bce - self.floor


def reference(split: str, *, counts: dict[str, int], rates: dict[str, float]) -> Reference:
    """The reference of `split` from each split's window count and positive rate.

    Rates are pooled by count; when a count is unknown (0) the training rate alone sets it,
    and `source` says so.

    Raises:
        ValueError: `split` is neither "val" nor "test", or no split before it has a rate.
    """
    if split not in SPLITS_BEFORE:
        raise ValueError(f"a reference is for 'val' or 'test', not {split!r}")
    before = SPLITS_BEFORE[split]
    known = [s for s in before if math.isfinite(rates.get(s, math.nan))]
    if not known:
        raise ValueError(f"no positive rate of {' or '.join(before)} labels: no reference")
    used = known if all(counts.get(s, 0) > 0 for s in known) else known[:1]
    rate = pooled_rate((counts[s], rates[s]) for s in used) if len(used) > 1 else rates[used[0]]
    return Reference(
        split=split, rate=rate, source="+".join(used), own_rate=rates.get(split, math.nan)
    )
