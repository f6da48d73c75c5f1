"""The joint bootstrap of a scaling fit: each budget's completed trials scored on the same
validation windows, resampled together (see `report.scaling` for why)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from finscale.report import stats
from finscale.report.hac import fixed_b_critical_value
from finscale.report.scaling_fit import (
    ALPHA_MAX,
    ALPHA_MIN,
    ExponentFit,
    SlopeFit,
    Verdict,
    expected_best_weights,
    exponent_resamples,
    fit_exponent,
    fit_notes,
    interval,
    slopes,
)


@dataclass(frozen=True)
class BudgetTrials:
    """One budget's completed trials, scored on the validation windows every budget shares."""

    budget: str  # a label, e.g. "20M"
    losses: np.ndarray  # (n_complete, n_windows) per-window val loss, best first by the study
    param_counts: np.ndarray  # (n_complete,) each trial's parameter count
    n_lost: int = 0  # finished trials worse than any completed one: pruned, diverged

    @property
    def n_finished(self) -> int:
        return len(self.losses) + self.n_lost


@dataclass(frozen=True)
class ScalingFit:
    """The answer for one horizon: each budget's point, the slope per decade (the verdict),
    the exponent of the reducible loss, and how they were resampled."""

    budgets: tuple[str, ...]
    m: int  # trials each point is the expected best of (equal for every budget)
    params: tuple[float, ...]  # each point's parameter count (geometric, over the winners)
    losses: tuple[float, ...]  # each point's loss on all windows
    losses_low: tuple[float, ...]  # 95 % intervals over resamples (NaN: no bootstrap)
    losses_high: tuple[float, ...]
    slope: SlopeFit
    exponent: ExponentFit | None  # None with fewer than three budgets
    largest_vs_smallest: stats.PairedTest | None  # best trials, same windows
    block_length: int  # windows per bootstrap block (0: no bootstrap)
    n_windows: int
    notes: tuple[str, ...] = ()
    split: str = "validation"  # the windows the losses were measured on
    band_params: tuple[float, ...] = field(default=(), repr=False)  # the slope line's 95 % band
    band_low: tuple[float, ...] = field(default=(), repr=False)
    band_high: tuple[float, ...] = field(default=(), repr=False)

    @property
    def verdict(self) -> Verdict:
        s = self.slope
        if math.isnan(s.low) or math.isnan(s.high):
            return "untested"
        if s.high < 0:
            return "bigger is better"
        if s.low > 0:
            return "bigger is worse"
        return "no detectable effect"

    @property
    def sentence(self) -> str:
        """The verdict with its test, as the report prints it."""
        s = self.slope
        change = f"{s.per_decade:+.4f} BCE per 10× parameters"
        if self.verdict == "untested":
            return f"{change} (untested: no window-level predictions to resample)"
        points = (
            "one final model per budget"
            if self.split == "test"
            else f"each budget's point the expected best of {self.m} trials, selection redone "
            "on every resample"
        )
        return (
            f"{self.verdict}: {change}, 95 % interval [{s.low:+.4f}, {s.high:+.4f}] "
            f"(joint circular block bootstrap over {self.n_windows} {self.split} windows, blocks "
            f"of {self.block_length}, {s.n_resamples} resamples; {points})"
        )


