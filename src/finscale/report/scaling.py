"""Does validation error fall as a power of parameter count? A log-log fit of each budget's best
trial, and a bootstrap that says how sure that fit is.

The error is the trial value when it is minimized (BCE) and one minus it when it is maximized
(AUC), so that a positive exponent always means "bigger is better":

    error(N) = a * N^(-alpha)

Each budget's best trial is a noisy estimate twice over: the search might have found a better
one (search luck), and its metric was measured on a finite validation sample (evaluation noise).
The bootstrap redraws, for every budget, its top-k trials with replacement, moves each by a
normal draw of its validation standard error (when stored), keeps the best, and refits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from finscale.report.collect import StudyResult, trial_arch

# The research system's labels for the exponent (reference §7.6).
STRONG_ALPHA = 0.15
MODERATE_ALPHA = 0.08
Strength = Literal["strong", "moderate", "weak"]
STRENGTHS: tuple[Strength, ...] = ("strong", "moderate", "weak")


def strength(alpha: float) -> Strength:
    """`strong` above 0.15, `moderate` above 0.08, `weak` otherwise (inverse scaling included)."""
    if alpha > STRONG_ALPHA:
        return "strong"
    if alpha > MODERATE_ALPHA:
        return "moderate"
    return "weak"


@dataclass(frozen=True)
class PowerLawFit:
    """error = coefficient * N^(-alpha), fitted by least squares in log-log space."""

    alpha: float
    coefficient: float
    r2: float  # in log space; 1.0 by construction with two points
    n_points: int

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        return self.coefficient * np.asarray(n, dtype=float) ** (-self.alpha)


def fit_power_law(params: Sequence[float], errors: Sequence[float]) -> PowerLawFit:
    """Fit error = a * N^(-alpha).

    Raises:
        ValueError: fewer than two distinct parameter counts, or a count or error that is not
            positive.
    """
    x = np.asarray(params, dtype=float)
    y = np.asarray(errors, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} parameter counts but {len(y)} errors")
    if len(np.unique(x)) < 2:
        raise ValueError(f"a power law needs two distinct parameter counts, got {x.tolist()}")
    if (x <= 0).any() or (y <= 0).any() or not np.isfinite(y).all():
        raise ValueError(f"parameter counts and errors must be positive: {x.tolist()} {y.tolist()}")
    lx, ly = np.log(x), np.log(y)
    slope, intercept = np.polyfit(lx, ly, 1)
    residual = ly - (intercept + slope * lx)
    total = ((ly - ly.mean()) ** 2).sum()
    r2 = 1.0 - float((residual**2).sum() / total) if total > 0 else 1.0
    return PowerLawFit(
        alpha=float(-slope), coefficient=float(math.exp(intercept)), r2=r2, n_points=len(x)
    )


def baseline_error(metric: str, positive_rate: float | None) -> float:
    """The error of predicting the validation base rate for every window: its binary entropy
    for BCE (a stricter bar than the training rate), 0.5 for AUC. NaN when unknown."""
    if metric.endswith("auc"):
        return 0.5
    if metric.endswith("bce") and positive_rate is not None and 0 < positive_rate < 1:
        p = positive_rate
        return -(p * math.log(p) + (1 - p) * math.log(1 - p))
    return math.nan


def to_error(value: float, direction: str) -> float:
    """The quantity that should fall with scale: the value, or 1 - value when maximized."""
    return value if direction == "minimize" else 1.0 - value


@dataclass(frozen=True)
class BudgetPoint:
    """One budget of one horizon: its best trial and the top-k the bootstrap draws from."""

    study: str
    budget: str
    budget_params: int
    param_count: int  # of the best trial's architecture
    value: float  # the best trial's value
    error: float  # the value as an error (see `to_error`)
    error_se: float  # its validation standard error (NaN when not stored)
    arch: str
    trial: int
    top_errors: tuple[float, ...]
    top_se: tuple[float, ...]
    top_params: tuple[int, ...]
    partial: bool  # the study has not spent its budget
    baseline_error: float  # the error of a constant guess (see `baseline_error`); NaN: unknown

    @property
    def baseline_z(self) -> float:
        """How many standard errors the best trial beats the constant guess by."""
        if math.isnan(self.baseline_error) or not self.error_se > 0:
            return math.nan
        return (self.baseline_error - self.error) / self.error_se


@dataclass(frozen=True)
class Uncertainty:
    """The bootstrap distribution of alpha."""

    low: float  # 2.5th percentile
    high: float  # 97.5th percentile
    std: float
    share_positive: float  # share of resamples with alpha > 0
    share_by_strength: dict[str, float]  # share of resamples labelled strong / moderate / weak
    n_resamples: int
    band_n: tuple[float, ...] = field(repr=False)  # parameter counts of the band
    band_low: tuple[float, ...] = field(repr=False)
    band_high: tuple[float, ...] = field(repr=False)


@dataclass(frozen=True)
class ScalingResult:
    """The scaling answer for one horizon."""

    horizon: int
    metric: str
    direction: str
    points: list[BudgetPoint]
    fit: PowerLawFit | None
    uncertainty: Uncertainty | None
    top_k: int
    note: str  # why there is no fit, or what limits it; empty when nothing does

    @property
    def strength(self) -> Strength | None:
        return strength(self.fit.alpha) if self.fit else None


def budget_point(result: StudyResult, *, top_k: int) -> BudgetPoint | None:
    """The study's best trial and top-k; None without a completed trial of known size."""
    sized = [(t, a.param_count) for t in result.complete if (a := trial_arch(t)) and a.param_count]
    if not sized or result.budget is None or result.budget_params is None:
        return None
    top = [t for t, _ in sized[:top_k]]
    sizes = tuple(n for _, n in sized[:top_k])
    se_key = f"{result.metric}_se"
    errors = tuple(to_error(float(t.value), result.direction) for t in top)  # type: ignore[arg-type]
    se = tuple(float(t.user_attrs.get(se_key, math.nan) or math.nan) for t in top)
    best = top[0]
    return BudgetPoint(
        study=result.name,
        budget=result.budget,
        budget_params=result.budget_params,
        param_count=sizes[0],
        value=float(best.value),  # type: ignore[arg-type]
        error=errors[0],
        error_se=se[0],
        arch=str(best.params["arch"]),
        trial=best.number,
        top_errors=errors,
        top_se=se,
        top_params=sizes,
        partial=not result.done,
        baseline_error=baseline_error(
            result.metric, best.user_attrs.get(f"{result.metric.split('_')[0]}_positive_rate")
        ),
    )


