"""The joint bootstrap of a scaling fit: each budget's completed trials scored on the same
windows, the windows resampled together for every budget and each budget's trials (or a final
model's seeds) redrawn on every resample (see `report.scaling` for why, `report.scaling_luck`
for how the draws are redrawn)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from finscale.plural import counted
from finscale.report import stats
from finscale.report.hac import fixed_b_critical_value
from finscale.report.scaling_fit import (
    ALPHA_MAX,
    ALPHA_MIN,
    ExponentFit,
    SlopeFit,
    Verdict,
    detectable_slope,
    expected_best_weights,
    exponent_resamples,
    fit_exponent,
    fit_notes,
    interval,
    slopes,
)
from finscale.report.scaling_luck import Spread, redrawn_means, spread


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


Draws = Literal["trials", "seeds"]  # what a budget's rows are: its search's trials, or its
# final model's seeds on test


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
    draws: Draws = "trials"
    # The smallest slope per decade (either sign, BCE per 10× parameters) that the verdict
    # would find with 80 % power, from the resampled slopes (NaN: no bootstrap).
    detectable: float = math.nan
    luck: float = math.nan  # τ: spread of a draw's mean loss beyond its window noise
    luck_df: int = 0  # degrees of freedom of that spread (0: the draws were not redrawn)

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

    def _resampled(self) -> str:
        """What the bootstrap redrew, for the sentence."""
        owner = "each budget's trials" if self.draws == "trials" else "each final model's seeds"
        if self.luck_df > 0:
            luck = f"and over {owner} (spread pooled over budgets, χ² on {self.luck_df} df)"
        else:
            one = "trial" if self.draws == "trials" else "seed"
            luck = f"not over {owner} (one {one} each: their luck is not in the interval)"
        return (
            f"bootstrap over {self.n_windows} {self.split} windows in blocks of "
            f"{self.block_length}, the same for every budget, {luck}; "
            f"{self.slope.n_resamples} resamples"
        )

    @property
    def sentence(self) -> str:
        """The verdict with its test, as the report prints it."""
        s = self.slope
        change = f"{s.per_decade:+.4f} BCE per 10× parameters"
        if self.verdict == "untested":
            return f"{change} (untested: no window-level predictions to resample)"
        points = (
            "one final model per budget, its loss the mean over its seeds"
            if self.draws == "seeds"
            else f"each budget's point the expected best of {counted(self.m, 'trial')}, "
            "recomputed on every resample"
        )
        interval = f"95 % interval [{s.low:+.4f}, {s.high:+.4f}]"
        test = f"({self._resampled()}; {points})"
        if self.verdict == "no detectable effect" and math.isfinite(self.detectable):
            return (
                f"inconclusive: could only see effects of at least {self.detectable:.4f} BCE per "
                f"10× parameters (80 % power); measured {change}, {interval} {test}"
            )
        return f"{self.verdict}: {change}, {interval} {test}"


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
    draws: Draws,
    with_exponent: bool,
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
    exponent = fit_exponent(params, y0[0]) if with_exponent and len(budgets) >= 3 else None
    # The best trials (the search's winners), or the final models' seed-averaged losses.
    largest, smallest = (
        (b.losses[0] if draws == "trials" else b.losses.mean(axis=0))
        for b in (budgets[-1], budgets[0])
    )
    paired = stats.paired_difference(largest, smallest, min_lag=min_block, starts=starts)
    notes = fit_notes(m, len(budgets), "finished trials", exponent) if draws == "trials" else []
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
        notes=tuple(notes),
        draws=draws,
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


def _luck_note(draws: Draws, found: Spread | None) -> str:
    if found is None:
        return (
            f"every budget has one {draws[:-1]}: the {draws} are not redrawn, and the luck of "
            f"which {draws[:-1]} was drawn is not in the interval"
        )
    luck = math.sqrt(found.luck)
    seen = (
        f"spread by {luck:.4f} BCE beyond their window noise"
        if luck >= 5e-5
        else "spread no more than their window noise explains"
    )
    return (
        f"{draws} redrawn on every resample: their mean losses {seen} (pooled over budgets, "
        f"{found.df} degrees of freedom); each resample gives every {draws[:-1]} a new offset, "
        "one of all budgets' offsets, with the spread drawn from its χ² distribution so that a "
        f"spread seen in few {draws} is not taken as known (a Student-t correction)"
    )


def _resampled_points(
    budgets: Sequence[BudgetTrials],
    weights: list[np.ndarray],
    counts: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, Spread | None]:
    """Each budget's point on every resample (R, budgets), centred on the points on all
    windows, and the spread of the draws it redrew."""
    losses = [b.losses for b in budgets]
    means = [counts @ loss.T for loss in losses]
    found = spread(losses, means)
    if found is not None:
        means = redrawn_means(losses, means, found, rng)
    y = _points(means, weights)
    # The bootstrap's own world biases a best of m (its repeated windows and trials); the
    # interval keeps the resamples' spread about the estimate, not that bias.
    y0 = _points([loss.mean(axis=1)[None, :] for loss in losses], weights)
    return y0 + (y - y.mean(axis=0, keepdims=True)), found


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
    """The point fit with its intervals: the windows resampled together for every budget, each
    budget's draws redrawn."""
    n = fit.n_windows
    rng = np.random.default_rng(seed)
    idx = stats.block_bootstrap_indices(
        n, block_length=block, n_resamples=n_resamples, rng=rng, starts=starts
    )
    counts = stats.resample_counts(idx, n) / n
    y, found = _resampled_points(budgets, weights, counts, rng)
    x = np.broadcast_to(x0, y.shape)
    slope, intercept = slopes(x, y)
    stretch = fixed_b_critical_value(block, n) / fixed_b_critical_value(0, n)
    losses_low, losses_high = interval(y, stretch)
    slope_low, slope_high = interval(slope, stretch)
    params = np.asarray(fit.params)
    grid = np.geomspace(params.min() / 1.5, params.max() * 1.5, 40)
    lines = intercept[:, None] + slope[:, None] * np.log10(grid)[None, :]
    exponent, notes = fit.exponent, [*fit.notes, _luck_note(fit.draws, found)]
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
        detectable=detectable_slope(slope, stretch),
        luck=math.sqrt(found.luck) if found is not None else math.nan,
        luck_df=found.df if found is not None else 0,
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
    draws: Draws = "trials",
    with_exponent: bool = True,
) -> ScalingFit:
    """Fit how the best loss changes with size, resampling windows jointly and redrawing each
    budget's trials (or seeds) on every resample.

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
        draws: "trials": each budget's rows are its search's trials and its point their
            expected best of m; "seeds": they are one final model's seeds and its point their
            mean (`top_k` is then ignored).
        with_exponent: False: the slope alone (no exponent; simulations of the verdict).

    Returns:
        The fit; its `verdict` and `sentence` say what the slope per decade shows.

    Raises:
        ValueError: fewer than two budgets, a budget without a completed trial, or budgets
            scored on different numbers of windows.
    """
    n = _windows_shared(budgets)
    if draws == "seeds":
        m = 1
        weights = [np.full(len(b.losses), 1 / len(b.losses)) for b in budgets]
    else:
        m = min(b.n_finished for b in budgets)
        if top_k is not None:
            m = max(1, min(m, top_k))
        weights = [expected_best_weights(len(b.losses), n_total=b.n_finished, m=m) for b in budgets]
    fit, x0 = _point_fit(
        budgets,
        weights,
        m=m,
        n=n,
        min_block=min_block,
        starts=starts,
        draws=draws,
        with_exponent=with_exponent,
    )
    if n_resamples < 1:
        return fit
    assert fit.largest_vs_smallest is not None
    block = (
        block_length if block_length is not None else max(fit.largest_vs_smallest.lag, min_block, 1)
    )
    return _with_bootstrap(
        fit, budgets, weights, x0, block=block, n_resamples=n_resamples, seed=seed, starts=starts
    )
