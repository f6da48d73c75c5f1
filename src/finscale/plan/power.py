"""What a design can detect before it runs: the smallest slope per decade of parameters that the
report's test would find with 80 % power (two-sided 5 %).

The report resamples the validation (or test) windows in blocks, the same for every budget, and
redraws each budget's trials (or a final model's seeds); its interval is a stretched percentile
interval of the resampled slopes, and its detectable effect is read from them
(`finscale.report.scaling_fit.detectable_slope`). The plan resamples the same statistic under a
noise model (`resampled_slopes`): the far half of the report's interval plus the distance to the
80th percentile of the slope experiments would really measure (`true_slopes`) is `detectable`;
the report's own formula on the same resamples is `report_detectable`, what the report will
state. The model, per split:

- a run's (trial's or seed's) loss on a window is the budget's loss, plus noise every run shares
  on that window (the hard windows are hard for all: it cancels in the slope), plus its model's
  own window noise (per-window SD `sd`: each trial has its own, the seeds of a final model share
  theirs), plus the run's luck: an offset of SD `luck` that holds what its configuration and
  seed happened to be worth;
- the window noise is autocorrelated (`WindowNoise`): windows closer than the report's block
  (its Newey-West lag, at least the horizon) are dependent; a run's mean over n windows varies
  by sd·√(long-run ratio / n), of which the blocks see sd·√(Bartlett ratio at the lag / n);
- runs are independent draws within a budget; budgets are independent but for the shared
  window noise;
- a budget's point is the expected best of m of its trials (validation; m the fewest trials
  among the budgets, as the report takes it) or the mean of its final model's seeds (test);
- as in the report, the spread of the runs is known only through Σ (runs − 1) degrees of
  freedom (each resample draws it from its χ² law), and the interval is stretched by the
  fixed-b critical value of the block over 1.96.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from finscale.report.hac import (
    choose_lag,
    fixed_b_critical_value,
    implied_long_run_ratio,
    long_run_ratio,
    segment_ids,
)
from finscale.report.scaling_fit import detectable_slope, expected_best_weights, interval, slopes

# Defaults where no pilot study measured them, each drawn from a shipped figure:
# - the report (docs/report.md, tests/unit/test_scaling_luck.py): the paired SE between two
#   trials on the S&P 500 sample's 444 validation windows is about 0.007 BCE; with those
#   windows' Newey-West ratio (3.0 at lag 148, their labels'), a run's own per-window noise
#   has SD 0.007 / √(2 · 3.0 / 444) ≈ 0.06;
DEFAULT_WINDOW_SD = 0.06
# - the report (docs/report.md): trials of one budget differ by a few thousandths of BCE for
#   their draw alone; its simulations use 0, 0.005 and 0.01;
DEFAULT_TRIAL_LUCK = 0.005
# - the golden storage: its final models' seeds spread by 0.0024 beyond their window noise.
DEFAULT_SEED_LUCK = 0.0025
# Resamples of the modelled slope: its 2.5th percentile is then known to about 1 %.
PLAN_RESAMPLES = 20_000

Draws = Literal["trials", "seeds"]


@dataclass(frozen=True)
class WindowNoise:
    """The windows of one split and how much a run's mean over them moves."""

    n: int  # windows
    lag: int  # the report's block: windows closer than this are dependent
    ratio: float  # Bartlett long-run variance / iid variance at that lag (≥ 1): what the
    # report's blocks see
    long_run: float  # the whole long-run variance / iid variance (≥ ratio): the truth
    sd: float  # per-window SD of a run's own loss noise
    source: str  # where lag and the ratios come from

    @property
    def effective_n(self) -> float:
        """Independent windows the n overlapping ones are worth."""
        return self.n / self.long_run

    @property
    def run_se(self) -> float:
        """Standard error of one run's mean loss from its own window noise."""
        return self.sd * math.sqrt(self.long_run / self.n)

    @property
    def block_se(self) -> float:
        """That standard error as the report's block bootstrap sees it (a Bartlett estimate at
        the block's lag, which understates persistent noise)."""
        return self.sd * math.sqrt(self.ratio / self.n)

    @property
    def stretch(self) -> float:
        """The report's stretch of its interval: the fixed-b critical value over 1.96."""
        return fixed_b_critical_value(self.lag, self.n) / fixed_b_critical_value(0, self.n)


