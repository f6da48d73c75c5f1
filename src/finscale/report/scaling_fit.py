"""The mathematics of the scaling fit, on arrays: the weights of an equal search effort, the
slope per decade, the exponent of the reducible loss (profile least squares over a grid of α),
and the stretched percentile interval of the bootstrap. See `report.scaling` for what is fitted
and why."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize, special

from finscale.plural import counted

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
    low: float  # 95 % interval (see `interval`; NaN: no bootstrap)
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
    low: float = math.nan  # 95 % interval of alpha over resamples (see `interval`)
    high: float = math.nan
    share_positive: float = math.nan  # share of resamples with alpha > 0 (loss falls with N)
    share_at_edge: float = math.nan  # share of resamples at the grid's end (-1 or 2)
    n_resamples: int = 0

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        x = np.asarray(n, dtype=float) / self.reference_params
        return np.asarray(self.floor + self.coefficient * x ** (-self.alpha))


def slopes(log10_n: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def interval(draws: np.ndarray, stretch: float) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5-97.5 percentile interval of `draws` (resamples on axis 0), stretched about its
    median by `stretch`.

    A block bootstrap's variance is a Bartlett-kernel long-run variance whose bandwidth is the
    block length (Künsch 1989); with blocks that long a share of the windows, fixed-b
    asymptotics (Kiefer-Vogelsang) say a normal quantile is too small for it. `stretch` is the
    fixed-b critical value over 1.96 (1.15 at b = n/10): without it, 95 % intervals of the slope
    of one run per budget covered 86.5-88.5 % of known laws in tests/unit/test_stats.py and
    test_scaling_luck.py, with it 93 %. It stretches the whole spread, the draws' luck
    included, where it is conservative."""
    low, mid, high = np.percentile(draws, [2.5, 50.0, 97.5], axis=0)
    return mid - stretch * (mid - low), mid + stretch * (high - mid)


def detectable_slope(slope: np.ndarray, stretch: float) -> float:
    """The smallest true slope per decade, of either sign, whose interval would exclude 0 in
    80 % of studies like this one: the resampled slopes shifted until their 80th percentile
    meets the interval's far end (the spread stretched as the interval is); for a normal
    spread, (1.96 + 0.84) × stretch × its standard deviation. The report reads it from its
    bootstrap's slopes, `finscale plan` from the slopes its noise model resamples."""
    low, low80, mid, high80, high = np.percentile(slope, [2.5, 20.0, 50.0, 80.0, 97.5])
    better = (high - mid) + (high80 - mid)  # a slope this far below 0 is found 80 % of the time
    worse = (mid - low) + (mid - low80)
    return float(stretch * max(better, worse))


def exponent_resamples(log10_n: np.ndarray, y: np.ndarray, reference: float) -> np.ndarray:
    log_rel = log10_n * math.log(10) - math.log(reference)
    parts = [_grid_alpha(log_rel, y[i : i + _CHUNK]) for i in range(0, len(y), _CHUNK)]
    return np.concatenate(parts)


def fit_notes(m: int, n_budgets: int, of: str, exponent: ExponentFit | None) -> list[str]:
    notes = [
        f"each budget's point is the expected best of {counted(m, 'trial')} drawn from its {of} "
        "(the same m for every budget; pruned and diverged trials count as losers)"
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
