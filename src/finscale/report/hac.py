"""The long-run variance of a series of per-window values that overlap in time.

Validation windows slide by one day, so their losses are autocorrelated: a Newey-West (HAC)
variance with a Bartlett kernel, a lag chosen from the data (never below a floor), and
Kiefer-Vogelsang fixed-b critical values that hold the test's level at the long lags this needs.
Segments (`segments`) keep autocovariances inside contiguous runs of windows.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import optimize, stats

# Andrews (1991), Bartlett kernel, AR(1) plug-in: bandwidth = 1.1447 (alpha(1) n)^(1/3).
_ANDREWS_BARTLETT = 1.1447
_MAX_RHO = 0.97  # an AR(1) fit this close to a unit root gives no usable bandwidth
# The automatic lag is at least this share of the windows. An AR(1) plug-in misses persistence
# that hides under white label noise (model outputs drift with 60-day contexts), and a short
# lag then over-rejects (10 % at a nominal 5 % in tests/unit/test_stats.py); a lag of n/10 with
# fixed-b critical values holds the level at 4-7 % there.
_MIN_BANDWIDTH_SHARE = 0.1
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


def _auto_lag(x: np.ndarray, seg: np.ndarray) -> int:
    """Andrews' AR(1) plug-in bandwidth for the Bartlett kernel (x centred)."""
    gamma = _autocovariances(x, 1, seg)
    rho = float(np.clip(gamma[1] / gamma[0], -_MAX_RHO, _MAX_RHO)) if gamma[0] > 0 else 0.0
    alpha1 = 4 * rho**2 / ((1 - rho) ** 2 * (1 + rho) ** 2)
    bandwidth: float = _ANDREWS_BARTLETT * (alpha1 * len(x)) ** (1 / 3)
    return math.ceil(bandwidth)


def choose_lag(x: np.ndarray, seg: np.ndarray, lag: int | None, min_lag: int) -> int:
    n = len(x)
    if lag is None:
        chosen = max(_auto_lag(x, seg), min_lag, math.ceil(_MIN_BANDWIDTH_SHARE * n))
    else:
        chosen = lag
    return int(min(max(chosen, 0), max(n // 3, 0)))


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
