"""The long-run variance of a series of per-window values that overlap in time.

Validation windows slide by one day, so their losses are autocorrelated: a Newey-West (HAC)
variance with a Bartlett kernel, a lag chosen from the data (never below the horizon), and
Kiefer-Vogelsang fixed-b critical values that hold the test's level at the long lags this needs.
Segments (`segments`) keep autocovariances inside contiguous runs of windows.

The lag (`choose_lag`). A loss difference is mostly label noise, short-lived, plus a small
share that drifts with the models' outputs (60-day contexts: AR ≈ 0.95-0.99 from one window to
the next). That share is invisible at lag 1, where Andrews' AR(1) plug-in looks, yet it carries
most of the long-run variance. So the persistence is measured where the label noise has died
out: an AR(1) tail, γ(k) = A ρ^k, is fitted to the autocovariances beyond the horizon, and with
the short lags as measured it gives Andrews' (1991) first-order parameter of the Bartlett
kernel, |B| = Σ|j|γ(j) / Σγ(j). The lag is `_LAG_SCALE` · √(|B| n): the √n rate of Sun,
Phillips & Jin (2008), which balances a test's size distortion against its power under fixed-b
critical values, where Andrews' n^(1/3) rate minimizes the variance's mean squared error and
leaves the test over-rejecting. It is at least the horizon and at most n/3.

Data-dependent lags and fixed-b critical values. Fixed-b theory holds b = (lag + 1)/n fixed;
here b follows the data. Samples whose tail looks short get short lags and over-reject
(≈ 12 % in the fifth of draws with the shortest lags), those with long tails long lags and
under-reject (≈ 1.5 %), and the two average to the level: `tests/unit/test_hac.py` checks the
combination by simulation (outputs with AR 0.98 over 450 windows: 5-7 % at a nominal 5 %;
the n/10 lag it replaces rejected 9-14 %), and that the critical values hold at every fixed b
the rule can choose (b ≤ 1/3).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import optimize, stats

# The lag is this multiple of √(|B| n); chosen by simulation (tests/unit/test_hac.py): 1.5
# rejected 7-8 % of true nulls with outputs of AR 0.98, 2.5 rejects 5-7 %, 4 buys little more
# (5-6 %) for a lower power.
_LAG_SCALE = 2.5
# The AR(1) tail: ρ on a grid up to this (closer to a unit root, the lag is at its cap anyway),
# fitted over lags up to a quarter of the windows.
_TAIL_RHOS = np.linspace(0.005, 0.995, 199)
_TAIL_SHARE = 0.25
_MAX_TAIL_LAGS = 200
_MAX_LAG_SHARE = 1 / 3
# Kiefer & Vogelsang (2005): 97.5 % quantile of |t| for the Bartlett kernel at fixed b = M/n,
# cv(b) = 1.96 + 2.9694 b + 0.4160 b² - 0.5324 b³ (checked by simulation in the tests).
_KV_BARTLETT = (1.959964, 2.9694, 0.4160, -0.5324)


def segments(window_starts: np.ndarray) -> np.ndarray:
    """Positions (into `window_starts`) where a run of consecutive windows begins.

    Args:
        window_starts: the split's window start rows, sorted (e.g. `Splits.val`).

    Returns:
        int64 array beginning with 0: e.g. [0, 212, 430] for three chunks.
    """
    s = np.asarray(window_starts, dtype="int64")
    if s.size == 0:
        return np.zeros(1, dtype="int64")
    return np.concatenate([[0], np.flatnonzero(np.diff(s) != 1) + 1]).astype("int64")


def segment_ids(n: int, starts: np.ndarray | None) -> np.ndarray:
    if starts is None:
        return np.zeros(n, dtype="int64")
    s = np.asarray(starts, dtype="int64")
    if s.size == 0 or s[0] != 0 or (np.diff(s) <= 0).any() or s[-1] >= max(n, 1):
        raise ValueError(
            f"segment starts must begin at 0, increase and stay below {n}, got {s.tolist()[:8]}"
        )
    ids = np.zeros(n, dtype="int64")
    ids[s[1:]] = 1
    return np.cumsum(ids)


def _autocovariances(x: np.ndarray, max_lag: int, seg: np.ndarray) -> np.ndarray:
    """gamma[l] = (1/n) Σ x_t x_{t+l} over pairs inside one segment; x is already centred."""
    n = len(x)
    gamma = np.zeros(max_lag + 1)
    one = seg[0] == seg[-1]
    for lag in range(min(max_lag, n - 1) + 1):
        if one:
            gamma[lag] = float(np.dot(x[lag:], x[: n - lag])) / n
        else:
            same = seg[lag:] == seg[: n - lag]
            gamma[lag] = float(np.dot(x[lag:][same], x[: n - lag][same])) / n
    return gamma


def _tail(gamma: np.ndarray, first: int) -> tuple[float, float]:
    """(A, ρ) of the AR(1) tail γ(k) ≈ A ρ^k fitted by least squares to `gamma[first:]`
    (A ≥ 0; A = 0 when the tail holds nothing positive)."""
    k = np.arange(first, len(gamma))
    tail = gamma[first:]
    powers = _TAIL_RHOS[:, None] ** k[None, :]  # (ρ grid, lags)
    scale = np.maximum(powers @ tail / np.maximum((powers * powers).sum(axis=1), 1e-300), 0.0)
    residual = ((tail[None, :] - scale[:, None] * powers) ** 2).sum(axis=1)
    best = int(np.argmin(residual))
    return float(scale[best]), float(_TAIL_RHOS[best])


def _tail_sums(x: np.ndarray, seg: np.ndarray, min_lag: int) -> tuple[float, float, float]:
    """γ(0), Σγ(j) and Σ|j|γ(j) over all j of a centred series: measured autocovariances below
    `min_lag` (the horizon), an AR(1) tail fitted beyond it."""
    n = len(x)
    first = max(min_lag, 1)
    last = max(min(int(_TAIL_SHARE * n), _MAX_TAIL_LAGS), first + 2)
    gamma = _autocovariances(x, last, seg)
    if gamma[0] <= 0:
        return 0.0, 0.0, 0.0
    a, rho = _tail(gamma, first)
    j = np.arange(1, first)
    short = gamma[1:first]
    head = a * rho**first
    total = gamma[0] + 2 * short.sum() + 2 * head / (1 - rho)
    moment = 2 * (j * short).sum() + 2 * head * (first * (1 - rho) + rho) / (1 - rho) ** 2
    return float(gamma[0]), float(total), float(moment)


def bandwidth_parameter(x: np.ndarray, seg: np.ndarray, min_lag: int) -> float:
    """Andrews' |B| = Σ|j|γ(j) / Σγ(j) of a centred series: measured autocovariances below
    `min_lag` (the horizon), an AR(1) tail fitted beyond it; 0 for a series without positive
    long-run variance."""
    _, total, moment = _tail_sums(x, seg, min_lag)
    return abs(moment) / total if total > 0 else 0.0


def implied_long_run_ratio(x: np.ndarray, seg: np.ndarray, min_lag: int) -> float:
    """Σγ(j) / γ(0) of a centred series by the same short lags and AR(1) tail as
    `bandwidth_parameter`: the long-run variance a Bartlett estimate at a finite lag
    understates (floored at 1, as `long_run_ratio`)."""
    gamma0, total, _ = _tail_sums(x, seg, min_lag)
    return max(total / gamma0, 1.0) if gamma0 > 0 else 1.0


def choose_lag(x: np.ndarray, seg: np.ndarray, lag: int | None, min_lag: int) -> int:
    """The Newey-West lag: `lag` when given, else `_LAG_SCALE` · √(|B| n) (module docstring),
    at least `min_lag`; at most n/3 either way."""
    n = len(x)
    if lag is None:
        automatic = math.ceil(_LAG_SCALE * math.sqrt(bandwidth_parameter(x, seg, min_lag) * n))
        chosen = max(automatic, min_lag)
    else:
        chosen = lag
    return int(min(max(chosen, 0), max(int(_MAX_LAG_SHARE * n), 0)))


def fixed_b_critical_value(lag: int, n: int) -> float:
    """The two-sided 5 % critical value of a Newey-West t statistic with this lag, under
    fixed-b asymptotics (Kiefer & Vogelsang 2005): 1.96 at lag 0, 2.26 at lag n/10."""
    b = (lag + 1) / n if lag > 0 else 0.0
    c0, c1, c2, c3 = _KV_BARTLETT
    return c0 + c1 * b + c2 * b**2 + c3 * b**3


@functools.lru_cache(maxsize=1024)
def fixed_b_df(lag: int, n: int) -> float:
    """Degrees of freedom of the t distribution whose 97.5 % quantile is the fixed-b critical
    value: p-values follow it (exact at the 5 % level, close nearby)."""
    cv = fixed_b_critical_value(lag, n)
    if cv <= _KV_BARTLETT[0] + 1e-9:
        return math.inf
    return float(optimize.brentq(lambda df: stats.t.ppf(0.975, df) - cv, 0.5, 1e7))


def long_run_ratio(x: np.ndarray, lag: int, seg: np.ndarray) -> float:
    """Newey-West long-run variance over the lag-0 variance, floored at 1: overlapping windows
    never carry more information than independent ones, and a ratio below 1 comes from the
    downward bias of long-lag estimates on nearly independent data (so the effective sample
    never exceeds n)."""
    gamma = _autocovariances(x, lag, seg)
    if gamma[0] <= 0:
        return 1.0
    weights = 1.0 - np.arange(1, lag + 1) / (lag + 1)
    return max(float(gamma[0] + 2 * np.dot(weights, gamma[1:])) / float(gamma[0]), 1.0)