def bootstrap(
    points: list[BudgetPoint], *, n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Alpha and log-coefficient of `n_resamples` refits (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    log_x = np.empty((n_resamples, len(points)))
    log_y = np.empty((n_resamples, len(points)))
    for j, p in enumerate(points):
        k = len(p.top_errors)
        draw = rng.integers(0, k, size=(n_resamples, k))
        errors = np.asarray(p.top_errors)[draw]
        se = np.nan_to_num(np.asarray(p.top_se), nan=0.0)[draw]
        errors = errors + rng.normal(size=errors.shape) * se
        errors = np.maximum(errors, 1e-12)  # an error is positive
        pick = errors.argmin(axis=1)
        rows = np.arange(n_resamples)
        log_y[:, j] = np.log(errors[rows, pick])
        log_x[:, j] = np.log(np.asarray(p.top_params, dtype=float)[draw[rows, pick]])
    # Least squares per resample, in closed form.
    dx = log_x - log_x.mean(axis=1, keepdims=True)
    dy = log_y - log_y.mean(axis=1, keepdims=True)
    var = (dx**2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (dx * dy).sum(axis=1) / var
    intercept = log_y.mean(axis=1) - slope * log_x.mean(axis=1)
    keep = np.isfinite(slope)
    return -slope[keep], intercept[keep]


def scaling(
    results: list[StudyResult], *, top_k: int = 5, n_resamples: int = 2000, seed: int = 0
) -> list[ScalingResult]:
    """The scaling answer per horizon, across the budgets of finscale's studies.

    Studies without a stored spec (not set up by finscale) or without a completed trial are
    left out; a horizon with fewer than two budgets gets no fit and says why.
    """
    by_horizon: dict[int, list[StudyResult]] = {}
    for r in results:
        if r.horizon is not None and r.budget_params is not None:
            by_horizon.setdefault(r.horizon, []).append(r)
    answers = []
    for horizon, group in sorted(by_horizon.items()):
        group.sort(key=lambda r: r.budget_params or 0)
        metric, direction = group[0].metric, group[0].direction
        points = [p for r in group if (p := budget_point(r, top_k=top_k)) is not None]
        missing = [r.name for r in group if all(p.study != r.name for p in points)]
        notes = []
        if missing:
            notes.append(f"no completed trial yet in {', '.join(missing)}")
        if any(p.partial for p in points):
            notes.append("some studies have not spent their budget: the answer may change")
        fit, uncertainty = None, None
        if len({p.param_count for p in points}) < 2:
            have = f"{len(points)} budget{'' if len(points) == 1 else 's'} with results"
            notes.insert(0, f"{have}; a fit needs two")
        else:
            fit = fit_power_law([p.param_count for p in points], [p.error for p in points])
            uncertainty = _uncertainty(points, fit, n_resamples=n_resamples, seed=seed)
            if len(points) == 2:
                notes.append("two budgets: R² is 1 by construction")
            if all(len(p.top_errors) == 1 for p in points) and all(
                math.isnan(s) for p in points for s in p.top_se
            ):
                notes.append("one trial per budget and no stored standard errors: no uncertainty")
        answers.append(
            ScalingResult(
                horizon=horizon,
                metric=metric,
                direction=direction,
                points=points,
                fit=fit,
                uncertainty=uncertainty,
                top_k=top_k,
                note="; ".join(notes),
            )
        )
    return answers


def _uncertainty(
    points: list[BudgetPoint], fit: PowerLawFit, *, n_resamples: int, seed: int
) -> Uncertainty | None:
    alphas, intercepts = bootstrap(points, n_resamples=n_resamples, seed=seed)
    if len(alphas) == 0:
        return None
    lo = min(p.param_count for p in points) / 1.5
    hi = max(p.param_count for p in points) * 1.5
    grid = np.geomspace(lo, hi, 40)
    curves = np.exp(intercepts[:, None] - alphas[:, None] * np.log(grid)[None, :])
    labels = [strength(float(a)) for a in alphas]
    return Uncertainty(
        low=float(np.percentile(alphas, 2.5)),
        high=float(np.percentile(alphas, 97.5)),
        std=float(alphas.std(ddof=1)) if len(alphas) > 1 else 0.0,
        share_positive=float((alphas > 0).mean()),
        share_by_strength={
            s: labels.count(s) / len(labels) for s in ("strong", "moderate", "weak")
        },
        n_resamples=len(alphas),
        band_n=tuple(grid.tolist()),
        band_low=tuple(np.percentile(curves, 2.5, axis=0).tolist()),
        band_high=tuple(np.percentile(curves, 97.5, axis=0).tolist()),
    )
