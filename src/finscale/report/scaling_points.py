"""Studies → scaling points: each budget's completed trials scored from their stored
predictions (or, for trials written before predictions were stored, their stored values)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from finscale.predictions import decode_labels, decode_logits
from finscale.records import TRIAL_VAL_LABELS, TRIAL_VAL_LOGITS, fail_reason
from finscale.report import stats
from finscale.report.reference import Shift, judge, shift_of
from finscale.report.scaling_bootstrap import BudgetTrials, ScalingFit
from finscale.report.scaling_fit import (
    ExponentFit,
    SlopeFit,
    Verdict,
    expected_best_weights,
    fit_exponent,
    fit_notes,
    slopes,
)

if TYPE_CHECKING:  # the fit itself needs no Optuna; only reading studies does
    from finscale.report.collect import StudyResult


@dataclass(frozen=True)
class StudyWindows:
    """What the report knows of a study's validation windows beyond its trials."""

    starts: np.ndarray | None = None  # segment starts (see `stats.segments`); None: one run
    baselines: Mapping[str, np.ndarray] = field(default_factory=dict)  # name → val logits
    shift: Shift | None = None  # the reference (train rate) and the split's move from it;
    # None: the split's own rate stands in


@dataclass(frozen=True)
class BudgetPoint:
    """One budget of one horizon: the search's best trial and the scaling point."""

    study: str
    budget: str
    budget_params: int
    trial: int  # the search's best trial
    arch: str
    param_count: int  # of that trial's architecture
    value: float  # its stored value
    completed: int
    lost: int  # pruned and diverged trials (losers in the expected best-of-m)
    loss: float  # the point: expected best-of-m loss (val BCE from the stored predictions)
    loss_low: float  # joint-bootstrap 95 % interval (NaN: untested)
    loss_high: float
    point_params: float  # the point's parameter count
    top_losses: tuple[float, ...]  # every completed trial's loss, best first
    top_params: tuple[int, ...]
    partial: bool  # the study has not spent its budget
    base_rate_loss: float  # the reference constant's BCE on the same windows (NaN: unknown)
    skill: stats.Skill | None  # of the best trial; None without stored predictions


@dataclass(frozen=True)
class ScalingResult:
    """The scaling answer for one horizon."""

    horizon: int
    metric: str  # the studies' objective
    direction: str
    points: list[BudgetPoint]
    scaling: ScalingFit | None  # None with fewer than two budgets
    top_k: int | None
    loss_name: str  # what the points measure
    note: str  # why there is no fit, or what limits it; empty when nothing does
    baselines: Mapping[str, float] = field(default_factory=dict)  # name → val BCE, same windows
    reference: Shift | None = None  # the windows' reference, floor and rate shift
    baseline_skill: Mapping[str, stats.Skill] = field(default_factory=dict)  # name → its tests

    @property
    def verdict(self) -> Verdict | None:
        return self.scaling.verdict if self.scaling else None

    # The CLI's one line per horizon reads these three.
    @property
    def fit(self) -> ExponentFit | None:
        return self.scaling.exponent if self.scaling else None

    @property
    def uncertainty(self) -> ExponentFit | None:
        e = self.fit
        return e if e is not None and e.n_resamples > 0 else None

    @property
    def strength(self) -> Verdict | None:
        """The verdict (the research system's α labels are gone: see the module docstring)."""
        return self.verdict


def as_error(value: float, direction: str) -> float:
    return value if direction == "minimize" else 1.0 - value


def lost_trials(result: StudyResult) -> int:
    from optuna.trial import TrialState

    diverged = sum(
        1 for t in result.trials if t.state == TrialState.FAIL and "diverg" in fail_reason(t)
    )
    return result.count(TrialState.PRUNED) + diverged


Row = tuple[int, int, float, np.ndarray]  # trial number, parameter count, value, val logits


def stored_rows(result: StudyResult) -> tuple[list[Row], np.ndarray | None, int]:
    """The completed trials holding predictions, best first, the labels, and how many completed
    trials of known size hold none (written before predictions were stored, or by hand)."""
    from finscale.report.collect import trial_arch

    # The study stores its validation labels once; older trials carried them themselves.
    labels = result.val_windows.labels if result.val_windows is not None else None
    rows: list[Row] = []
    without = 0
    for t in result.complete:
        arch = trial_arch(t)
        if arch is None or not arch.param_count:
            continue
        if TRIAL_VAL_LOGITS not in t.user_attrs:
            without += 1
            continue
        if labels is None and TRIAL_VAL_LABELS in t.user_attrs:
            labels = decode_labels(t.user_attrs[TRIAL_VAL_LABELS])
        logits = decode_logits(t.user_attrs[TRIAL_VAL_LOGITS])
        rows.append((t.number, arch.param_count, float(t.value), logits))  # type: ignore[arg-type]
    if labels is None:
        return [], None, without + len(rows)
    kept = [r for r in rows if len(r[3]) == len(labels)]
    return kept, labels, without + len(rows) - len(kept)