def window_dependence(
    series: np.ndarray, *, horizon: int, starts: np.ndarray | None = None
) -> tuple[int, float, float]:
    """The lag the report's HAC rule picks for `series` (at least the horizon), the Bartlett
    long-run variance ratio at that lag, and the whole long-run ratio its rule implies (short
    lags as measured, an AR(1) tail beyond the horizon: `hac.implied_long_run_ratio`).

    Args:
        series: per-window values in window order, e.g. a split's labels (a constant
            predictor's BCE is an affine function of the label: the same autocorrelation).
        horizon: the label horizon in days.
        starts: segment starts of the windows (`finscale.report.hac.segments`).
    """
    x = np.asarray(series, dtype="float64")
    centred = x - x.mean()
    seg = segment_ids(len(x), starts)
    lag = choose_lag(centred, seg, None, horizon)
    ratio = long_run_ratio(centred, lag, seg)
    return lag, ratio, max(implied_long_run_ratio(centred, seg, horizon), ratio)


# Without the windows' labels: the S&P 500 sample's, the medians over its validation and test
# splits at horizons 1, 3 and 5 (labels cluster with volatility: the report's lag is at its cap
# of n/3 in five of the six, Bartlett ratios 2.7-7.2, long-run ratios 2.7-9.8).
ASSUMED_RATIO = 3.8
ASSUMED_LONG_RUN = 6.7


