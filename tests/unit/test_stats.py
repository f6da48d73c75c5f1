"""Paired statistics and the joint bootstrap against known truth: overlapping labels, a null
predictor, a predictor with small real skill, budgets with a known exponent, and budgets with
no scaling but unequal numbers of trials. Monte-Carlo checks use fixed seeds and few
replications; the rates they assert leave room for that."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.signal import lfilter
from sklearn.metrics import roc_auc_score

from finscale.report import stats
from finscale.report.scaling import BudgetTrials, expected_best_weights, fit_scaling

H = 5  # horizon: labels of windows fewer than H days apart share days
N = 660  # validation windows, as in a two-year chronological split
BASE = math.log(0.2 / 0.8)


def ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Stationary AR(1) series of unit variance along the last axis."""
    e = rng.normal(size=shape) * math.sqrt(1 - rho**2)
    e[..., 0] /= math.sqrt(1 - rho**2)
    return np.asarray(lfilter([1.0], [1.0, -rho], e, axis=-1))


def overlapping_labels(rng: np.random.Generator, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """y_t = 1 when the sum of the next H daily shocks is high (~16 % positive), so neighbouring
    windows share H-1 shocks; and the first of those shocks (what a skilled model could see)."""
    shocks = rng.normal(size=n + H)
    ahead = np.lib.stride_tricks.sliding_window_view(shocks[1:], H)[:n].sum(axis=1)
    return (ahead / math.sqrt(H) > 1.0).astype(float), shocks[1 : n + 1]


# --- losses --------------------------------------------------------------------------------------


def test_bce_from_logits_is_stable_and_matches_the_probability_form() -> None:
    logits = np.array([-800.0, -3.0, 0.0, 2.5, 800.0])
    labels = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    loss = stats.bce_per_window(logits, labels)
    assert np.isfinite(loss).all()
    p = 1 / (1 + np.exp(-logits[1:4]))
    y = labels[1:4]
    assert loss[1:4] == pytest.approx(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert loss[0] == pytest.approx(0.0) and loss[4] == pytest.approx(0.0)
    assert stats.bce_per_window(
        stats.constant_logits(0.2, 5), np.array([1, 0, 0, 0, 0])
    ).mean() == (pytest.approx(stats.binary_entropy(0.2)))


def test_segments_are_the_runs_of_consecutive_window_starts() -> None:
    starts = np.array([100, 101, 102, 500, 501, 900])
    assert stats.segments(starts).tolist() == [0, 3, 5]
    assert stats.segments(np.arange(10, 20)).tolist() == [0]


# --- Newey-West ----------------------------------------------------------------------------------


def _direct_long_run_variance(d: np.ndarray, lag: int, segment: np.ndarray) -> float:
    """Σ_t Σ_s w(|t-s|) c_t c_s / n² over pairs in one segment, by a plain double loop."""
    c = d - d.mean()
    n = len(c)
    total = 0.0
    for t in range(n):
        for s in range(max(0, t - lag), min(n, t + lag + 1)):
            if segment[t] == segment[s]:
                total += (1 - abs(t - s) / (lag + 1)) * c[t] * c[s]
    return total / n**2


def test_the_newey_west_standard_error_matches_a_direct_sum_inside_segments() -> None:
    rng = np.random.default_rng(0)
    a, b = ar1(rng, (2, 120), 0.7)
    starts = np.array([0, 50, 90])
    segment = np.repeat([0, 1, 2], [50, 40, 30])
    test = stats.paired_difference(a, b, lag=6, starts=starts)
    d = a - b
    var_iid = d.var(ddof=1) / len(d)
    direct = max(_direct_long_run_variance(d, 6, segment) * len(d) / (len(d) - 1), var_iid)
    assert test.se == pytest.approx(math.sqrt(direct), rel=1e-9)
    assert test.se_iid == pytest.approx(math.sqrt(var_iid))
    assert test.effective_n == pytest.approx(len(d) * var_iid / test.se**2)
    assert test.mean == pytest.approx(d.mean()) and test.lag == 6
    assert "Newey–West SE (lag 6" in test.test


def test_the_automatic_lag_is_at_least_the_horizon_and_grows_with_persistence() -> None:
    # (tests/unit/test_hac.py checks the lag against known truth)
    rng = np.random.default_rng(1)
    white = rng.normal(size=(2, 300))
    assert stats.paired_difference(*white, min_lag=100).lag == 100
    assert stats.paired_difference(*white, min_lag=5).lag >= 5
    persistent = ar1(rng, (2, 1000), 0.97)
    assert stats.paired_difference(*persistent, min_lag=5).lag > 100


def test_a_predictor_against_itself_differs_by_zero_with_zero_se() -> None:
    rng = np.random.default_rng(2)
    labels, _ = overlapping_labels(rng)
    scores = rng.normal(size=N)
    same = stats.paired_difference(scores, scores, min_lag=H)
    assert same.mean == 0 and same.se == 0 and same.p_value == 1.0
    auc = stats.paired_auc_delong(scores, scores, labels, min_lag=H)
    assert auc.estimate == 0 and auc.se == 0 and auc.p_value == 1.0


# --- known truth: overlapping labels -------------------------------------------------------------


def test_a_null_difference_is_rejected_about_5_percent_of_the_time_and_iid_errors_over_reject() -> (
    None
):
    # Two predictors with the same law, independent of each other given a shared component:
    # the expected loss difference is exactly 0. Their outputs drift slowly (AR(1), 0.95), as a
    # model's do on sliding 60-day contexts, and the labels overlap over H days.
    rng = np.random.default_rng(3)
    replications = 400
    rejected_hac = rejected_iid = 0
    for _ in range(replications):
        labels, _ = overlapping_labels(rng)
        shared, own_a, own_b = ar1(rng, (3, N), 0.95)
        a = stats.bce_per_window(BASE + 0.5 * (shared + own_a), labels)
        b = stats.bce_per_window(BASE + 0.5 * (shared + own_b), labels)
        rejected_hac += stats.paired_difference(a, b, min_lag=H).p_value < 0.05
        rejected_iid += stats.paired_difference(a, b, lag=0).p_value < 0.05
    assert 0.02 <= rejected_hac / replications <= 0.09  # 6 %
    assert rejected_iid / replications > 0.2  # windows treated as independent: 41 %


def test_real_skill_is_found_by_the_paired_test_where_the_unpaired_ones_fail() -> None:
    # A model that sees some of the first future shock beats the base rate by ~0.03 BCE
    # (AUC ~0.72, as the research system's best trials), drifting noise of its own included;
    # the per-window losses of both vary by ~0.5.
    rng = np.random.default_rng(4)
    replications = 200
    paired = unpaired = old_z = 0
    aucs = []
    for _ in range(replications):
        labels, first_shock = overlapping_labels(rng)
        logits = BASE + 0.5 * first_shock + 0.15 * ar1(rng, (N,), 0.95)
        model = stats.bce_per_window(logits, labels)
        base = stats.bce_per_window(stats.constant_logits(0.2, N), labels)
        paired += stats.paired_difference(model, base, min_lag=H).p_lower < 0.025
        unpaired += stats.unpaired_difference(model, base).p_lower < 0.025
        # The research system's baseline_z: the model's own per-window SE alone.
        old_z += (base.mean() - model.mean()) / (model.std(ddof=1) / math.sqrt(N)) > 1.96
        aucs.append(roc_auc_score(labels, logits))
    assert 0.68 < float(np.mean(aucs)) < 0.76
    assert paired / replications >= 0.85  # 94 %
    assert unpaired / replications <= 0.05  # 0 %
    assert old_z / replications <= 0.5  # 38 %


# --- DeLong --------------------------------------------------------------------------------------


def _brute_force_components(
    scores: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    pos, neg = scores[labels == 1], scores[labels == 0]
    kernel = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return kernel.mean(axis=1), kernel.mean(axis=0)


def test_delong_matches_sklearn_and_a_brute_force_variance_with_ties() -> None:
    rng = np.random.default_rng(5)
    labels = (rng.random(300) < 0.3).astype(float)
    a = np.round(labels * 0.8 + rng.normal(size=300), 1)  # rounding makes ties
    b = np.round(labels * 0.4 + rng.normal(size=300), 1)
    test = stats.auc_delong(a, labels, lag=0)
    assert test.estimate == pytest.approx(roc_auc_score(labels, a))
    v10, v01 = _brute_force_components(a, labels)
    var = v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01)
    assert test.se == pytest.approx(math.sqrt(var)) and test.se == test.se_iid
    assert test.z == pytest.approx((test.estimate - 0.5) / test.se)
    assert test.p_value == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(abs(test.z) / 2**0.5))))

    pair = stats.paired_auc_delong(a, b, labels, lag=0)
    w10, w01 = _brute_force_components(b, labels)
    var = np.var(v10 - w10, ddof=1) / len(v10) + np.var(v01 - w01, ddof=1) / len(v01)
    assert pair.estimate == pytest.approx(roc_auc_score(labels, a) - roc_auc_score(labels, b))
    assert pair.se == pytest.approx(math.sqrt(var))


