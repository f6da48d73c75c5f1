"""The features of the tiers in `finscale.tiers`, computed from its rows: TA-Lib's functions
through its abstract API, and ours (`OWN_FUNCTIONS`).

Every feature at day t uses prices up to day t only. Weekly indicators are computed on weekly
bars and become visible on the first trading day after their week's last trading day, so a week
that starts on a holiday still gets last week's value (the research system read Monday's row,
lost those weeks, and showed each week's own close from its Monday on).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import talib
from talib import abstract

from finscale.tiers import DATASETS, INPUTS, TIERS, Feature, FeatureTier

_WEEK = "W-SUN"  # weeks run Monday..Sunday


def weekly_to_daily(
    dates: pd.Series, close: pd.Series, indicator: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Compute `indicator` on weekly closes and give each day the value of the last week that
    had ended before it.

    Args:
        dates: daily dates, sorted.
        close: daily closes.
        indicator: a function from a float64 array of weekly closes to an array of equal length.

    Returns:
        One value per day; NaN until a week with a value has ended.
    """
    week = dates.dt.to_period(_WEEK)
    weekly = (
        pd.DataFrame({"last_day": dates, "close": close})
        .groupby(week, sort=True)
        .agg(last_day=("last_day", "max"), close=("close", "last"))
    )
    values = np.asarray(indicator(weekly["close"].to_numpy(dtype="float64")))
    # Number of weeks whose last trading day is strictly before each day, minus one: the index
    # of the most recent finished week.
    last_days = weekly["last_day"].to_numpy(dtype="datetime64[ns]")
    finished = np.searchsorted(last_days, dates.to_numpy(dtype="datetime64[ns]"), side="left") - 1
    out = np.full(len(dates), np.nan)
    seen = finished >= 0
    out[seen] = values[finished[seen]]
    return out


def _percentile_rank(values: np.ndarray, window: int) -> np.ndarray:
    """Share (0..100) of the previous window-1 values strictly below the current one."""
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        view = np.lib.stride_tricks.sliding_window_view(values, window)
        below = (view[:, :-1] < view[:, -1:]).sum(axis=1)
        out[window - 1 :] = 100.0 * below / (window - 1)
    return out


def _close(bars: pd.DataFrame) -> np.ndarray:
    return bars["Close"].to_numpy(dtype="float64")


def _percent_b(bars: pd.DataFrame, *, timeperiod: int, nbdev: float) -> np.ndarray:
    """Where the close sits in its Bollinger Bands (0 at the lower, 1 at the upper); the bands
    are around TA-Lib's default simple moving average (matype 0)."""
    close = _close(bars)
    upper, _middle, lower = talib.BBANDS(close, timeperiod=timeperiod, nbdevup=nbdev, nbdevdn=nbdev)
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(width > 0, (close - lower) / width, np.nan)


