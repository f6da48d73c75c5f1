"""Paired statistics on validation windows that overlap in time.

Validation windows slide by one day, so neighbouring windows share h-1 label days and L-1
feature days: per-window losses are autocorrelated, and a standard error that treats windows as
independent is too small. Two predictors scored on the same windows share most of their noise
(the hard windows are hard for both), so comparing them must be paired: the standard error of
the per-window loss *difference* is often an order of magnitude below that of either loss.

Everything here is pure numpy/scipy and takes plain arrays in window (time) order:

- `bce_per_window`, `constant_logits`, `binary_entropy`: losses from logits (the first and
  the last from `finscale.train.metrics`).
- `paired_difference`: mean per-window loss difference with a Newey-West (HAC) standard error
  (lag at least the horizon and a tenth of the windows, never below the iid error), fixed-b
  p-values, and the effective sample size; `unpaired_difference` is the wrong test, kept to
  show why pairing matters.
- `auc_delong`, `paired_auc_delong`: AUC against 0.5, and two predictors' AUCs on the same
  windows; DeLong's variance, inflated by the autocorrelation of its per-window components.
- `block_bootstrap_indices`: circular blocks, kept inside contiguous segments.
- `skill`: one predictor against the base rate and the baselines, each test named.

Segments: in "chunks" split mode the validation windows form a few contiguous runs. `starts`
(positions where a run begins, `segments`) keeps autocovariances and bootstrap blocks inside
runs: two windows from different runs are months apart, not neighbours.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

# The losses and DeLong's components live once, in the ML core; named here for the report.
from finscale.train.metrics import bce_per_window as bce_per_window
from finscale.train.metrics import binary_entropy as binary_entropy
from finscale.train.metrics import delong_components, delong_variance

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


# --- losses --------------------------------------------------------------------------------------


def logit(p: float) -> float:
    """log(p / (1 - p)).

    Raises:
        ValueError: p is not strictly between 0 and 1.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"a rate must lie strictly between 0 and 1, got {p}")
    return math.log(p / (1.0 - p))


def constant_logits(rate: float, n: int) -> np.ndarray:
    """The logits of predicting `rate` for each of `n` windows (the base-rate predictor)."""
    return np.full(n, logit(rate))


# --- segments and autocovariance -----------------------------------------------------------------


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


def _segment_ids(n: int, starts: np.ndarray | None) -> np.ndarray:
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


def _choose_lag(x: np.ndarray, seg: np.ndarray, lag: int | None, min_lag: int) -> int:
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
def _fixed_b_df(lag: int, n: int) -> float:
    """Degrees of freedom of the t distribution whose 97.5 % quantile is the fixed-b critical
    value: p-values follow it (exact at the 5 % level, close nearby)."""
    cv = fixed_b_critical_value(lag, n)
    if cv <= _KV_BARTLETT[0] + 1e-9:
        return math.inf
    return float(optimize.brentq(lambda df: stats.t.ppf(0.975, df) - cv, 0.5, 1e7))


def _long_run_ratio(x: np.ndarray, lag: int, seg: np.ndarray) -> float:
    """Newey-West long-run variance over the lag-0 variance, floored at 1: overlapping windows
    never carry more information than independent ones, and a ratio below 1 comes from the
    downward bias of long-lag estimates on nearly independent data (so the effective sample
    never exceeds n)."""
    gamma = _autocovariances(x, lag, seg)
    if gamma[0] <= 0:
        return 1.0
    weights = 1.0 - np.arange(1, lag + 1) / (lag + 1)
    return max(float(gamma[0] + 2 * np.dot(weights, gamma[1:])) / float(gamma[0]), 1.0)