def test_delong_inflated_for_overlap_holds_its_level_where_delong_does_not() -> None:
    # Scores that drift slowly and know nothing of the labels: AUC 0.5 by construction.
    rng = np.random.default_rng(6)
    replications = 300
    inflated = plain = 0
    for _ in range(replications):
        labels, _ = overlapping_labels(rng)
        scores = ar1(rng, (N,), 0.95)
        inflated += stats.auc_delong(scores, labels, min_lag=H).p_value < 0.05
        plain += stats.auc_delong(scores, labels, lag=0).p_value < 0.05
    assert 0.015 <= inflated / replications <= 0.09  # 6 %
    assert plain / replications > 0.15  # 23 %


# --- block bootstrap -----------------------------------------------------------------------------


def test_block_bootstrap_draws_whole_blocks_inside_segments() -> None:
    starts = np.array([0, 30, 45])
    idx = stats.block_bootstrap_indices(
        60, block_length=7, n_resamples=500, rng=np.random.default_rng(7), starts=starts
    )
    assert idx.shape == (500, 60)
    segment = np.repeat([0, 1, 2], [30, 15, 15])
    assert (segment[idx] == segment[None, :]).all()  # each part comes from its own segment
    steps = np.diff(idx[:, :7], axis=1)  # the first block: consecutive, wrapping in its run
    assert np.isin(steps, [1, -29]).all()
    counts = stats.resample_counts(idx, 60)
    assert (counts.sum(axis=1) == 60).all()
    assert counts.mean(axis=0) == pytest.approx(np.ones(60), abs=0.2)  # circular: no edge loss