def budget_point(
    r: StudyResult,
    rows: list[Row],
    losses: list[float],
    *,
    lost: int,
    base_rate_loss: float = math.nan,
    skill: stats.Skill | None = None,
) -> BudgetPoint:
    """A budget's point before the fit: its best trial; the fit fills the expected best-of-m."""
    number, size, value, _ = rows[0]
    arch = next(t.params.get("arch") for t in r.trials if t.number == number)
    return BudgetPoint(
        study=r.name,
        budget=r.budget or r.name,
        budget_params=r.budget_params or 0,
        trial=number,
        arch=str(arch),
        param_count=size,
        value=value,
        completed=len(rows),
        lost=lost,
        loss=losses[0],
        loss_low=math.nan,
        loss_high=math.nan,
        point_params=float(size),
        top_losses=tuple(losses),
        top_params=tuple(row[1] for row in rows),
        partial=not r.done,
        base_rate_loss=base_rate_loss,
        skill=skill,
    )


def joint_point(
    r: StudyResult, rows: list[Row], labels: np.ndarray, *, horizon: int, extra: StudyWindows
) -> tuple[BudgetPoint, BudgetTrials]:
    """A budget scored from its stored predictions: per-window losses and the paired tests."""
    lost = lost_trials(r)
    losses = np.stack([stats.bce_per_window(row[3], labels) for row in rows])
    shift = extra.shift or shift_of(None, labels, split="val", horizon=horizon, starts=extra.starts)
    skill = None
    if 0 < labels.sum() < len(labels):
        skill = judge(
            rows[0][3],
            labels,
            shift=shift,
            baselines=extra.baselines,
            horizon=horizon,
            starts=extra.starts,
        )
    point = budget_point(
        r,
        rows,
        losses.mean(axis=1).tolist(),
        lost=lost,
        base_rate_loss=shift.reference.bce,
        skill=skill,
    )
    sizes = np.array([row[1] for row in rows])
    return point, BudgetTrials(point.budget, losses, sizes, n_lost=lost)


def with_fitted_point(p: BudgetPoint, fit: ScalingFit, i: int) -> BudgetPoint:
    return BudgetPoint(
        **{
            **p.__dict__,
            "loss": fit.losses[i],
            "loss_low": fit.losses_low[i],
            "loss_high": fit.losses_high[i],
            "point_params": fit.params[i],
        }
    )


def values_only_fit(points: list[BudgetPoint], *, top_k: int | None) -> ScalingFit:
    """Point estimates from stored values alone (trials written before predictions were
    stored): the same expected best-of-m, no interval, no verdict."""
    m = min(p.completed + p.lost for p in points)
    if top_k is not None:
        m = max(1, min(m, top_k))
    weights = [
        expected_best_weights(p.completed, n_total=p.completed + p.lost, m=m) for p in points
    ]
    y = np.array([[float(np.dot(p.top_losses, w)) for p, w in zip(points, weights, strict=True)]])
    x = np.array(
        [[float(np.dot(np.log10(p.top_params), w)) for p, w in zip(points, weights, strict=True)]]
    )
    slope, intercept = slopes(x, y)
    params = 10 ** x[0]
    exponent = None
    if len(points) >= 3 and len(np.unique(params)) >= 3 and (y >= 0).all():
        exponent = fit_exponent(params, y[0])
    nan = tuple(math.nan for _ in points)
    return ScalingFit(
        budgets=tuple(p.budget for p in points),
        m=m,
        params=tuple(params.tolist()),
        losses=tuple(y[0].tolist()),
        losses_low=nan,
        losses_high=nan,
        slope=SlopeFit(float(slope[0]), float(intercept[0]), math.nan, math.nan, math.nan, 0),
        exponent=exponent,
        largest_vs_smallest=None,
        block_length=0,
        n_windows=0,
        notes=tuple(fit_notes(m, len(points), "finished trials' stored values", exponent)),
    )