# --- paired differences of losses ----------------------------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """A difference of two predictors' mean per-window losses, with its test.

    `mean` is a − b: negative when a has the lower loss (a is better).
    """

    mean: float
    se: float  # the standard error the test uses
    z: float
    p_value: float  # two-sided, H0: mean = 0
    p_lower: float  # one-sided, H1: mean < 0 (a better than b)
    n: int  # windows
    effective_n: float  # n · (iid variance / long-run variance)
    lag: int  # Newey-West lag in windows; 0 = windows treated as independent
    se_iid: float  # the standard error if windows were independent
    critical_value: float  # two-sided 5 % (fixed-b; 1.96 at lag 0)
    test: str  # what the report prints beside the numbers

    @property
    def ci95(self) -> tuple[float, float]:
        half = self.critical_value * self.se
        return self.mean - half, self.mean + half


def _z_and_p(estimate: float, se: float, df: float = math.inf) -> tuple[float, float, float]:
    """z, two-sided p, and P(T ≤ z) (the one-sided p of "estimate < 0")."""
    if se > 0 and math.isfinite(se):
        z = estimate / se
    elif estimate == 0:
        z = 0.0
    else:
        z = math.copysign(math.inf, estimate)
    law = stats.norm if math.isinf(df) else stats.t(df)
    return z, float(2 * law.sf(abs(z))), float(law.cdf(z))


def paired_difference(
    loss_a: np.ndarray,
    loss_b: np.ndarray,
    *,
    min_lag: int = 1,
    lag: int | None = None,
    starts: np.ndarray | None = None,
) -> PairedTest:
    """Mean of `loss_a - loss_b` over the same windows, with a Newey-West standard error.

    Args:
        loss_a: per-window losses of predictor a, in window (time) order, shape (n,).
        loss_b: those of predictor b on the same windows.
        min_lag: the smallest Newey-West lag; pass the horizon, since labels of windows fewer
            than h days apart overlap.
        lag: a fixed lag (0: windows independent); None chooses the largest of `min_lag`,
            Andrews' AR(1) plug-in and n/10 (autocorrelation outlasts the horizon: features
            overlap over the whole context). Capped at n/3. P-values and `ci95` use fixed-b
            critical values (Kiefer-Vogelsang), which keep the level with such long lags.
        starts: segment starts (see `segments`); autocovariances stay inside segments.

    Returns:
        The test; `effective_n` is how many independent windows carry the same information.

    Raises:
        ValueError: shapes differ or fewer than two windows.
    """
    a = np.asarray(loss_a, dtype="float64")
    b = np.asarray(loss_b, dtype="float64")
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need two equal 1-D arrays of ≥ 2 windows, got {a.shape} and {b.shape}")
    d = a - b
    n = len(d)
    seg = _segment_ids(n, starts)
    centred = d - d.mean()
    chosen = _choose_lag(centred, seg, lag, min_lag)
    ratio = _long_run_ratio(centred, chosen, seg)
    var_iid = float(centred @ centred) / (n * (n - 1))
    se_iid = math.sqrt(var_iid)
    se = math.sqrt(var_iid * ratio)
    z, p, p_lower = _z_and_p(float(d.mean()), se, _fixed_b_df(chosen, n))
    kind = f"Newey–West SE (lag {chosen}, fixed-b p)" if chosen > 0 else "iid SE"
    return PairedTest(
        mean=float(d.mean()),
        se=se,
        z=z,
        p_value=p,
        p_lower=p_lower,
        n=n,
        effective_n=n / ratio,
        lag=chosen,
        se_iid=se_iid,
        critical_value=fixed_b_critical_value(chosen, n),
        test=f"paired per-window BCE difference, {kind}",
    )


def unpaired_difference(loss_a: np.ndarray, loss_b: np.ndarray) -> PairedTest:
    """The wrong test, for comparison: mean(a) - mean(b) with Welch's standard error, as if the
    two predictors had been scored on independent windows and windows were independent (the
    research system's `baseline_z` used a's standard error alone)."""
    a = np.asarray(loss_a, dtype="float64")
    b = np.asarray(loss_b, dtype="float64")
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    mean = float(a.mean() - b.mean())
    z, p, p_lower = _z_and_p(mean, se)
    return PairedTest(
        mean=mean,
        se=se,
        z=z,
        p_value=p,
        p_lower=p_lower,
        n=len(a),
        effective_n=float(len(a)),
        lag=0,
        se_iid=se,
        critical_value=fixed_b_critical_value(0, len(a)),
        test="unpaired difference of mean BCE (Welch SE; windows and predictors independent)",
    )


# --- AUC -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AucTest:
    """An AUC (or a difference of two AUCs on the same windows) against its null.

    DeLong's variance treats windows as independent (`se_iid`); `se` multiplies it by the
    Newey-West long-run ratio of DeLong's per-window components, so that overlapping windows
    count for what they are worth (`effective_n`). The report uses `se`, `z` and `p_value`.
    """

    estimate: float  # AUC, or AUC(a) - AUC(b)
    null: float  # 0.5, or 0 for a difference
    se: float
    z: float
    p_value: float  # two-sided
    p_greater: float  # one-sided, H1: estimate > null
    n: int
    n_positive: int
    effective_n: float
    lag: int
    se_iid: float  # DeLong's
    critical_value: float  # two-sided 5 % (fixed-b; 1.96 at lag 0)
    test: str

    @property
    def ci95(self) -> tuple[float, float]:
        half = self.critical_value * self.se
        return self.estimate - half, self.estimate + half


def _auc_test(
    estimate: float,
    null: float,
    v10: np.ndarray,
    v01: np.ndarray,
    pos: np.ndarray,
    *,
    min_lag: int,
    lag: int | None,
    starts: np.ndarray | None,
    what: str,
) -> AucTest:
    n1, n0, n = len(v10), len(v01), len(pos)
    var_iid = delong_variance(v10, v01)
    # AUC - θ ≈ Σ_t ψ_t, ψ = (V10 - mean)/n1 on positives and (V01 - mean)/n0 on negatives.
    psi = np.empty(n)
    psi[pos] = (v10 - v10.mean()) / n1
    psi[~pos] = (v01 - v01.mean()) / n0
    seg = _segment_ids(n, starts)
    chosen = _choose_lag(psi, seg, lag, min_lag)
    ratio = _long_run_ratio(psi, chosen, seg) if var_iid > 0 else 1.0
    se = math.sqrt(var_iid * ratio)
    z, p, p_lower = _z_and_p(estimate - null, se, _fixed_b_df(chosen, n))
    kind = f"Newey–West-inflated (lag {chosen}, fixed-b p)" if chosen > 0 else "iid"
    return AucTest(
        estimate=estimate,
        null=null,
        se=se,
        z=z,
        p_value=p,
        p_greater=1.0 - p_lower,
        n=n,
        n_positive=n1,
        effective_n=n / ratio,
        lag=chosen,
        se_iid=math.sqrt(var_iid),
        critical_value=fixed_b_critical_value(chosen, n),
        test=f"{what}, DeLong SE {kind}",
    )


def auc_delong(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    min_lag: int = 1,
    lag: int | None = None,
    starts: np.ndarray | None = None,
) -> AucTest:
    """AUC against 0.5 with DeLong's standard error, inflated for autocorrelation.

    Args:
        scores: any score that ranks windows (logits or probabilities), shape (n,).
        labels: 0/1, shape (n,).
        min_lag, lag, starts: as in `paired_difference`; `lag=0` is DeLong's test as published,
            which treats windows as independent.

    Raises:
        ValueError: shapes differ, or the labels hold one class.
    """
    auc, v10, v01, pos = delong_components(scores, labels)
    return _auc_test(
        auc, 0.5, v10, v01, pos, min_lag=min_lag, lag=lag, starts=starts, what="AUC vs 0.5"
    )


def paired_auc_delong(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    labels: np.ndarray,
    *,
    min_lag: int = 1,
    lag: int | None = None,
    starts: np.ndarray | None = None,
) -> AucTest:
    """AUC(a) - AUC(b) on the same windows, with DeLong's paired covariance (inflated for
    autocorrelation as in `auc_delong`). A predictor against itself: difference 0, SE 0."""
    auc_a, v10_a, v01_a, pos = delong_components(scores_a, labels)
    auc_b, v10_b, v01_b, _ = delong_components(scores_b, labels)
    return _auc_test(
        auc_a - auc_b,
        0.0,
        v10_a - v10_b,
        v01_a - v01_b,
        pos,
        min_lag=min_lag,
        lag=lag,
        starts=starts,
        what="paired AUC difference",
    )


# --- block bootstrap -----------------------------------------------------------------------------


def block_bootstrap_indices(
    n: int,
    *,
    block_length: int,
    n_resamples: int,
    rng: np.random.Generator,
    starts: np.ndarray | None = None,
) -> np.ndarray:
    """Window indices of `n_resamples` circular block-bootstrap resamples.

    Each segment is resampled on its own (blocks wrap around inside it, so that every window is
    drawn equally often) and keeps its length; the resample is the concatenation. Use the same
    indices for every predictor to resample them jointly.

    Args:
        n: windows.
        block_length: windows per block (at least the horizon; see `paired_difference.lag`).
        n_resamples: resamples.
        rng: the random generator.
        starts: segment starts (see `segments`); None: one segment.

    Returns:
        int64 array of shape (n_resamples, n).
    """
    if block_length < 1 or n < 1 or n_resamples < 1:
        raise ValueError(f"need n, block_length and n_resamples ≥ 1, got {n}, {block_length}")
    seg = _segment_ids(n, starts)
    bounds = np.concatenate([np.flatnonzero(np.diff(seg)) + 1, [n]])
    parts = []
    first = 0
    for last in bounds:
        m = int(last - first)
        b = min(block_length, m)
        blocks = -(-m // b)
        begin = rng.integers(0, m, size=(n_resamples, blocks, 1))
        idx = (begin + np.arange(b)) % m
        parts.append(idx.reshape(n_resamples, blocks * b)[:, :m] + first)
        first = int(last)
    return np.concatenate(parts, axis=1).astype("int64")


def resample_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each window appears in each resample: (n_resamples, n) float64, so that a
    resampled mean of per-window values v is `counts @ v / n`."""
    rows = indices.shape[0]
    flat = (np.arange(rows)[:, None] * n + indices).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype("float64")


