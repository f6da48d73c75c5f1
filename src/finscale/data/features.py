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
from functools import cache

import numpy as np
import pandas as pd
import talib
from talib import abstract

from finscale.tiers import DATASETS, HISTORY_ROWS, INPUTS, TIERS, Feature, FeatureTier

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


Outputs = dict[str | None, np.ndarray]
"""A function's outputs by name; None names the first (the only one of most)."""


def _named(names: list[str], result: object) -> Outputs:
    arrays = list(result) if isinstance(result, list | tuple) else [result]
    out: Outputs = {n: np.asarray(a, dtype="float64") for n, a in zip(names, arrays, strict=True)}
    out[None] = out[names[0]]
    return out


def _talib_outputs(feature: Feature, bars: pd.DataFrame) -> Outputs:
    function = abstract.Function(feature.function)  # type: ignore[attr-defined]
    arrays = {c.lower(): bars[c].to_numpy(dtype="float64") for c in bars.columns if c != "Date"}
    return _named(list(function.output_names), function(arrays, **feature.params))


def _talib(feature: Feature, bars: pd.DataFrame) -> np.ndarray:
    """The function over the whole series."""
    return _talib_outputs(feature, bars)[feature.output]


def _restarted(feature: Feature, bars: pd.DataFrame) -> Outputs:
    """The function over the `HISTORY_ROWS` rows ending at each day, its last values: NaN
    until that much history exists, and the same whatever came before those rows."""
    info = abstract.Function(feature.function).info  # type: ignore[attr-defined]
    names = [n for v in info["input_names"].values() for n in ([v] if isinstance(v, str) else v)]
    columns = {c.lower(): c for c in bars.columns}
    arrays = [bars[columns[n]].to_numpy(dtype="float64") for n in names]
    function = getattr(talib, feature.function)
    out = np.full((len(info["output_names"]), len(bars)), np.nan)
    for end in range(HISTORY_ROWS, len(bars) + 1):
        result = function(*(a[end - HISTORY_ROWS : end] for a in arrays), **feature.params)
        for i, values in enumerate(result if isinstance(result, tuple) else (result,)):
            out[i, end - 1] = values[-1]
    return _named(list(info["output_names"]), tuple(out))


def _probe_bars(rows: int = 3 * HISTORY_ROWS) -> pd.DataFrame:
    """Fixed made-up bars for measuring how functions behave."""
    rng = np.random.default_rng(2024)
    close = 100.0 * np.exp(np.cumsum(0.04 * (rng.random(rows) - 0.5)))
    open_ = close * (1.0 + 0.01 * (rng.random(rows) - 0.5))
    high = np.maximum(open_, close) * (1.0 + 0.01 * rng.random(rows))
    low = np.minimum(open_, close) * (1.0 - 0.01 * rng.random(rows))
    volume = 1e6 * (1.0 + rng.random(rows))
    dates = pd.bdate_range("2000-01-03", periods=rows)
    return pd.DataFrame(
        {"Date": dates, "Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume}
    )


# TA-Lib's own word that a function's value depends on where the series starts.
_START_FLAGS = frozenset({"Function has an unstable period", "Output is path-dependent"})


@cache
def _depends_on_start(function: str, params: tuple[tuple[str, float], ...]) -> bool:
    info = abstract.Function(function).info  # type: ignore[attr-defined]
    if _START_FLAGS & set(info["function_flags"] or ()):
        return True
    # Not flagged, yet built on one that is (DEMA, MACD, TRIX, … on EMAs): measure.
    bars = _probe_bars()
    feature = Feature("probe", function, dict(params))
    lookback = _talib_lookback(feature)
    whole = _talib_outputs(feature, bars)
    for cut in (HISTORY_ROWS // 4, HISTORY_ROWS // 2, HISTORY_ROWS):
        later = _talib_outputs(feature, bars.iloc[cut:])
        for name in info["output_names"]:
            overlap, values = whole[name][cut + lookback :], later[name][lookback:]
            scale = max(float(np.nanstd(overlap)), float(np.nanmax(np.abs(overlap))) * 1e-6)
            if np.nanmax(np.abs(overlap - values)) > 1e-6 * scale:
                return True
    return False


def depends_on_start(feature: Feature) -> bool:
    """Whether the feature's function, run over a whole series, gives values beyond its
    lookback that change when the series starts later (an EMA's seed, a running total, a
    path-dependent stop): TA-Lib flags some, the others are found by measuring on made-up
    bars. Ours never do."""
    if feature.function in OWN_FUNCTIONS:
        return False
    return _depends_on_start(feature.function, tuple(sorted(feature.params.items())))


def restarts(feature: Feature) -> bool:
    """Whether the feature is computed on the `HISTORY_ROWS` rows ending at each day: its
    function depends on where the series starts, and the row does not keep the whole history."""
    return not feature.whole_history and depends_on_start(feature)


def _outputs(feature: Feature, bars: pd.DataFrame) -> Outputs:
    own = OWN_FUNCTIONS.get(feature.function)
    if own is not None:
        return {None: np.asarray(own.compute(bars, **feature.params), dtype="float64")}
    if restarts(feature):
        return _restarted(feature, bars)
    return _talib_outputs(feature, bars)


Memo = dict[tuple[object, ...], Outputs]
"""Outputs computed from one series, by function and parameters (`compute_tier(memo=…)`)."""


def compute_feature(feature: Feature, bars: pd.DataFrame, memo: Memo | None = None) -> np.ndarray:
    """One feature's values, one per row of `bars` (Date and the input's columns, sorted).

    `memo` keeps every output of each function computed from these `bars`, so that a
    function's other outputs, or the same feature in another tier, cost nothing.
    """
    if feature.weekly:
        return weekly_to_daily(
            bars["Date"],
            bars["Close"],
            lambda c: _outputs(feature, pd.DataFrame({"Close": c}))[feature.output],
        )
    memo = {} if memo is None else memo
    key = (feature.function, tuple(sorted(feature.params.items())), feature.whole_history)
    if key not in memo:
        memo[key] = _outputs(feature, bars)
    return memo[key][feature.output]


def compute_tier(
    tier: str | FeatureTier, bars: pd.DataFrame, memo: Memo | None = None
) -> pd.DataFrame:
    """The features of a tier from validated bars of its input.

    Args:
        tier: a name in `finscale.tiers.TIERS`, or a tier.
        bars: `Date` and the columns of the tier's input (`INPUTS`), sorted by date.
        memo: outputs already computed from these `bars` (see `compute_feature`); filled in.

    Returns:
        `Date` plus the tier's columns, one row per bar; warm-up rows hold NaN.
    """
    row = TIERS[tier] if isinstance(tier, str) else tier
    memo = {} if memo is None else memo
    columns = {f.name: compute_feature(f, bars, memo) for f in row.features}
    return pd.concat(
        [pd.DataFrame({"Date": bars["Date"].to_numpy()}), pd.DataFrame(columns)], axis=1
    )


def _talib_lookback(feature: Feature) -> int:
    function = abstract.Function(feature.function, **feature.params)  # type: ignore[attr-defined]
    return int(function.lookback)


def feature_lookback(feature: Feature) -> int:
    """Rows of history the feature reads before its first value: ours state theirs, TA-Lib's
    abstract API gives its functions', a restarted function reads `HISTORY_ROWS`."""
    own = OWN_FUNCTIONS.get(feature.function)
    if own is not None:
        rows = own.lookback(feature.params)
    elif restarts(feature):
        rows = HISTORY_ROWS - 1
    else:
        rows = _talib_lookback(feature)
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
