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
  (lag chosen from the data, at least the horizon; never below the iid error), fixed-b
  p-values, and the effective sample size; `unpaired_difference` is the wrong test, kept to
  show why pairing matters.
- `auc_delong`, `paired_auc_delong`: AUC against 0.5, and two predictors' AUCs on the same
  windows; DeLong's variance, inflated by the autocorrelation of its per-window components.
- `block_bootstrap_indices`, `resample_counts` (from `bootstrap.py`): circular blocks, kept
  inside contiguous segments; the Newey-West variance and its fixed-b critical values are in
  `hac.py`.
- `skill`: one predictor against the reference constant, the floor and the baselines, each
  test named, and the claim it supports (`Skill.claim`).

Segments: in "chunks" split mode the validation windows form a few contiguous runs. `starts`
(positions where a run begins, `segments`) keeps autocovariances and bootstrap blocks inside
runs: two windows from different runs are months apart, not neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

# The long-run variance and the bootstrap have modules of their own; named here for the report.
from finscale.report.bootstrap import block_bootstrap_indices as block_bootstrap_indices
from finscale.report.bootstrap import resample_counts as resample_counts
from finscale.report.hac import (
    choose_lag,
    fixed_b_critical_value,
    fixed_b_df,
    long_run_ratio,
    segment_ids,
)
from finscale.report.hac import segments as segments

# The losses and DeLong's components live once, in the ML core; named here for the report.
from finscale.train.metrics import bce_per_window as bce_per_window
from finscale.train.metrics import binary_entropy as binary_entropy
from finscale.train.metrics import delong_components, delong_variance

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
        lag: a fixed lag (0: windows independent); None chooses it from the data
            (`finscale.report.hac.choose_lag`: longer the more the difference drifts beyond the
            horizon, at least `min_lag`). Capped at n/3. P-values and `ci95` use fixed-b
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
    seg = segment_ids(n, starts)
    centred = d - d.mean()
    chosen = choose_lag(centred, seg, lag, min_lag)
    ratio = long_run_ratio(centred, chosen, seg)
    var_iid = float(centred @ centred) / (n * (n - 1))
    se_iid = math.sqrt(var_iid)
    se = math.sqrt(var_iid * ratio)
    z, p, p_lower = _z_and_p(float(d.mean()), se, fixed_b_df(chosen, n))
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


def independent_difference(a: PairedTest, b: PairedTest, *, test: str) -> PairedTest:
    """a's mean minus b's, each with its own standard error, as independent estimates (two
    experiments that share no window): the SEs add in quadrature, normal p-values."""
    mean, se = a.mean - b.mean, math.hypot(a.se, b.se)
    z, p, p_lower = _z_and_p(mean, se)
    return PairedTest(
        mean=mean,
        se=se,
        z=z,
        p_value=p,
        p_lower=p_lower,
        n=min(a.n, b.n),
        effective_n=min(a.effective_n, b.effective_n),
        lag=0,
        se_iid=math.hypot(a.se_iid, b.se_iid),
        critical_value=fixed_b_critical_value(0, min(a.n, b.n)),
        test=test,
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
    seg = segment_ids(n, starts)
    chosen = choose_lag(psi, seg, lag, min_lag)
    ratio = long_run_ratio(psi, chosen, seg) if var_iid > 0 else 1.0
    se = math.sqrt(var_iid * ratio)
    z, p, p_lower = _z_and_p(estimate - null, se, fixed_b_df(chosen, n))
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


# --- one predictor's skill -----------------------------------------------------------------------


# What a skill test may say of a predictor against the reference constant (see `Skill.claim`).
CLAIMS = ("better", "worse", "not distinguishable", "shift")


@dataclass(frozen=True)
class Skill:
    """One predictor on a split's windows, against the reference and the baselines.

    The reference is the constant at the rate of every label a model may use before the split
    (`finscale.train.reference`); the floor, a constant at the split's own rate, is what a
    predictor that only foresaw a shift of that rate would approach.
    """

    loss: float  # mean per-window BCE
    vs_base_rate: PairedTest  # loss − the reference constant's loss; negative = better
    auc: AucTest  # against 0.5: rate-free, a shift of the label rate cannot move it
    vs_baselines: dict[str, PairedTest]  # name → loss − that baseline's loss
    vs_floor: PairedTest | None = None  # loss − a constant at the split's own rate (hindsight)
    shifted: bool = False  # the split's rate moved from the reference's beyond the noise

    @property
    def claim(self) -> str:
        """One of `CLAIMS`: "better" when the loss is below the reference's at the one-sided
        2.5 % level and, if the split's rate shifted, below the floor's too (only then can the
        shift not explain it); "shift" when it is below the reference's only; "worse" when above
        at that level; else "not distinguishable"."""
        t = self.vs_base_rate
        if t.p_lower < 0.025:
            if not self.shifted or (self.vs_floor is not None and self.vs_floor.p_lower < 0.025):
                return "better"
            return "shift"
        return "worse" if 1 - t.p_lower < 0.025 else "not distinguishable"

    @property
    def beats_base_rate(self) -> bool:
        """Better than the reference by the test and not by a shift of the rate alone."""
        return self.claim == "better"


def skill(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    base_logits: np.ndarray,
    baselines: Mapping[str, np.ndarray] | None = None,
    min_lag: int = 1,
    starts: np.ndarray | None = None,
    losses: np.ndarray | None = None,
    floor_logits: np.ndarray | None = None,
    shifted: bool = False,
) -> Skill:
    """Paired tests of one predictor on the windows of `labels`.

    Args:
        logits: the predictor's logits (or any score that ranks windows: the AUC's).
        labels: 0/1 labels of the windows.
        base_logits: the reference constant's logits (see `constant_logits`).
        baselines: name → logits of other predictors on the same windows.
        min_lag: the horizon (see `paired_difference`).
        starts: segment starts (see `segments`).
        losses: the predictor's per-window BCE, when it is not that of `logits` (a model's
            runs over several seeds: the mean of their per-window losses).
        floor_logits: a constant at the split's own rate, tested as `vs_floor`.
        shifted: the split's rate moved from the reference's beyond the noise (see `Skill`).

    Raises:
        ValueError: shapes differ, or the labels hold one class.
    """
    loss = bce_per_window(logits, labels) if losses is None else np.asarray(losses, "float64")

    def against(other: np.ndarray) -> PairedTest:
        return paired_difference(
            loss, bce_per_window(other, labels), min_lag=min_lag, starts=starts
        )

    return Skill(
        loss=float(loss.mean()),
        vs_base_rate=against(base_logits),
        auc=auc_delong(logits, labels, min_lag=min_lag, starts=starts),
        vs_baselines={name: against(other) for name, other in (baselines or {}).items()},
        vs_floor=None if floor_logits is None else against(floor_logits),
        shifted=shifted,
    )
