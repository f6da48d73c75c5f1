"""Does a bigger transformer predict this market better? Each budget's best validation loss
against parameter count, with an uncertainty that comes from the validation windows themselves.

What is fitted, and why:

- **Slope per decade** (the verdict): the change in each budget's best validation BCE per 10×
  parameters, least squares on log10 N. BCE has an entropy floor, so a log-log slope of raw BCE
  says little (0.375 → 0.300 across 2M → 2B is "α ≈ 0.03"); a slope in BCE per decade is in the
  units the base rate and the baselines are shown in. "Bigger is better" only when its 95 %
  interval lies below 0, "bigger is worse" when above, else "no detectable effect".
- **Exponent of the reducible loss**, L(N) = E + A·(N/N₀)^(−α), E in [0, min L], A ≥ 0, with
  three budgets or more (three parameters need three points; with exactly three the curve passes
  through them). Profile least squares over a grid of α in [-1, 2] (closed-form E and A for
  each α). It describes what scale buys above a floor; it is weakly identified by 3-4 budgets, so
  it carries no strength label (the research system's strong/moderate/weak thresholds were set
  for a floor-free law) and no verdict.

Uncertainty: a circular block bootstrap over validation windows, the SAME resampled windows for
every budget and trial, so that the noise common to all budgets (the hard windows are hard for
all) cancels as it does in the data; the selection of each budget's best is redone on every
resample, so search luck and the winner's curse are inside the interval.

Equal search effort: each budget's point is the expected best of m trials drawn at random from
its finished trials, with the same m for every budget (m = min(top_k, smallest number of
finished trials among the budgets)): a budget with more trials is not favoured for having been
searched longer (taking the best of all its trials would be; that is the research system's
spurious "inverse scaling" when 2B held fewer trials). Pruned trials, and trials that failed by
diverging, count as finished trials worse than every completed one (the pruner judged them
losing); trials that failed for the infrastructure (out of memory, preempted) are not draws of
the budget's search and are left out. Only COMPLETE trials' best-epoch predictions enter, ranked
by the study's own value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import optimize, special

from finscale.predictions import decode_labels, decode_logits
from finscale.records import TRIAL_VAL_LABELS as ATTR_VAL_LABELS
from finscale.records import TRIAL_VAL_LOGITS as ATTR_VAL_LOGITS
from finscale.records import fail_reason
from finscale.report import stats

if TYPE_CHECKING:  # the fit itself needs no Optuna; only reading studies does
    from finscale.report.collect import StudyResult

Verdict = Literal["bigger is better", "bigger is worse", "no detectable effect", "untested"]

ALPHA_MIN, ALPHA_MAX, ALPHA_STEP = -1.0, 2.0, 0.005
_ALPHAS = np.round(
    np.linspace(ALPHA_MIN, ALPHA_MAX, round((ALPHA_MAX - ALPHA_MIN) / ALPHA_STEP) + 1), 6
)
_CHUNK = 256  # resamples per vectorized exponent fit (memory: 4 x chunk x grid floats)


# --- equal search effort -------------------------------------------------------------------------


def expected_best_weights(n_complete: int, *, n_total: int, m: int) -> np.ndarray:
    """Weights of the expected best of `m` trials drawn at random from a budget's `n_total`.

    The j-th best of the `n_complete` completed trials is the best of a random m-subset with
    probability C(n_total - j, m - 1) / C(n_total, m); the other `n_total - n_complete` finished
    trials (pruned, diverged) count as worse than every completed one. The weights are
    conditioned on the subset holding a completed trial, so they sum to 1. With m = n_total
    and nothing pruned, all weight is on the best trial.

    Raises:
        ValueError: m outside 1..n_total, or n_complete outside 1..n_total.
    """
    if not 1 <= n_complete <= n_total or not 1 <= m <= n_total:
        raise ValueError(f"need 1 ≤ n_complete ({n_complete}), m ({m}) ≤ n_total ({n_total})")
    rest = n_total - np.arange(1, n_complete + 1)
    ok = rest >= m - 1
    safe = np.where(ok, rest, m - 1)
    log_c = special.gammaln(safe + 1) - special.gammaln(m) - special.gammaln(safe - m + 2)
    w = np.where(ok, np.exp(log_c - log_c.max()), 0.0)
    return np.asarray(w / w.sum())


# --- the fits ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlopeFit:
    """loss = intercept + per_decade · log10(N), with its joint-bootstrap interval."""

    per_decade: float
    intercept: float
    low: float  # 95 % interval (see `_interval`; NaN: no bootstrap)
    high: float
    share_negative: float  # share of resamples in which bigger is better
    n_resamples: int

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        return np.asarray(self.intercept + self.per_decade * np.log10(np.asarray(n, dtype=float)))


@dataclass(frozen=True)
class ExponentFit:
    """loss = floor + coefficient · (N / reference_params)^(−alpha), with its interval."""

    alpha: float
    floor: float  # E
    coefficient: float  # A: the reducible loss at reference_params
    reference_params: float  # N₀, the geometric mean of the budgets' parameter counts
    r2: float  # 1 - SSE/SST in loss units; 1 by construction with three budgets
    n_points: int
    low: float = math.nan  # 95 % interval of alpha over resamples (see `_interval`)
    high: float = math.nan
    share_positive: float = math.nan  # share of resamples with alpha > 0 (loss falls with N)
    share_at_edge: float = math.nan  # share of resamples at the grid's end (-1 or 2)
    n_resamples: int = 0

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        x = np.asarray(n, dtype=float) / self.reference_params
        return np.asarray(self.floor + self.coefficient * x ** (-self.alpha))


def _slopes(log10_n: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept of each row of y on the same row of log10_n."""
    dx = log10_n - log10_n.mean(axis=-1, keepdims=True)
    dy = y - y.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (dx * dy).sum(axis=-1) / (dx**2).sum(axis=-1)
    return slope, y.mean(axis=-1) - slope * log10_n.mean(axis=-1)