def _points(means: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> np.ndarray:
    """Expected best-of-m loss per budget, (R, budgets): each means array is (R, n_complete);
    the ranking is redone on every row."""
    return np.stack([np.sort(mean, axis=1) @ w for mean, w in zip(means, weights, strict=True)], 1)


def _windows_shared(budgets: Sequence[BudgetTrials]) -> int:
    """The number of windows every budget is scored on.

    Raises:
        ValueError: see `fit_scaling`.
    """
    if len(budgets) < 2:
        raise ValueError(f"a scaling fit needs two budgets, got {len(budgets)}")
    n = int(budgets[0].losses.shape[1])
    for b in budgets:
        if b.losses.ndim != 2 or b.losses.shape[1] != n or len(b.losses) == 0:
            raise ValueError(
                f"budget {b.budget}: losses of shape {b.losses.shape}; every budget needs "
                f"(trials ≥ 1, {n}) on the same windows"
            )
        if len(b.param_counts) != len(b.losses):
            raise ValueError(
                f"budget {b.budget}: {len(b.param_counts)} sizes for {len(b.losses)} trials"
            )
    return n


def _point_fit(
    budgets: Sequence[BudgetTrials],
    weights: list[np.ndarray],
    *,
    m: int,
    n: int,
    min_block: int,
    starts: np.ndarray | None,
) -> tuple[ScalingFit, np.ndarray]:
    """The fit on all windows, without intervals, and the points' log10 sizes (1, budgets)."""
    # Each point sits at the size of its expected winner on all windows, the same size in
    # every resample: sizes within a budget differ by ±25 %, budgets by 10×.
    full_means = [b.losses.mean(axis=1) for b in budgets]
    y0 = _points([m_[None, :] for m_ in full_means], weights)
    x0 = np.array(
        [
            np.log10(np.asarray(b.param_counts, dtype=float))[np.argsort(mean, kind="stable")] @ w
            for b, mean, w in zip(budgets, full_means, weights, strict=True)
        ]
    )[None, :]
    slope0, intercept0 = slopes(x0, y0)
    params = 10 ** x0[0]
    exponent = fit_exponent(params, y0[0]) if len(budgets) >= 3 else None
    paired = stats.paired_difference(
        budgets[-1].losses[0], budgets[0].losses[0], min_lag=min_block, starts=starts
    )
    nan = tuple(math.nan for _ in budgets)
    fit = ScalingFit(
        budgets=tuple(b.budget for b in budgets),
        m=m,
        params=tuple(params.tolist()),
        losses=tuple(y0[0].tolist()),
        losses_low=nan,
        losses_high=nan,
        slope=SlopeFit(float(slope0[0]), float(intercept0[0]), math.nan, math.nan, math.nan, 0),
        exponent=exponent,
        largest_vs_smallest=paired,
        block_length=0,
        n_windows=n,
        notes=tuple(fit_notes(m, len(budgets), "finished trials", exponent)),
    )
    return fit, x0


def _exponent_interval(
    exponent: ExponentFit, log10_n: np.ndarray, y: np.ndarray, stretch: float
) -> ExponentFit:
    """The exponent with its interval over the resampled points y (R, budgets)."""
    alphas = exponent_resamples(log10_n, y, exponent.reference_params)
    at_edge = (alphas <= ALPHA_MIN + 1e-9) | (alphas >= ALPHA_MAX - 1e-9)
    low, high = interval(alphas, stretch)
    return ExponentFit(
        **{
            **exponent.__dict__,
            "low": max(float(low), ALPHA_MIN),
            "high": min(float(high), ALPHA_MAX),
            "share_positive": float((alphas > 0).mean()),
            "share_at_edge": float(at_edge.mean()),
            "n_resamples": len(alphas),
        }
    )


def _with_bootstrap(
    fit: ScalingFit,
    budgets: Sequence[BudgetTrials],
    weights: list[np.ndarray],
    x0: np.ndarray,
    *,
    block: int,
    n_resamples: int,
    seed: int,
    starts: np.ndarray | None,
) -> ScalingFit:
    """The point fit with its intervals: every budget resampled on the same windows."""
    n = fit.n_windows
    rng = np.random.default_rng(seed)
    idx = stats.block_bootstrap_indices(
        n, block_length=block, n_resamples=n_resamples, rng=rng, starts=starts
    )
    counts = stats.resample_counts(idx, n) / n
    y = _points([counts @ b.losses.T for b in budgets], weights)
    x = np.broadcast_to(x0, y.shape)
    slope, intercept = slopes(x, y)
    stretch = fixed_b_critical_value(block, n) / fixed_b_critical_value(0, n)
    losses_low, losses_high = interval(y, stretch)
    slope_low, slope_high = interval(slope, stretch)
    params = np.asarray(fit.params)
    grid = np.geomspace(params.min() / 1.5, params.max() * 1.5, 40)
    lines = intercept[:, None] + slope[:, None] * np.log10(grid)[None, :]
    exponent, notes = fit.exponent, list(fit.notes)
    if exponent is not None:
        exponent = _exponent_interval(exponent, x0[0], y, stretch)
        if exponent.share_at_edge > 0.05:
            notes.append(
                f"α reaches the end of its grid [{ALPHA_MIN}, {ALPHA_MAX}] in "
                f"{exponent.share_at_edge:.0%} of resamples: the budgets barely identify it"
            )
    return replace(
        fit,
        losses_low=tuple(losses_low.tolist()),
        losses_high=tuple(losses_high.tolist()),
        slope=SlopeFit(
            per_decade=fit.slope.per_decade,
            intercept=fit.slope.intercept,
            low=float(slope_low),
            high=float(slope_high),
            share_negative=float((slope < 0).mean()),
            n_resamples=n_resamples,
        ),
        exponent=exponent,
        block_length=block,
        notes=tuple(notes),
        band_params=tuple(grid.tolist()),
        band_low=tuple(interval(lines, stretch)[0].tolist()),
        band_high=tuple(interval(lines, stretch)[1].tolist()),
    )


def fit_scaling(
    budgets: Sequence[BudgetTrials],
    *,
    top_k: int | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    block_length: int | None = None,
    min_block: int = 1,
    starts: np.ndarray | None = None,
) -> ScalingFit:
    """Fit how the best validation loss changes with size, resampling windows jointly.

    Args:
        budgets: two or more budgets, smallest first, all scored on the same windows.
        top_k: cap on m, the trials each point is the expected best of; None: the smallest
            number of finished trials among the budgets.
        n_resamples: bootstrap resamples (0: point estimates only).
        seed: seed of the bootstrap.
        block_length: windows per block; None: the Newey-West lag of the difference between
            the largest and the smallest budget's best trials (at least `min_block`).
        min_block: the horizon: labels of windows closer than that overlap.
        starts: segment starts of the windows (see `stats.segments`); blocks stay inside.

    Returns:
        The fit; its `verdict` and `sentence` say what the slope per decade shows.

    Raises:
        ValueError: fewer than two budgets, a budget without a completed trial, or budgets
            scored on different numbers of windows.
    """
    n = _windows_shared(budgets)
    m = min(b.n_finished for b in budgets)
    if top_k is not None:
        m = max(1, min(m, top_k))
    weights = [expected_best_weights(len(b.losses), n_total=b.n_finished, m=m) for b in budgets]
    fit, x0 = _point_fit(budgets, weights, m=m, n=n, min_block=min_block, starts=starts)
    if n_resamples < 1:
        return fit
    assert fit.largest_vs_smallest is not None
    block = (
        block_length if block_length is not None else max(fit.largest_vs_smallest.lag, min_block, 1)
    )
    return _with_bootstrap(
        fit, budgets, weights, x0, block=block, n_resamples=n_resamples, seed=seed, starts=starts
    )