# --- one predictor's skill -----------------------------------------------------------------------


@dataclass(frozen=True)
class Skill:
    """One predictor on the validation windows, against the base rate and the baselines."""

    loss: float  # mean per-window BCE
    vs_base_rate: PairedTest  # loss − the base rate's loss; negative = better
    auc: AucTest  # against 0.5
    vs_baselines: dict[str, PairedTest]  # name → loss − that baseline's loss

    @property
    def beats_base_rate(self) -> bool:
        """Lower loss than the base rate at the one-sided 2.5 % level."""
        return self.vs_base_rate.p_lower < 0.025


def skill(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    base_logits: np.ndarray,
    baselines: Mapping[str, np.ndarray] | None = None,
    min_lag: int = 1,
    starts: np.ndarray | None = None,
) -> Skill:
    """Paired tests of one predictor on the windows of `labels`.

    Args:
        logits: the predictor's logits, one per window in time order.
        labels: 0/1 labels of the windows.
        base_logits: the base-rate predictor's logits (a constant; see `constant_logits`).
        baselines: name → logits of other predictors on the same windows.
        min_lag: the horizon (see `paired_difference`).
        starts: segment starts (see `segments`).

    Raises:
        ValueError: shapes differ, or the labels hold one class.
    """
    loss = bce_per_window(logits, labels)

    def against(other: np.ndarray) -> PairedTest:
        return paired_difference(
            loss, bce_per_window(other, labels), min_lag=min_lag, starts=starts
        )

    return Skill(
        loss=float(loss.mean()),
        vs_base_rate=against(base_logits),
        auc=auc_delong(logits, labels, min_lag=min_lag, starts=starts),
        vs_baselines={name: against(other) for name, other in (baselines or {}).items()},
    )