def test_block_bootstrap_and_newey_west_agree_on_a_persistent_series() -> None:
    rng = np.random.default_rng(8)
    x = ar1(rng, (2000,), 0.8)
    idx = stats.block_bootstrap_indices(
        2000, block_length=40, n_resamples=2000, rng=np.random.default_rng(9)
    )
    boot = (stats.resample_counts(idx, 2000) @ x / 2000).std()
    hac = stats.paired_difference(x, np.zeros(2000), lag=40).se
    assert boot == pytest.approx(hac, rel=0.2)
    assert hac > 2.5 * stats.paired_difference(x, np.zeros(2000), lag=0).se  # ≈ 3 = √(1.8/0.2)


# --- the joint bootstrap of the scaling fit ------------------------------------------------------

SIZES = np.array([1e6, 1e7, 1e8, 1e9, 1e10])


def _budgets(
    rng: np.random.Generator,
    law: np.ndarray,
    trials: list[int],
    *,
    spread: np.ndarray | None = None,
) -> list[BudgetTrials]:
    """Per-window losses: the law, each trial's own offset, noise shared by all budgets (the
    hard windows), by a budget's trials, and each trial's own; all drift over windows."""
    common = 0.4 * ar1(rng, (N,), 0.9)
    out = []
    for b, (size, k) in enumerate(zip(SIZES, trials, strict=True)):
        offset = rng.exponential(0.02, k) if spread is None else spread[:k]
        losses = (
            law[b]
            + offset[:, None]
            + common
            + 0.03 * ar1(rng, (N,), 0.9)
            + 0.05 * ar1(rng, (k, N), 0.9)
        )
        order = np.argsort(losses.mean(axis=1))
        sizes = size * (1 + 0.2 * rng.random(k))
        out.append(BudgetTrials(f"b{b}", losses[order], sizes[order]))
    return out