def _vwap(bars: pd.DataFrame, *, timeperiod: int) -> np.ndarray:
    """The volume-weighted average close of the last `timeperiod` days."""
    close = _close(bars)
    volume = bars["Volume"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        volume_sum = pd.Series(volume).rolling(timeperiod).sum().to_numpy()
        price_volume = pd.Series(close * volume).rolling(timeperiod).sum().to_numpy()
        return np.where(volume_sum > 0, price_volume / volume_sum, np.nan)


def _rolling_mean(bars: pd.DataFrame, *, window: int) -> np.ndarray:
    return bars["Close"].rolling(window).mean().to_numpy()


def _zscore(bars: pd.DataFrame, *, window: int) -> np.ndarray:
    """(close - mean) / sample std over `window` days; 0 where the std is 0."""
    close = bars["Close"]
    mean = close.rolling(window).mean()
    std = close.rolling(window).std(ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        zscore = np.where(std > 0, (close - mean) / std, 0.0)
    return np.where(mean.isna(), np.nan, zscore)


def _regime(bars: pd.DataFrame, *, low: float, high: float) -> np.ndarray:
    """0 below `low`, 1 from `low` to `high`, 2 from `high` (a float, like the rest)."""
    values = _close(bars)
    return np.select([values < low, values < high], [0.0, 1.0], default=2.0)


def _percent_change(bars: pd.DataFrame, *, periods: int) -> np.ndarray:
    close = bars["Close"]
    return (close / close.shift(periods) - 1.0).to_numpy() * 100.0


def _window_lookback(params: Mapping[str, float]) -> int:
    return int(params.get("window", params.get("timeperiod", 1))) - 1


@dataclass(frozen=True)
class OwnFunction:
    """A feature function TA-Lib lacks: `compute(bars, **params)` gives one value per row of
    `bars` (Date and the input's columns); `lookback(params)` rows come before its first."""

    compute: Callable[..., np.ndarray]
    lookback: Callable[[Mapping[str, float]], int]


OWN_FUNCTIONS: dict[str, OwnFunction] = {
    "close": OwnFunction(_close, lambda p: 0),
    "percent_b": OwnFunction(_percent_b, _window_lookback),
    "vwap": OwnFunction(_vwap, _window_lookback),
    "rolling_mean": OwnFunction(_rolling_mean, _window_lookback),
    "percentile_rank": OwnFunction(
        lambda bars, *, window: _percentile_rank(_close(bars), window), _window_lookback
    ),
    "zscore": OwnFunction(_zscore, _window_lookback),
    "regime": OwnFunction(_regime, lambda p: 0),
    "percent_change": OwnFunction(_percent_change, lambda p: int(p["periods"])),
}

# A week has at most this many trading days: a weekly value needs that many rows per week.
_DAYS_PER_WEEK = 5


def talib_functions() -> frozenset[str]:
    """Every function name TA-Lib offers."""
    return frozenset(talib.get_functions())  # type: ignore[no-untyped-call]


def _talib(feature: Feature, bars: pd.DataFrame) -> np.ndarray:
    function = abstract.Function(feature.function)  # type: ignore[attr-defined]
    arrays = {c.lower(): bars[c].to_numpy(dtype="float64") for c in bars.columns if c != "Date"}
    result = function(arrays, **feature.params)
    if feature.output is None:
        return np.asarray(result)
    return np.asarray(result[function.output_names.index(feature.output)])


def _daily(feature: Feature, bars: pd.DataFrame) -> np.ndarray:
    own = OWN_FUNCTIONS.get(feature.function)
    if own is not None:
        return np.asarray(own.compute(bars, **feature.params))
    return _talib(feature, bars)


def compute_feature(feature: Feature, bars: pd.DataFrame) -> np.ndarray:
    """One feature's values, one per row of `bars` (Date and the input's columns, sorted)."""
    if feature.weekly:
        return weekly_to_daily(
            bars["Date"], bars["Close"], lambda c: _daily(feature, pd.DataFrame({"Close": c}))
        )
    return _daily(feature, bars)


def compute_tier(tier: str | FeatureTier, bars: pd.DataFrame) -> pd.DataFrame:
    """The features of a tier from validated bars of its input.

    Args:
        tier: a name in `finscale.tiers.TIERS`, or a tier.
        bars: `Date` and the columns of the tier's input (`INPUTS`), sorted by date.

    Returns:
        `Date` plus the tier's columns, one row per bar; warm-up rows hold NaN.
    """
    row = TIERS[tier] if isinstance(tier, str) else tier
    out = pd.DataFrame({"Date": bars["Date"].to_numpy()})
    for feature in row.features:
        out[feature.name] = np.asarray(compute_feature(feature, bars), dtype="float64")
    return out


def feature_lookback(feature: Feature) -> int:
    """Rows of history the feature reads before its first value."""
    own = OWN_FUNCTIONS.get(feature.function)
    if own is not None:
        rows = own.lookback(feature.params)
    else:
        function = abstract.Function(feature.function, **feature.params)  # type: ignore[attr-defined]
        rows = int(function.lookback)
    # A weekly value shows after its week: count whole weeks of the longest kind.
    return (rows + 1) * _DAYS_PER_WEEK if feature.weekly else rows


def tier_lookback(tier: str) -> int:
    """Rows the longest finite window of a tier reads before its first value; training windows
    keep this far from validation and test days (the default embargo)."""
    return max(feature_lookback(f) for f in TIERS[tier].features)


def lookback_rows(kind: str) -> int:
    """The lookback of a dataset kind: its longest tier's."""
    return max(tier_lookback(t) for t in DATASETS[kind].tiers)


def input_columns(name: str) -> tuple[str, ...]:
    """The price columns of an input series."""
    return INPUTS[name].columns
