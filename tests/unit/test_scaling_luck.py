"""The slope's interval holds the luck of the draws, against known truth.

A world like the shipped sample experiment: three budgets (50K, 200K, 800K parameters) whose
searches finished 8, 5 and 3 trials, scored on 450 overlapping validation windows whose labels
cluster (volatility does) at horizons 1 and 5. Every trial's predictions share a drifting
component (all models see the same inputs) and have one of their own (the paired SE between two
trials is ≈ 0.007 BCE, as on the sample); on top, each trial's loss is offset by a draw of spread
τ ∈ {0, 0.005, 0.01}: what its configuration and seed happened to be worth. Each budget's true
point is the same expected best of 3, so with no true scaling the true slope is 0.

A law is a shift of each budget's losses, and the fit is equivariant under it: the same data
plus a law gives the same resampled deviations, so its interval and detectable effect are the
null's shifted by the law, exactly (`test_a_law_shifts_the_interval_and_nothing_else`). The
rates under a law are therefore read from the null replications shifted: the power at a true
−0.02 per decade is the share whose upper end lies below 0.02.

Run time (one core, measured on a shared 2-core machine): the trials' world, 400 replications per
τ (200 at each horizon) with 300 resamples, about 25 s; the seeds' world about 15 s. Measured
rates are in the comments; the bounds leave room for 400 replications (a rate of 5 % has a
standard error of 1.1 %) and sit between the measured rate and the rate measured with the piece
they guard removed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.signal import lfilter
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from finscale.report import stats
from finscale.report.hac import fixed_b_critical_value
from finscale.report.scaling import BudgetTrials, expected_best_weights, fit_scaling
from finscale.report.scaling_fit import interval, slopes

pytestmark = pytest.mark.slow

N = 450  # validation windows: two years of daily windows
SIZES = np.array([5e4, 2e5, 8e5])
TRIALS = (8, 5, 3)  # the largest budget finished the fewest
TAUS = (0.0, 0.005, 0.01)
LAW = -0.02  # BCE per decade
REPS = 400
RESAMPLES = 300


def ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Stationary AR(1) series of unit variance along the last axis."""
    e = rng.normal(size=shape) * math.sqrt(1 - rho**2)
    e[..., 0] /= math.sqrt(1 - rho**2)
    return np.asarray(lfilter([1.0], [1.0, -rho], e, axis=-1))