def test_expected_best_weights_match_an_enumeration_of_subsets() -> None:
    values = np.array([0.1, 0.2, 0.3, np.inf, np.inf, np.inf])  # three pruned: losers
    for m in (1, 2, 4, 6):
        bests = [min(c) for c in itertools.combinations(values, m)]
        kept = [v for v in bests if np.isfinite(v)]
        w = expected_best_weights(3, n_total=6, m=m)
        assert w.sum() == pytest.approx(1.0)
        assert float(values[:3] @ w) == pytest.approx(float(np.mean(kept)))


@pytest.mark.slow
def test_the_joint_bootstrap_covers_a_known_law() -> None:
    # L = 0.3 + 0.05 (N / 1e8)^-0.2 over five decades; each budget's one trial is on the law
    # (nothing to redraw but the windows), and window noise shared across budgets dwarfs the
    # differences. 400 replications, about 15 s. Covered 92 % (slope) and 93.5 % (α); without
    # the interval's fixed-b stretch 88.5 % and 91 %.
    alpha = 0.2
    law = 0.3 + 0.05 * (SIZES / 1e8) ** -alpha
    true_slope = np.polyfit(np.log10(SIZES), law, 1)[0]
    rng = np.random.default_rng(10)
    replications = 400
    covered_slope = covered_alpha = 0
    for r in range(replications):
        budgets = _budgets(rng, law, [1] * 5, spread=np.zeros(1))
        fit = fit_scaling(budgets, n_resamples=200, seed=r, min_block=H)
        assert fit.exponent is not None
        covered_slope += fit.slope.low <= true_slope <= fit.slope.high
        covered_alpha += fit.exponent.low <= alpha <= fit.exponent.high
    assert covered_slope / replications >= 0.905
    assert covered_alpha / replications >= 0.9
    assert fit.verdict == "bigger is better" and fit.m == 1


@pytest.mark.slow
def test_no_scaling_with_fewer_trials_at_the_largest_budget_gives_no_spurious_trend() -> None:
    # Every budget's trials are draws from one law; the largest holds the fewest (pruning and
    # failures do that to 2B). The best of all trials favours the budgets searched longest.
    # Trials' offsets spread by 0.02 (exponential): 200 replications, about 15 s. Wrong
    # verdicts 2 %; with the trials held fixed (windows alone resampled) 10.5 %.
    law = np.full(5, 0.4)
    rng = np.random.default_rng(11)
    replications = 200
    slopes, alphas, naive, wrong = [], [], [], 0
    for r in range(replications):
        budgets = _budgets(rng, law, [20, 16, 12, 8, 4])
        fit = fit_scaling(budgets, n_resamples=200, seed=r, min_block=H)
        assert fit.m == 4 and fit.exponent is not None
        slopes.append(fit.slope.per_decade)
        alphas.append(fit.exponent.alpha)
        wrong += fit.verdict in ("bigger is worse", "bigger is better")
        best_of_all = [b.losses.mean(axis=1).min() for b in budgets]
        naive.append(np.polyfit(np.log10(SIZES), best_of_all, 1)[0])
    typical_half_width = 0.001
    assert abs(np.median(slopes)) < typical_half_width
    assert 0.3 <= np.mean(np.array(slopes) < 0) <= 0.7
    assert abs(np.median(alphas)) < 0.05
    assert wrong / replications <= 0.065
    assert np.mean(np.array(naive) > 0) >= 0.7  # spurious "inverse scaling"