def _candidates(
    alphas: np.ndarray, log_rel: np.ndarray, y: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each row of y (R, K) and each alpha (G,), the candidate minima (SSE, E, A), each
    (R, G), of the least squares y = E + A·exp(-alpha·log_rel) with E in [0, min y], A ≥ 0;
    log_rel (K,) is shared by the rows.

    A convex quadratic on a box: its minimum is the unconstrained one when feasible, else on an
    edge, where the 1-D minimum is a clipped closed form. Sums are taken around each row's mean
    so that the SSE keeps its precision when it is tiny."""
    x = np.exp(-alphas[:, None] * log_rel[None, :])  # (G, K)
    k = y.shape[-1]
    mean = y.mean(-1, keepdims=True)  # (R, 1)
    yc = y - mean
    lo, hi = -mean, y.min(-1, keepdims=True) - mean  # the bounds of E - mean
    sx, sxx = x.sum(-1), (x * x).sum(-1)  # (G,)
    sxy = np.einsum("rk,gk->rg", yc, x)
    syy = (yc * yc).sum(-1, keepdims=True)

    def sse(e: np.ndarray, a: np.ndarray) -> np.ndarray:
        value = syy - 2 * a * sxy + k * e * e + 2 * e * a * sx + a * a * sxx
        return np.asarray(np.maximum(value, 0.0))

    spread = sxx - sx * sx / k
    with np.errstate(invalid="ignore", divide="ignore"):
        a1 = np.where(spread > 1e-12 * sxx, sxy / spread, -1.0)
    e1 = -a1 * sx / k
    inside = (a1 >= 0) & (e1 >= lo) & (e1 <= hi)
    found = [(np.where(inside, sse(e1, a1), np.inf), e1 + mean, a1)]
    for edge in (lo, hi):
        a = np.maximum((sxy - edge * sx) / sxx, 0.0)
        found.append((sse(edge, a), np.broadcast_to(edge + mean, a.shape), a))
    e4 = np.clip(0.0, lo, hi)
    zero = np.zeros_like(sxy)
    found.append((sse(e4, zero), np.broadcast_to(e4 + mean, zero.shape), zero))
    return found


def _profile(
    alphas: np.ndarray, log_rel: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The least SSE and its E and A, each (R, G) (see `_candidates`)."""
    found = _candidates(alphas, log_rel, y)
    sse = np.stack([f[0] for f in found])
    best = sse.argmin(axis=0)[None]
    floors = np.stack([f[1] for f in found])
    coefs = np.stack([f[2] for f in found])
    return (
        np.take_along_axis(sse, best, 0)[0],
        np.take_along_axis(floors, best, 0)[0],
        np.take_along_axis(coefs, best, 0)[0],
    )


def _grid_alpha(log_rel: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The grid alpha with the least SSE per row, the smallest |alpha| among ties (a flat fit
    fits every alpha equally: it is reported as 0)."""
    found = _candidates(_ALPHAS, log_rel, y)
    sse = found[0][0]
    for other, _, _ in found[1:]:
        sse = np.minimum(sse, other)
    total = ((y - y.mean(-1, keepdims=True)) ** 2).sum(-1)
    least = sse.min(axis=1, keepdims=True)
    tied = sse <= least + 1e-12 + 1e-9 * total[:, None]
    return np.asarray(_ALPHAS[np.where(tied, np.abs(_ALPHAS)[None, :], np.inf).argmin(axis=1)])


def fit_exponent(params: Sequence[float], losses: Sequence[float]) -> ExponentFit:
    """Fit loss = E + A·(N/N₀)^(−α) with E in [0, min loss], A ≥ 0, α in [-1, 2].

    Raises:
        ValueError: fewer than three distinct parameter counts, a count that is not positive,
            or a loss that is not finite and ≥ 0.
    """
    n = np.asarray(params, dtype=float)
    y = np.asarray(losses, dtype=float)
    if n.shape != y.shape:
        raise ValueError(f"{len(n)} parameter counts but {len(y)} losses")
    if len(np.unique(n)) < 3:
        raise ValueError(f"an exponent with a floor needs three distinct sizes, got {n.tolist()}")
    if (n <= 0).any() or not np.isfinite(y).all() or (y < 0).any():
        raise ValueError(f"parameter counts must be positive and losses ≥ 0: {n} {y}")
    reference = float(np.exp(np.log(n).mean()))
    log_rel = np.log(n) - math.log(reference)
    grid_alpha = _grid_alpha(log_rel, y[None, :])
    alpha = float(grid_alpha[0])

    def sse(a: float) -> float:
        return float(_profile(np.array([a]), log_rel, y[None, :])[0][0, 0])

    if alpha != 0.0 or sse(0.0) > sse(ALPHA_STEP) or sse(0.0) > sse(-ALPHA_STEP):
        lo, hi = max(alpha - ALPHA_STEP, ALPHA_MIN), min(alpha + ALPHA_STEP, ALPHA_MAX)
        found = optimize.minimize_scalar(
            sse, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}
        )
        if found.fun <= sse(alpha):
            alpha = float(found.x)
    residual, floor, coef = _profile(np.array([alpha]), log_rel, y[None, :])
    sst = float(((y - y.mean()) ** 2).sum())
    return ExponentFit(
        alpha=alpha,
        floor=float(floor[0, 0]),
        coefficient=float(coef[0, 0]),
        reference_params=reference,
        r2=1.0 - float(residual[0, 0]) / sst if sst > 0 else 1.0,
        n_points=len(y),
    )


# --- the joint bootstrap -------------------------------------------------------------------------


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


def _interval(draws: np.ndarray, stretch: float) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5-97.5 percentile interval of `draws` (resamples on axis 0), stretched about its
    median by `stretch`.

    A block bootstrap's variance is a Bartlett-kernel long-run variance whose bandwidth is the
    block length (Künsch 1989); with blocks of a tenth of the windows, fixed-b asymptotics
    (Kiefer-Vogelsang) say a normal quantile is too small for it. `stretch` is the fixed-b
    critical value over 1.96 (1.15 at b = n/10): without it, 95 % intervals of the slope covered
    87-89 % of known laws in tests/unit/test_stats.py, with it 95 %."""
    low, mid, high = np.percentile(draws, [2.5, 50.0, 97.5], axis=0)
    return mid - stretch * (mid - low), mid + stretch * (high - mid)


def _points(means: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> np.ndarray:
    """Expected best-of-m loss per budget, (R, budgets): each means array is (R, n_complete);
    the ranking is redone on every row."""
    return np.stack([np.sort(mean, axis=1) @ w for mean, w in zip(means, weights, strict=True)], 1)


def _exponent_resamples(log10_n: np.ndarray, y: np.ndarray, reference: float) -> np.ndarray:
    log_rel = log10_n * math.log(10) - math.log(reference)
    parts = [_grid_alpha(log_rel, y[i : i + _CHUNK]) for i in range(0, len(y), _CHUNK)]
    return np.concatenate(parts)


def _notes(m: int, n_budgets: int, of: str, exponent: ExponentFit | None) -> list[str]:
    notes = [
        f"each budget's point is the expected best of {m} trials drawn from its {of} (the "
        "same m for every budget; pruned and diverged trials count as losers)"
    ]
    if n_budgets == 2:
        notes.append("two budgets: no exponent (E + A·N^−α has three parameters)")
    elif n_budgets == 3 and exponent is not None:
        if exponent.r2 >= 0.999:
            notes.append("three budgets: the exponent's curve passes through every point")
        else:
            # A curve E + A·N^−α is monotone in N; three points that are not cannot be met.
            notes.append(
                f"three budgets, and still the exponent's curve misses them (R² "
                f"{exponent.r2:.2f}): the points do not move monotonically with N, which no "
                "curve of this form can follow"
            )
    return notes


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
    if len(budgets) < 2:
        raise ValueError(f"a scaling fit needs two budgets, got {len(budgets)}")
    n = budgets[0].losses.shape[1]
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
    m = min(b.n_finished for b in budgets)
    if top_k is not None:
        m = max(1, min(m, top_k))
    weights = [expected_best_weights(len(b.losses), n_total=b.n_finished, m=m) for b in budgets]
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
    slope0, intercept0 = _slopes(x0, y0)
    params = 10 ** x0[0]
    exponent = fit_exponent(params, y0[0]) if len(budgets) >= 3 else None
    paired = stats.paired_difference(
        budgets[-1].losses[0], budgets[0].losses[0], min_lag=min_block, starts=starts
    )
    notes = _notes(m, len(budgets), "finished trials", exponent)
    nan = tuple(math.nan for _ in budgets)
    if n_resamples < 1:
        return ScalingFit(
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
        )

    block = block_length if block_length is not None else max(paired.lag, min_block, 1)
    rng = np.random.default_rng(seed)
    idx = stats.block_bootstrap_indices(
        n, block_length=block, n_resamples=n_resamples, rng=rng, starts=starts
    )
    counts = stats.resample_counts(idx, n) / n
    y = _points([counts @ b.losses.T for b in budgets], weights)
    x = np.broadcast_to(x0, y.shape)
    slope, intercept = _slopes(x, y)
    stretch = stats.fixed_b_critical_value(block, n) / stats.fixed_b_critical_value(0, n)
    losses_low, losses_high = _interval(y, stretch)
    slope_low, slope_high = _interval(slope, stretch)
    grid = np.geomspace(params.min() / 1.5, params.max() * 1.5, 40)
    lines = intercept[:, None] + slope[:, None] * np.log10(grid)[None, :]
    if exponent is not None:
        alphas = _exponent_resamples(x0[0], y, exponent.reference_params)
        at_edge = (alphas <= ALPHA_MIN + 1e-9) | (alphas >= ALPHA_MAX - 1e-9)
        low, high = _interval(alphas, stretch)
        exponent = ExponentFit(
            **{
                **exponent.__dict__,
                "low": max(float(low), ALPHA_MIN),
                "high": min(float(high), ALPHA_MAX),
                "share_positive": float((alphas > 0).mean()),
                "share_at_edge": float(at_edge.mean()),
                "n_resamples": len(alphas),
            }
        )
        if exponent.share_at_edge > 0.05:
            notes.append(
                f"α reaches the end of its grid [{ALPHA_MIN}, {ALPHA_MAX}] in "
                f"{exponent.share_at_edge:.0%} of resamples: the budgets barely identify it"
            )
    return ScalingFit(
        budgets=tuple(b.budget for b in budgets),
        m=m,
        params=tuple(params.tolist()),
        losses=tuple(y0[0].tolist()),
        losses_low=tuple(losses_low.tolist()),
        losses_high=tuple(losses_high.tolist()),
        slope=SlopeFit(
            per_decade=float(slope0[0]),
            intercept=float(intercept0[0]),
            low=float(slope_low),
            high=float(slope_high),
            share_negative=float((slope < 0).mean()),
            n_resamples=n_resamples,
        ),
        exponent=exponent,
        largest_vs_smallest=paired,
        block_length=block,
        n_windows=n,
        notes=tuple(notes),
        band_params=tuple(grid.tolist()),
        band_low=tuple(_interval(lines, stretch)[0].tolist()),
        band_high=tuple(_interval(lines, stretch)[1].tolist()),
    )


# --- from studies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyWindows:
    """What the report knows of a study's validation windows beyond its trials."""

    starts: np.ndarray | None = None  # segment starts (see `stats.segments`); None: one run
    baselines: Mapping[str, np.ndarray] = field(default_factory=dict)  # name → val logits;
    # "base_rate" (the training rate) is the bar of the skill test when present


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
    base_rate_loss: float  # the base-rate predictor's BCE on the same windows (NaN: unknown)
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


def _error(value: float, direction: str) -> float:
    return value if direction == "minimize" else 1.0 - value


def _lost(result: StudyResult) -> int:
    from optuna.trial import TrialState

    diverged = sum(
        1 for t in result.trials if t.state == TrialState.FAIL and "diverg" in fail_reason(t)
    )
    return result.count(TrialState.PRUNED) + diverged


_Row = tuple[int, int, float, np.ndarray]  # trial number, parameter count, value, val logits


def _stored_rows(result: StudyResult) -> tuple[list[_Row], np.ndarray | None, int]:
    """The completed trials holding predictions, best first, the labels, and how many completed
    trials of known size hold none (written before predictions were stored, or by hand)."""
    from finscale.report.collect import trial_arch

    # The study stores its validation labels once; older trials carried them themselves.
    labels = result.val_windows.labels if result.val_windows is not None else None
    rows: list[_Row] = []
    without = 0
    for t in result.complete:
        arch = trial_arch(t)
        if arch is None or not arch.param_count:
            continue
        if ATTR_VAL_LOGITS not in t.user_attrs:
            without += 1
            continue
        if labels is None and ATTR_VAL_LABELS in t.user_attrs:
            labels = decode_labels(t.user_attrs[ATTR_VAL_LABELS])
        logits = decode_logits(t.user_attrs[ATTR_VAL_LOGITS])
        rows.append((t.number, arch.param_count, float(t.value), logits))  # type: ignore[arg-type]
    if labels is None:
        return [], None, without + len(rows)
    kept = [r for r in rows if len(r[3]) == len(labels)]
    return kept, labels, without + len(rows) - len(kept)


def _point(
    r: StudyResult,
    rows: list[_Row],
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


def _joint(
    r: StudyResult, rows: list[_Row], labels: np.ndarray, *, horizon: int, extra: StudyWindows
) -> tuple[BudgetPoint, BudgetTrials]:
    """A budget scored from its stored predictions: per-window losses and the paired tests."""
    lost = _lost(r)
    losses = np.stack([stats.bce_per_window(row[3], labels) for row in rows])
    base = extra.baselines.get("base_rate")
    if base is None:  # the split's own rate: the best constant in hindsight, a stricter bar
        base = stats.constant_logits(float(np.clip(labels.mean(), 1e-6, 1 - 1e-6)), len(labels))
    skill = None
    if 0 < labels.sum() < len(labels):
        skill = stats.skill(
            rows[0][3],
            labels,
            base_logits=base,
            baselines={k: v for k, v in extra.baselines.items() if k != "base_rate"},
            min_lag=horizon,
            starts=extra.starts,
        )
    point = _point(
        r,
        rows,
        losses.mean(axis=1).tolist(),
        lost=lost,
        base_rate_loss=float(stats.bce_per_window(base, labels).mean()),
        skill=skill,
    )
    sizes = np.array([row[1] for row in rows])
    return point, BudgetTrials(point.budget, losses, sizes, n_lost=lost)


def _horizon(
    horizon: int,
    group: list[StudyResult],
    *,
    top_k: int | None,
    n_resamples: int,
    seed: int,
    windows: Mapping[str, StudyWindows],
) -> ScalingResult:
    from finscale.report.collect import trial_arch

    metric, direction = group[0].metric, group[0].direction
    stored = {r.name: _stored_rows(r) for r in group}
    sized = {
        r.name: [
            (t.number, a.param_count, float(t.value), np.zeros(0))  # type: ignore[arg-type]
            for t in r.complete
            if (a := trial_arch(t)) and a.param_count
        ]
        for r in group
    }
    present = [r for r in group if sized[r.name]]
    notes = []
    if missing := [r.name for r in group if not sized[r.name]]:
        notes.append(f"no completed trial yet in {', '.join(missing)}")
    if any(not r.done for r in present):
        notes.append("some studies have not spent their budget: the answer may change")
    labels = [stored[r.name][1] for r in present]
    first = labels[0] if labels else None
    joint = first is not None and all(
        lab is not None and stored[r.name][0] and np.array_equal(lab, first)
        for r, lab in zip(present, labels, strict=True)
    )
    points: list[BudgetPoint] = []
    budgets: list[BudgetTrials] = []
    if joint:
        for r in present:
            rows, lab, without = stored[r.name]
            assert lab is not None
            extra = windows.get(r.name, StudyWindows())
            point, trials = _joint(r, rows, lab, horizon=horizon, extra=extra)
            points.append(point)
            budgets.append(trials)
            if without:
                notes.append(f"{r.name}: {without} completed trials hold no predictions, left out")
        loss_name = "val_bce (from stored predictions)"
    else:
        if present:
            why = (
                "validation windows differ between budgets"
                if all(lab is not None for lab in labels)
                else "trials hold no window-level predictions"
            )
            notes.append(f"{why}: no interval, no paired test, no verdict")
        for r in present:
            rows = sized[r.name]
            points.append(_point(r, rows, [_error(row[2], direction) for row in rows],
                                 lost=_lost(r)))  # fmt: skip
        loss_name = f"{metric if direction == 'minimize' else '1 − ' + metric} (stored value)"
    fit = None
    if len({p.budget_params for p in points}) < 2:
        have = f"{len(points)} budget{'' if len(points) == 1 else 's'} with results"
        notes.insert(0, f"{have}; a fit needs two")
    elif joint:
        starts = windows.get(points[0].study, StudyWindows()).starts
        fit = fit_scaling(
            budgets,
            top_k=top_k,
            n_resamples=n_resamples,
            seed=seed,
            min_block=horizon,
            starts=starts,
        )
    else:
        fit = _values_only(points, top_k=top_k)
    if fit is not None:
        notes += list(fit.notes)
        points = [_with_point(p, fit, i) for i, p in enumerate(points)]
    baselines: dict[str, float] = {}
    if joint and present and first is not None:
        extra = windows.get(present[0].name, StudyWindows())
        baselines = {
            name: float(stats.bce_per_window(logits, first).mean())
            for name, logits in extra.baselines.items()
            if len(logits) == len(first)
        }
    return ScalingResult(
        horizon=horizon,
        metric=metric,
        direction=direction,
        points=points,
        scaling=fit,
        top_k=top_k,
        loss_name=loss_name,
        note="; ".join(notes),
        baselines=baselines,
    )


def _with_point(p: BudgetPoint, fit: ScalingFit, i: int) -> BudgetPoint:
    return BudgetPoint(
        **{
            **p.__dict__,
            "loss": fit.losses[i],
            "loss_low": fit.losses_low[i],
            "loss_high": fit.losses_high[i],
            "point_params": fit.params[i],
        }
    )


def _values_only(points: list[BudgetPoint], *, top_k: int | None) -> ScalingFit:
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
    slope, intercept = _slopes(x, y)
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
        notes=tuple(_notes(m, len(points), "finished trials' stored values", exponent)),
    )


def scaling(
    results: list[StudyResult],
    *,
    top_k: int | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    windows: Mapping[str, StudyWindows] | None = None,
) -> list[ScalingResult]:
    """The scaling answer per horizon, across the budgets of finscale's studies.

    Trials that store their validation predictions (`finscale.predictions`) get the joint
    block bootstrap, the paired skill tests and a verdict; otherwise the points and fits come
    from stored values alone and say so. Studies without a stored spec or without a completed
    trial are left out; a horizon with fewer than two budgets gets no fit and says why.

    Args:
        results: the studies.
        top_k: cap on the trials each budget's point is the expected best of (None: the
            smallest number of finished trials among the horizon's budgets).
        n_resamples: bootstrap resamples.
        seed: seed of the bootstrap.
        windows: per study name, segment starts and baseline logits of its validation windows.
    """
    by_horizon: dict[int, list[StudyResult]] = {}
    for r in results:
        if r.horizon is not None and r.budget_params is not None:
            by_horizon.setdefault(r.horizon, []).append(r)
    return [
        _horizon(
            h,
            sorted(g, key=lambda r: r.budget_params or 0),
            top_k=top_k,
            n_resamples=n_resamples,
            seed=seed,
            windows=windows or {},
        )
        for h, g in sorted(by_horizon.items())
    ]