def assumed_dependence(n: int, horizon: int) -> tuple[int, float, float]:
    """Without the windows' labels: the report's lag at its cap (n/3, at least the horizon)
    and the S&P 500 sample's median ratios (`ASSUMED_RATIO`, `ASSUMED_LONG_RUN`)."""
    lag = min(max(n // 3, horizon), max(n // 3, 0))
    return lag, ASSUMED_RATIO, ASSUMED_LONG_RUN


@dataclass(frozen=True)
class Design:
    """What one scaling fit rests on: the budgets' sizes, their runs, the noise."""

    log10_params: tuple[float, ...]  # each budget's point on the parameter axis
    runs: tuple[int, ...]  # per budget: trials (validation) or one final model's seeds (test)
    draws: Draws
    luck: float  # SD of a run's luck (beyond its window noise)
    window: WindowNoise
    top_k: int | None = None  # the report's cap on m

    @property
    def m(self) -> int:
        """Trials each validation point is the expected best of (1 for seeds)."""
        if self.draws == "seeds":
            return 1
        m = min(self.runs)
        return max(1, min(m, self.top_k)) if self.top_k is not None else m

    @property
    def df(self) -> int:
        """Degrees of freedom of the runs' pooled spread: Σ (runs − 1)."""
        return sum(k - 1 for k in self.runs)

    @property
    def decades(self) -> float:
        """The spread of the budgets along log10 parameters (largest − smallest)."""
        return max(self.log10_params) - min(self.log10_params)

    def weights(self) -> list[np.ndarray]:
        if self.draws == "seeds":
            return [np.full(k, 1 / k) for k in self.runs]
        return [expected_best_weights(k, n_total=k, m=self.m) for k in self.runs]


def _offset_pool(runs: tuple[int, ...], n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Per resample, the pool of standardized offsets the report redraws runs from: every
    run's offset from its budget's mean over √(1 − 1/k), pooled over budgets of two runs or
    more, divided by the pooled SD (as `finscale.report.scaling_luck.spread`); (resamples,
    pooled runs)."""
    parts, total = [], np.zeros((n_resamples, 1))
    for k in runs:
        if k < 2:
            continue
        z = rng.normal(size=(n_resamples, k))
        centred = z - z.mean(axis=1, keepdims=True)
        total += (centred**2).sum(axis=1, keepdims=True)
        parts.append(centred / math.sqrt(1 - 1 / k))
    df = sum(k - 1 for k in runs)
    return np.concatenate(parts, axis=1) / np.sqrt(total / df)


def resampled_slopes(
    design: Design, *, n_resamples: int = PLAN_RESAMPLES, seed: int = 0
) -> np.ndarray:
    """The slopes per decade the report's bootstrap would resample, under the noise model.

    Each resample gives every run a mean loss: its window noise as the blocks see it (SE
    `block_se`; a trial's own, a final model's shared by its seeds) plus a luck offset, one of
    a pool of standardized offsets like the report's (its own draws' offsets, so a best of m
    repeats them), scaled as the report scales it: the pooled spread of the runs' means,
    s² = luck² + run_se² for trials (their whole window noise is in their spread) and luck²
    for seeds, scaled by df / χ²_df, less the blocks' part. No luck when no budget has two
    runs (the report then cannot redraw them). Each budget's point is the expected best of m
    (sorted means · weights) or the seeds' mean; the slope is least squares on log10 N.

    Raises:
        ValueError: fewer than two budgets, or a budget without a run.
    """
    if len(design.runs) < 2 or min(design.runs) < 1:
        raise ValueError(f"a slope needs two budgets with a run each, got runs {design.runs}")
    rng = np.random.default_rng(seed)
    s_w = design.window.block_se
    df = design.df
    trials = design.draws == "trials"
    # The pooled spread of the runs' means: a trial's own window noise is in it; a final
    # model's seeds share their model's window noise, so theirs holds their luck alone.
    spread = design.luck**2 + (design.window.run_se**2 if trials else 0.0)
    if df > 0:
        total = spread * df / rng.chisquare(df, size=n_resamples)
        luck = np.sqrt(np.maximum(total - (s_w**2 if trials else 0.0), 0.0))[:, None]
    else:
        luck = np.zeros((n_resamples, 1))
    pool = _offset_pool(design.runs, n_resamples, rng) if df > 0 else None
    points = []
    for k, w in zip(design.runs, design.weights(), strict=True):
        means = s_w * rng.normal(size=(n_resamples, k if trials else 1)) * np.ones((1, k))
        if pool is not None:
            picks = rng.integers(0, pool.shape[1], size=(n_resamples, k))
            means = means + luck * np.take_along_axis(pool, picks, axis=1)
        points.append(np.sort(means, axis=1) @ w)
    y = np.stack(points, axis=1)
    x = np.broadcast_to(np.asarray(design.log10_params), y.shape)
    return slopes(x, y)[0]


def true_slopes(design: Design, *, n_resamples: int = PLAN_RESAMPLES, seed: int = 1) -> np.ndarray:
    """The slope per decade of repeated experiments under the noise model (no true scaling):
    every run's mean loss is its model's whole window noise (SE `run_se`: a trial's own, a
    final model's shared by its seeds) plus its luck; each budget's point as the report takes
    it."""
    rng = np.random.default_rng(seed)
    trials = design.draws == "trials"
    points = []
    for k, w in zip(design.runs, design.weights(), strict=True):
        own = rng.normal(size=(n_resamples, k if trials else 1)) * np.ones((1, k))
        means = design.window.run_se * own + design.luck * rng.normal(size=(n_resamples, k))
        points.append(np.sort(means, axis=1) @ w)
    y = np.stack(points, axis=1)
    return slopes(np.broadcast_to(np.asarray(design.log10_params), y.shape), y)[0]


def report_detectable(design: Design, *, n_resamples: int = PLAN_RESAMPLES, seed: int = 0) -> float:
    """What the report would state as its detectable effect: its own formula
    (`detectable_slope`) on the modelled resamples, stretched by the modelled block."""
    return detectable_slope(
        resampled_slopes(design, n_resamples=n_resamples, seed=seed), design.window.stretch
    )


def detectable(design: Design, *, n_resamples: int = PLAN_RESAMPLES, seed: int = 0) -> float:
    """The smallest slope per decade (BCE per 10× parameters, either sign) that the report's
    interval clears of 0 in 80 % of such experiments: the far half of the report's interval
    (its `interval` of the modelled resamples, stretched) plus the distance from the median
    to the 80th percentile of the slope the experiments would really measure (`true_slopes`).

    The report's own formula (`report_detectable`) stretches that second part too, and reads
    it from its resamples, which see a persistent noise only up to the block: it errs wide
    when the trials' spread carries the noise the blocks miss, narrow when a final model's
    seeds share it."""
    resampled = resampled_slopes(design, n_resamples=n_resamples, seed=seed)
    low, high = interval(resampled, design.window.stretch)
    mid = float(np.median(resampled))
    low80, mid_t, high80 = np.percentile(
        true_slopes(design, n_resamples=n_resamples, seed=seed + 1), [20.0, 50.0, 80.0]
    )
    better = (float(high) - mid) + (mid_t - low80)  # found 80 % of the time below 0
    worse = (mid - float(low)) + (high80 - mid_t)
    return float(max(better, worse))