def test_resampling_budgets_jointly_cancels_the_noise_they_share() -> None:
    law = 0.3 + 0.05 * (SIZES / 1e8) ** -0.2
    budgets = _budgets(np.random.default_rng(12), law, [1] * 5)
    fit = fit_scaling(budgets, n_resamples=400, seed=0, min_block=H)
    # The same fit with every budget resampled on its own windows, as independent noise per
    # budget (the research system's bootstrap) would.
    rng = np.random.default_rng(0)
    means = np.stack(
        [
            stats.resample_counts(
                stats.block_bootstrap_indices(N, block_length=fit.block_length,
                                              n_resamples=400, rng=rng), N,
            ) @ b.losses[0] / N
            for b in budgets
        ],
        axis=1,
    )  # fmt: skip
    independent = np.polyfit(np.log10(SIZES), means.T, 1)[0]
    width = fit.slope.high - fit.slope.low
    assert np.percentile(independent, 97.5) - np.percentile(independent, 2.5) > 5 * width


def test_two_budgets_give_a_slope_and_a_paired_test_but_no_exponent() -> None:
    law = np.array([0.40, 0.35])
    budgets = _budgets(np.random.default_rng(13), np.r_[law, law, law][:5], [3] * 5)[:2]
    fit = fit_scaling(budgets, n_resamples=100, seed=0, min_block=H)
    assert fit.exponent is None and any("two budgets" in n for n in fit.notes)
    assert fit.largest_vs_smallest is not None
    assert fit.largest_vs_smallest.mean == pytest.approx(
        budgets[1].losses[0].mean() - budgets[0].losses[0].mean()
    )
    assert fit.slope.per_decade == pytest.approx(
        (fit.losses[1] - fit.losses[0]) / np.log10(fit.params[1] / fit.params[0])
    )


@pytest.mark.parametrize(
    ("law", "passes"),
    [(np.array([0.40, 0.36, 0.34]), True), (np.array([0.345, 0.346, 0.335]), False)],
    ids=["monotone", "not monotone"],
)
def test_three_budgets_say_whether_the_exponent_passes_through_them(
    law: np.ndarray, passes: bool
) -> None:
    # Every trial of a budget sits on its law point: the points are the law itself.
    budgets = [
        BudgetTrials(f"b{b}", np.full((2, N), law[b]) + np.arange(2)[:, None] * 0.01,
                     np.full(2, SIZES[b]))
        for b in range(3)
    ]  # fmt: skip
    fit = fit_scaling(budgets, n_resamples=0, seed=0, min_block=H)
    assert fit.exponent is not None
    notes = " ".join(fit.notes)
    if passes:
        assert fit.exponent.r2 > 0.999 and "passes through every point" in notes
    else:
        assert fit.exponent.r2 < 0.99 and "misses them" in notes
        assert "passes through every point" not in notes