def labels(rng: np.random.Generator, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """y_t = 1 when the next `horizon` days' return is high (~20 % positive); daily volatility
    drifts (log-AR(1), 0.97), so labels cluster even at horizon 1 and overlap at horizon 5.
    Also the volatility, which a model can see."""
    vol = np.exp(0.4 * ar1(rng, (N + horizon,), 0.97))
    returns = vol * rng.normal(size=N + horizon)
    ahead = np.lib.stride_tricks.sliding_window_view(returns[1:], horizon)[:N].sum(axis=1)
    return (ahead / math.sqrt(horizon) > 1.0).astype(float), vol[:N]


def runs_losses(
    rng: np.random.Generator, y: np.ndarray, vol: np.ndarray, shared: np.ndarray, k: int, tau: float
) -> np.ndarray:
    """BCE per window of k runs (trials or seeds): the shared component, one of each run's own,
    and each run's offset of spread tau."""
    logits = math.log(0.2 / 0.8) + 0.3 * (vol - 1) + shared + 0.18 * ar1(rng, (k, N), 0.95)
    loss = np.logaddexp(0.0, logits) - y * logits
    return np.asarray(loss + tau * rng.normal(size=(k, 1)))


def trials_world(rng: np.random.Generator, *, horizon: int, tau: float) -> list[BudgetTrials]:
    """Each budget's trials, best first, as the report scores them; no true scaling."""
    y, vol = labels(rng, horizon)
    shared = 0.3 * ar1(rng, (N,), 0.95)  # what every model makes of the same inputs
    out = []
    for b, k in enumerate(TRIALS):
        loss = runs_losses(rng, y, vol, shared, k, tau)
        out.append(BudgetTrials(f"b{b}", loss[np.argsort(loss.mean(axis=1))], np.full(k, SIZES[b])))
    return out


def window_only(budgets: list[BudgetTrials], horizon: int, seed: int) -> tuple[float, float]:
    """The interval as it was: windows resampled, every trial held fixed."""
    m = min(len(b.losses) for b in budgets)
    weights = [expected_best_weights(len(b.losses), n_total=len(b.losses), m=m) for b in budgets]
    lag = stats.paired_difference(budgets[-1].losses[0], budgets[0].losses[0], min_lag=horizon).lag
    idx = stats.block_bootstrap_indices(
        N, block_length=lag, n_resamples=RESAMPLES, rng=np.random.default_rng(seed)
    )
    counts = stats.resample_counts(idx, N) / N
    y = np.stack(
        [np.sort(counts @ b.losses.T, axis=1) @ w for b, w in zip(budgets, weights, strict=True)],
        1,
    )
    slope = slopes(np.broadcast_to(np.log10(SIZES), y.shape), y)[0]
    low, high = interval(slope, fixed_b_critical_value(lag, N) / fixed_b_critical_value(0, N))
    return float(low), float(high)


@dataclass(frozen=True)
class Runs:
    """Per replication: the slope's interval, the detectable effect, and the window-only
    interval (NaN where not computed)."""

    low: np.ndarray
    high: np.ndarray
    detectable: np.ndarray
    window_low: np.ndarray
    window_high: np.ndarray

    def wrong(self, law: float = 0.0, *, window: bool = False) -> float:
        """Share of verdicts against the truth under a true slope `law` ≤ 0."""
        low, high = (self.window_low, self.window_high) if window else (self.low, self.high)
        worse = np.mean(low + law > 0)
        return float(worse + (np.mean(high < 0) if law == 0 else 0.0))

    def found(self, law: float, *, window: bool = False) -> float:
        """Share of "bigger is better" under a true slope `law` < 0."""
        return float(np.mean((self.window_high if window else self.high) + law < 0))

    def covers(self, *, window: bool = False) -> float:
        low, high = (self.window_low, self.window_high) if window else (self.low, self.high)
        return float(np.mean((low <= 0) & (high >= 0)))


def simulate(tau: float, seed: int, *, window: bool) -> Runs:
    """`REPS` replications with no true scaling, half at horizon 1, half at 5; `window`: the
    window-only interval too."""
    rng = np.random.default_rng(seed)
    rows = []
    with threadpool_limits(limits=1):  # small matrices: threads only contend
        for r in range(REPS):
            horizon = (1, 5)[r % 2]
            budgets = trials_world(rng, horizon=horizon, tau=tau)
            fit = fit_scaling(
                budgets, n_resamples=RESAMPLES, seed=r, min_block=horizon, with_exponent=False
            )
            nan = (math.nan, math.nan)
            rows.append(
                (fit.slope.low, fit.slope.high, fit.detectable,
                 *(window_only(budgets, horizon, r) if window else nan))
            )  # fmt: skip
    return Runs(*np.array(rows).T)


@pytest.fixture(scope="module")
def null() -> dict[float, Runs]:
    """Per τ: the replications with no true scaling."""
    return {tau: simulate(tau, seed=i, window=tau != 0.005) for i, tau in enumerate(TAUS)}


def test_a_law_shifts_the_interval_and_nothing_else() -> None:
    rng = np.random.default_rng(5)
    budgets = trials_world(rng, horizon=5, tau=0.01)
    shift = LAW * (np.log10(SIZES) - np.log10(SIZES).mean())
    lawful = [
        BudgetTrials(b.budget, b.losses + c, b.param_counts)
        for b, c in zip(budgets, shift, strict=True)
    ]
    flat, law = (
        fit_scaling(bs, n_resamples=RESAMPLES, seed=3, min_block=5) for bs in (budgets, lawful)
    )
    assert law.slope.per_decade == pytest.approx(flat.slope.per_decade + LAW, abs=1e-12)
    assert law.slope.low == pytest.approx(flat.slope.low + LAW, abs=1e-12)
    assert law.slope.high == pytest.approx(flat.slope.high + LAW, abs=1e-12)
    assert law.detectable == pytest.approx(flat.detectable, abs=1e-12)
    assert flat.m == 3 and flat.luck_df == 13  # (8 - 1) + (5 - 1) + (3 - 1)


@pytest.mark.parametrize("tau", TAUS)
def test_with_no_true_scaling_wrong_verdicts_stay_rare_at_every_trial_spread(
    null: dict[float, Runs], tau: float
) -> None:
    # Wrong verdicts 2.5 %, 2.0 %, 1.0 % at τ 0, 0.005, 0.01 (coverage 97.5-99 %); coverage
    # of the true slope is the same with or without a law (equivariance).
    assert null[tau].wrong() <= 0.065
    assert null[tau].covers() >= 0.92
    assert null[tau].wrong(LAW) == 0.0  # under the law, never "bigger is worse"


def test_without_the_trials_luck_the_interval_is_wrong_as_the_issue_found(
    null: dict[float, Runs],
) -> None:
    # The interval as it was, on the same data: right without trial luck, wrong with it.
    # (At τ 0.005: 11.5 % wrong, 88.5 % coverage.)
    assert null[0.0].wrong(window=True) <= 0.065  # 4.25 %
    assert null[0.01].wrong(window=True) >= 0.15  # 21.5 %
    assert null[0.01].covers(window=True) <= 0.85  # 78.5 %


def test_the_power_for_a_true_law_is_what_is_stated_and_half_what_windows_alone_allow(
    null: dict[float, Runs],
) -> None:
    power = {tau: null[tau].found(LAW) for tau in TAUS}
    assert power[0.0] >= 0.5 * null[0.0].found(LAW, window=True)  # 0.91 of 0.9675
    assert power[0.0] >= 0.85  # 0.91
    assert 0.7 <= power[0.005] <= 0.95  # 0.8125
    assert 0.3 <= power[0.01] <= 0.6  # 0.4225: trial luck this large is hard to see through


@pytest.mark.parametrize("tau", TAUS)
def test_a_slope_the_size_of_the_detectable_effect_is_found_80_percent_of_the_time(
    null: dict[float, Runs], tau: float
) -> None:
    # The design's detectable effect: the median over replications of each one's own (0.017,
    # 0.021, 0.034 BCE per decade); a true slope of that size is found 81.75 %, 84 %, 87.5 % of
    # the time (the interval covers a little more than 95 %, so a little more than 80 %).
    detectable = float(np.median(null[tau].detectable))
    assert 0.7 <= null[tau].found(-detectable) <= 0.9


# --- the test split: a final model's seeds -------------------------------------------------------


def seeds_world(
    rng: np.random.Generator, *, horizon: int, tau: float, seeds: int
) -> list[BudgetTrials]:
    """One final model per budget, its seeds' test losses, each seed's run offset by tau."""
    y, vol = labels(rng, horizon)
    shared = 0.3 * ar1(rng, (N,), 0.95)
    return [
        BudgetTrials(f"b{b}", runs_losses(rng, y, vol, shared, seeds, tau), np.full(seeds, size))
        for b, size in enumerate(SIZES)
    ]


def seeds_coverage(tau: float, seeds: int, reps: int) -> tuple[float, float]:
    """Coverage of the true slope 0 with the seeds redrawn, and with the seed-averaged loss
    alone (as final_scaling did)."""
    rng = np.random.default_rng(seeds)
    covered = averaged = 0
    with threadpool_limits(limits=1):
        for r in range(reps):
            horizon = (1, 5)[r % 2]
            budgets = seeds_world(rng, horizon=horizon, tau=tau, seeds=seeds)
            fit = fit_scaling(budgets, n_resamples=RESAMPLES, seed=r, min_block=horizon,
                              draws="seeds", with_exponent=False)  # fmt: skip
            covered += fit.slope.low <= 0 <= fit.slope.high
            if seeds > 1:
                mean = [BudgetTrials(b.budget, b.losses.mean(axis=0)[None], b.param_counts[:1])
                        for b in budgets]  # fmt: skip
                alone = fit_scaling(mean, n_resamples=RESAMPLES, seed=r, min_block=horizon,
                                    draws="seeds", with_exponent=False)  # fmt: skip
                averaged += alone.slope.low <= 0 <= alone.slope.high
    return covered / reps, averaged / reps


def test_two_seeds_that_spread_are_inside_the_test_slope_interval() -> None:
    # Seeds whose runs differ by 0.01 BCE for their seed alone; each model averages two. Their
    # spread has 3 degrees of freedom: taken as known (no χ² draw) the interval covers 88 %.
    with_seeds, averaged_alone = seeds_coverage(0.01, seeds=2, reps=REPS)
    assert with_seeds >= 0.92  # 96.75 %
    assert averaged_alone <= 0.75  # 62.5 %


def test_one_run_per_model_is_the_window_bootstrap_and_its_stretch_holds_coverage() -> None:
    # Nothing to redraw but the windows. The window bootstrap covers 92.9 % (a little short of
    # 95 %: outputs this persistent need long blocks), without the fixed-b stretch less.
    covered, _ = seeds_coverage(0.0, seeds=1, reps=2 * REPS)
    assert covered >= 0.895
