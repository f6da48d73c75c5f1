"""What the scaling figures draw, as plain numbers taken from the report's results: no
matplotlib here, so a test can compare a figure's data with analysis.json.

Every loss is drawn on the paired scale: minus the loss of one reference predictor (the best of
the base rate and the baselines) on the same windows. The noise every predictor shares (the hard
windows are hard for all) then drops out, as it does in the paired tests, and an interval that
excludes zero is a difference those tests call significant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from finscale.plural import counted
from finscale.report import stats
from finscale.report.final import FinalAnswer
from finscale.report.scaling import ExponentFit, ScalingFit, ScalingResult, SlopeFit

BASE_RATE = "reference constant"


@dataclass(frozen=True)
class Reference:
    """A predictor the models are measured against, and its mean loss on the windows."""

    name: str
    loss: float


@dataclass(frozen=True)
class PairedPoint:
    """One budget's model minus the reference, with the paired test's 95 % interval."""

    budget: str
    params: int  # the model's own parameter count
    difference: float
    low: float
    high: float
    p_value: float  # two-sided


@dataclass(frozen=True)
class PairedView:
    """Each budget's model against the best reference on one split's windows."""

    split: str  # "validation" or "test"
    model: str  # what each point is: "best trial", "final model"
    reference: Reference  # the zero line
    others: tuple[Reference, ...]  # the other references, drawn at their loss minus the reference
    points: tuple[PairedPoint, ...]
    trials: tuple[tuple[int, float], ...] = ()  # every completed trial: (params, loss − reference)


@dataclass(frozen=True)
class SlopeView:
    """The budgets' points across sizes, the fitted slope per decade and its 95 % interval
    drawn as a fan about the budgets' centre (where the least-squares line is pinned)."""

    split: str
    points_are: str  # e.g. "expected best of 6 trials"
    offset: float  # subtracted from every loss: the reference's loss (0: raw losses)
    reference: str | None  # the reference's name (None: raw losses)
    budgets: tuple[str, ...]
    params: tuple[float, ...]
    values: tuple[float, ...]  # each point's loss minus `offset`
    slope: SlopeFit
    exponent: ExponentFit | None
    centre: float  # mean log10 of the points' parameter counts

    def grid(self, n: int = 60) -> np.ndarray:
        low, high = min(self.params), max(self.params)
        return np.geomspace(low / 1.3, high * 1.3, n)

    def line(self, grid: np.ndarray) -> np.ndarray:
        return self.slope.predict(grid) - self.offset

    def fan(self, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Lines through the centre with the slope's interval ends: for every pair of sizes,
        the band's spread is the interval of the fitted difference between them. None when
        the slope has no interval."""
        s = self.slope
        if math.isnan(s.low) or math.isnan(s.high):
            return None
        dx = np.log10(grid) - self.centre
        pivot = float(s.predict(10**self.centre)) - self.offset
        a, b = pivot + s.low * dx, pivot + s.high * dx
        return np.minimum(a, b), np.maximum(a, b)


def references(skill: stats.Skill) -> dict[str, tuple[Reference, stats.PairedTest]]:
    """The references a model's paired tests name, each with its loss on the same windows
    (the model's loss minus the test's mean difference) and the test."""
    tests = {BASE_RATE: skill.vs_base_rate, **skill.vs_baselines}
    return {name: (Reference(name, skill.loss - t.mean), t) for name, t in tests.items()}


def _paired_view(
    split: str,
    model: str,
    rows: Sequence[tuple[str, int, stats.Skill]],
    trials: Sequence[tuple[Sequence[int], Sequence[float]]] = (),
) -> PairedView | None:
    """The view of budgets (label, parameter count, skill) measured on the same windows."""
    if not rows:
        return None
    refs = [references(skill) for _, _, skill in rows]
    names = [n for n in refs[0] if all(n in r for r in refs)]
    loss = {n: float(np.mean([r[n][0].loss for r in refs])) for n in names}
    best = min(names, key=lambda n: loss[n])
    points = []
    for (budget, params, _), r in zip(rows, refs, strict=True):
        test = r[best][1]
        low, high = test.ci95
        points.append(PairedPoint(budget, params, test.mean, low, high, test.p_value))
    dots = tuple(
        (int(n), float(v) - loss[best])
        for sizes, losses in trials
        for n, v in zip(sizes, losses, strict=True)
    )
    return PairedView(
        split=split,
        model=model,
        reference=Reference(best, loss[best]),
        others=tuple(Reference(n, loss[n]) for n in names if n != best),
        points=tuple(points),
        trials=dots,
    )


def validation_view(answer: ScalingResult) -> PairedView | None:
    """Each budget's best trial against the best reference on the validation windows; None
    when the trials hold no window-level predictions (no paired test)."""
    if not answer.points or any(p.skill is None for p in answer.points):
        return None
    rows = [(p.budget, p.param_count, p.skill) for p in answer.points if p.skill is not None]
    trials = [(p.top_params, p.top_losses) for p in answer.points]
    return _paired_view("validation", "best trial", rows, trials)


def final_view(final: FinalAnswer) -> PairedView | None:
    """Each budget's final model against the best reference on the test windows."""
    rows = [(m.budget, m.param_count, m.skill) for m in final.models]
    return _paired_view("test", "final model", rows)


def slope_view(fit: ScalingFit | None, reference: Reference | None) -> SlopeView | None:
    """The fit's points and slope, minus the reference's loss (raw without a reference)."""
    if fit is None:
        return None
    offset = reference.loss if reference is not None else 0.0
    points_are = (
        "final model" if fit.split == "test" else f"expected best of {counted(fit.m, 'trial')}"
    )
    return SlopeView(
        split=fit.split,
        points_are=points_are,
        offset=offset,
        reference=reference.name if reference is not None else None,
        budgets=fit.budgets,
        params=fit.params,
        values=tuple(v - offset for v in fit.losses),
        slope=fit.slope,
        exponent=fit.exponent,
        centre=float(np.mean(np.log10(fit.params))),
    )