def test_an_exponent_interval_at_the_fitted_range_says_so() -> None:
    from finscale.report.scaling import ALPHA_MAX, ExponentFit
    from finscale.report.summary import alpha_interval

    fit = ExponentFit(0.01, 0.0, 0.34, 1e5, 0.8, 3, low=0.003, high=ALPHA_MAX, n_resamples=9)
    text = alpha_interval(fit)
    assert text.startswith("0.003 to ≥ 2;") and "upper end is the end of the fitted range" in text
    assert f"{ALPHA_MAX:.3f}" not in text  # the range's end is not shown as an estimate
    both = ExponentFit(-0.001, 0.0, 0.3, 1e5, 0.1, 3, low=-1.0, high=ALPHA_MAX, n_resamples=9)
    assert alpha_interval(both) == (
        "≤ -1 to ≥ 2; both its ends are the ends of the fitted range [-1, 2], not set by the data"
    )
    inside = ExponentFit(0.2, 0.3, 0.05, 1e5, 1.0, 5, low=0.1, high=0.4, n_resamples=9)
    assert alpha_interval(inside) == "0.100 to 0.400"
    assert alpha_interval(inside, ",") == "0.100, 0.400"


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        ([BudgetTrials("a", np.zeros((2, 10)), np.ones(2))], "two budgets"),
        ([BudgetTrials("a", np.zeros((2, 10)), np.ones(2)),
          BudgetTrials("b", np.zeros((2, 9)), np.ones(2))], "same windows"),
        ([BudgetTrials("a", np.zeros((2, 10)), np.ones(2)),
          BudgetTrials("b", np.zeros((2, 10)), np.ones(3))], "3 sizes for 2 trials"),
    ],
    ids=["one budget", "different windows", "sizes"],
)  # fmt: skip
def test_a_scaling_fit_refuses_inputs_it_cannot_fit(
    budgets: list[BudgetTrials], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_scaling(budgets)


def test_skill_names_its_tests_and_compares_on_the_same_windows() -> None:
    rng = np.random.default_rng(14)
    labels, first_shock = overlapping_labels(rng)
    logits = BASE + 0.5 * first_shock
    other = BASE + 0.2 * first_shock
    result = stats.skill(
        logits,
        labels,
        base_logits=stats.constant_logits(0.2, N),
        baselines={"logistic": other},
        min_lag=H,
    )
    assert result.beats_base_rate
    assert result.vs_base_rate.lag >= H and result.vs_base_rate.effective_n <= N
    assert result.vs_base_rate.test.startswith("paired per-window BCE difference, Newey–West")
    assert result.auc.estimate == pytest.approx(roc_auc_score(labels, logits))
    assert result.auc.test.startswith("AUC vs 0.5, DeLong SE Newey–West-inflated")
    assert result.vs_baselines["logistic"].mean < 0


# --- the draws' luck -----------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.0, 0.02])
def test_the_spread_of_trials_beyond_their_window_noise_is_what_they_drew(tau: float) -> None:
    # Three budgets of 30 trials, each trial offset by a draw of spread tau; the trials' own
    # window noise alone spreads their mean losses by about 0.01.
    from finscale.report.scaling_luck import spread

    rng = np.random.default_rng(15)
    common = 0.4 * ar1(rng, (N,), 0.9)
    losses = [common + tau * rng.normal(size=(30, 1)) + 0.1 * ar1(rng, (30, N), 0.9)
              for _ in range(3)]  # fmt: skip
    idx = stats.block_bootstrap_indices(N, block_length=66, n_resamples=400, rng=rng)
    counts = stats.resample_counts(idx, N) / N
    found = spread(losses, [counts @ loss.T for loss in losses])
    assert found is not None and found.df == 87
    assert found.offsets.shape == (90,) and float(np.mean(found.offsets**2)) == pytest.approx(
        1, abs=0.05
    )
    assert math.sqrt(found.total) > 0.008  # window noise alone spreads them
    if tau:
        assert math.sqrt(found.luck) == pytest.approx(tau, rel=0.25)
    else:  # most of the spread is window noise; the block bootstrap sees a little less than
        # all of it (as its fixed-b stretch says), which leaves the intervals a little wide
        assert found.luck < 0.3 * found.total  # 21 %


def test_the_sentence_names_what_was_redrawn_and_what_the_design_could_see() -> None:
    budgets = _budgets(np.random.default_rng(16), np.full(5, 0.4), [4, 3, 3, 3, 3])[:2]
    fit = fit_scaling(budgets, n_resamples=300, seed=0, min_block=H)
    assert fit.verdict == "no detectable effect" and fit.luck_df == 5
    assert fit.detectable > (fit.slope.high - fit.slope.low) / 2
    assert fit.sentence.startswith(
        f"inconclusive: could only see effects of at least {fit.detectable:.4f} BCE per 10× "
        "parameters (80 % power); measured "
    )
    assert "and over each budget's trials (spread pooled over budgets, χ² on 5 df)" in fit.sentence
    assert any(n.startswith("trials redrawn on every resample") for n in fit.notes)
    # One run per final model: nothing but the windows to redraw, and the sentence says so.
    seeds = [BudgetTrials(b.budget, b.losses[:1], b.param_counts[:1]) for b in budgets]
    single = fit_scaling(seeds, n_resamples=300, seed=0, min_block=H, draws="seeds")
    assert single.luck_df == 0 and math.isnan(single.luck)
    assert "not over each final model's seeds (one seed each" in single.sentence
    assert single.sentence.endswith("one final model per budget, its loss the mean over its seeds)")
