"""Every feature column of every tier, recomputed on history cut short at either end.

Cut at the end (the days after day t removed), every value up to the cut is unchanged: no
feature reads a later day. Cut at the start (the days before some day removed), every value
from the cut plus the feature's lookback on is unchanged: the lookback the table derives is all
the history a feature reads, so the embargo that keeps it from validation days is enough. The
only columns that remember further back are a20's whole-history ones, kept as the research
system computed them; that they do is checked too, so the exemption cannot hide a new one.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import numpy as np
import pandas as pd
import pytest

from finscale.data import features, sources
from finscale.tiers import HISTORY_ROWS, INPUTS, SAMPLE_TICKER, TIERS, Feature

ROWS = 700
END_CUTS = (HISTORY_ROWS + 51, 430, ROWS - 60)
START_CUTS = (37, 150, 263)


def _unique_features(input_name: str) -> tuple[Feature, ...]:
    """Every feature of every tier of an input, once (a larger tier repeats a smaller one's)."""
    seen: dict[str, Feature] = {}
    for tier in TIERS.values():
        if tier.input == input_name:
            seen.update((f.name, f) for f in tier.features)
    return tuple(seen.values())


def _compute(feats: tuple[Feature, ...], bars: pd.DataFrame) -> dict[str, np.ndarray]:
    memo: features.Memo = {}
    bars = bars.reset_index(drop=True)
    return {f.name: features.compute_feature(f, bars, memo) for f in feats}


def _bars(input_name: str) -> pd.DataFrame:
    ticker = INPUTS[input_name].sample or SAMPLE_TICKER
    directory = sources.sample_dir(None)
    return sources.sample_bars(directory, ticker).iloc[:ROWS].reset_index(drop=True)


class Case:
    """One input series: its features, its bars and the values on the whole of them."""

    def __init__(self, input_name: str) -> None:
        self.input = input_name
        self.features = _unique_features(input_name)
        self.bars = _bars(input_name)
        self.whole = _compute(self.features, self.bars)


@cache
def _case(input_name: str) -> Case:
    return Case(input_name)


@pytest.fixture(params=[name for name in INPUTS if _unique_features(name)])
def case(request: pytest.FixtureRequest) -> Case:
    return _case(request.param)


def test_every_column_is_covered(case: Case) -> None:
    tiers = [t for t in TIERS.values() if t.input == case.input]
    assert {c for t in tiers for c in t.columns} == set(case.whole)
    assert len(case.bars) == ROWS


@pytest.mark.parametrize("cut", END_CUTS)
def test_no_column_reads_a_later_day(case: Case, cut: int) -> None:
    shorter = _compute(case.features, case.bars.iloc[: cut + 1])
    for name, whole in case.whole.items():
        np.testing.assert_array_equal(shorter[name], whole[: cut + 1], err_msg=name)


def _remembers_further_back(feature: Feature) -> bool:
    """a20's whole-history columns whose function depends on where the series starts."""
    return feature.whole_history and features.depends_on_start(feature)


def _changed_after_lookback(case: Case, cut: int) -> set[str]:
    """The columns whose values from `cut` plus their lookback on change when the history
    starts on row `cut`."""
    later = _compute(case.features, case.bars.iloc[cut:])
    changed = set()
    for f in case.features:
        first = cut + features.feature_lookback(f)
        whole, shorter = case.whole[f.name][first:], later[f.name][first - cut :]
        scale = float(np.nanmax(np.abs(case.whole[f.name])))
        if not np.allclose(shorter, whole, rtol=1e-9, atol=1e-9 * scale, equal_nan=True):
            changed.add(f.name)
    return changed


def _remembers_further_back(feature: Feature) -> bool:
    """a20's whole-history columns whose function depends on where the series starts."""
    return feature.whole_history and features.depends_on_start(feature)


@pytest.mark.parametrize("cut", START_CUTS)
def test_no_column_reads_beyond_its_lookback(case: Case, cut: int) -> None:
    exempt = {f.name for f in case.features if _remembers_further_back(f)}
    assert _changed_after_lookback(case, cut) - exempt == set()


def test_the_exempt_columns_are_a20s_that_do_remember_further_back() -> None:
    """The exemption above is no wider than it must be: each exempt column changes."""
    case = _case("ohlcv")
    exempt = {f.name for f in case.features if _remembers_further_back(f)}
    assert exempt == {
        "dema_9", "dema_10", "dema_20", "dema_25", "dema_90", "rsi_daily", "rsi_weekly",
        "stochrsi_daily", "stochrsi_weekly", "macd_line", "obv", "adosc", "atr_14", "adx_14",
    }  # fmt: skip
    assert exempt <= set(TIERS["a20"].columns)
    assert _changed_after_lookback(case, START_CUTS[1]) >= exempt


def test_each_lookback_is_where_the_column_starts(case: Case) -> None:
    """The derived lookback is the exact warm-up: the first value is on that row."""
    for f in case.features:
        values = case.whole[f.name]
        first = int(np.argmax(np.isfinite(values)))
        lookback = features.feature_lookback(f)
        if f.weekly:  # a week's value shows after the week: at most the whole weeks counted
            assert first <= lookback, f.name
        else:
            assert first == lookback, f.name
        assert np.isfinite(values[lookback:]).all(), f.name


def test_bounded_columns_stay_within_their_bounds(case: Case) -> None:
    for f in case.features:
        if f.bounds is None:
            continue
        values = case.whole[f.name][np.isfinite(case.whole[f.name])]
        low, high = f.bounds
        assert values.min() >= low - 1e-9 and values.max() <= high + 1e-9, f.name


def test_a_restarted_column_is_still_its_indicator() -> None:
    """200 rows of history are warm-up enough: a restarted column follows the same function
    run over the whole series, once that has forgotten its own start."""
    case = _case("ohlcv")
    restarted = [f for f in case.features if features.restarts(f)]
    assert len(restarted) > 50
    settled = slice(ROWS - 250, ROWS)
    for f in restarted:
        whole = features.compute_feature(replace(f, whole_history=True), case.bars)[settled]
        error = np.abs(case.whole[f.name][settled] - whole) / np.nanstd(whole)
        assert np.median(error) < 5e-3, f.name
        assert np.quantile(error, 0.9) < 2e-2, f.name
