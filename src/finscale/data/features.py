"""Technical indicators: tier `a20` (20 TA-Lib indicators of one ticker) and tier `c` (8 VIX
features).

Every feature at day t uses prices up to day t only. Weekly indicators are computed on weekly
bars and become visible on the first trading day after their week's last trading day, so a week
that starts on a holiday still gets last week's value (the research system read Monday's row,
lost those weeks, and showed each week's own close from its Monday on).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import talib

from finscale.tiers import TIERS

# The tiers' columns, bounded columns and lookbacks are in finscale.tiers, the one table.
A20_COLUMNS = TIERS["a20"].columns
VIX_COLUMNS = TIERS["c"].columns
A20_LOOKBACK_ROWS = TIERS["a20"].lookback_rows

_WEEK = "W-SUN"  # weeks run Monday..Sunday


def _stochrsi_fastk(close: np.ndarray) -> np.ndarray:
    # fastd uses TA-Lib's default simple moving average (matype 0), as the reference does.
    fastk, _fastd = talib.STOCHRSI(close, timeperiod=14, fastk_period=5, fastd_period=3)
    return np.asarray(fastk)


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


def compute_a20(bars: pd.DataFrame) -> pd.DataFrame:
    """The 20 indicators of tier a20 (reference §1.3) from validated daily OHLCV bars.

    Args:
        bars: `Date`, `Open`, `High`, `Low`, `Close`, `Volume`, sorted by date.

    Returns:
        `Date` plus the columns of `A20_COLUMNS`, one row per bar; warm-up rows hold NaN.
    """
    close = bars["Close"].to_numpy(dtype="float64")
    high = bars["High"].to_numpy(dtype="float64")
    low = bars["Low"].to_numpy(dtype="float64")
    volume = bars["Volume"].to_numpy(dtype="float64")

    macd_line, _signal, _hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    # Bands around TA-Lib's default simple moving average (matype 0).
    upper, _middle, lower = talib.BBANDS(close, timeperiod=20, nbdevup=2, nbdevdn=2)
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        percent_b = np.where(width > 0, (close - lower) / width, np.nan)
        volume_sum = pd.Series(volume).rolling(20).sum().to_numpy()
        price_volume = pd.Series(close * volume).rolling(20).sum().to_numpy()
        vwap = np.where(volume_sum > 0, price_volume / volume_sum, np.nan)

    columns = {
        "dema_9": talib.DEMA(close, timeperiod=9),
        "dema_10": talib.DEMA(close, timeperiod=10),
        "sma_12": talib.SMA(close, timeperiod=12),
        "dema_20": talib.DEMA(close, timeperiod=20),
        "dema_25": talib.DEMA(close, timeperiod=25),
        "sma_50": talib.SMA(close, timeperiod=50),
        "dema_90": talib.DEMA(close, timeperiod=90),
        "sma_100": talib.SMA(close, timeperiod=100),
        "sma_200": talib.SMA(close, timeperiod=200),
        "rsi_daily": talib.RSI(close, timeperiod=14),
        "rsi_weekly": weekly_to_daily(bars["Date"], bars["Close"], lambda c: talib.RSI(c, 14)),
        "stochrsi_daily": _stochrsi_fastk(close),
        "stochrsi_weekly": weekly_to_daily(bars["Date"], bars["Close"], _stochrsi_fastk),
        "macd_line": macd_line,
        "obv": talib.OBV(close, volume),
        "adosc": talib.ADOSC(high, low, close, volume, fastperiod=3, slowperiod=10),
        "atr_14": talib.ATR(high, low, close, timeperiod=14),
        "adx_14": talib.ADX(high, low, close, timeperiod=14),
        "bb_percent_b": percent_b,
        "vwap_20": vwap,
    }
    out = pd.DataFrame({"Date": bars["Date"].to_numpy()})
    for name in A20_COLUMNS:
        out[name] = np.asarray(columns[name], dtype="float64")
    return out


def _percentile_rank(values: np.ndarray, window: int) -> np.ndarray:
    """Share (0..100) of the previous window-1 values strictly below the current one."""
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        view = np.lib.stride_tricks.sliding_window_view(values, window)
        below = (view[:, :-1] < view[:, -1:]).sum(axis=1)
        out[window - 1 :] = 100.0 * below / (window - 1)
    return out


def compute_vix(vix: pd.DataFrame) -> pd.DataFrame:
    """The 8 VIX features of tier c (reference §1.4), all numeric.

    Args:
        vix: `Date` and `Close` of the VIX index, sorted by date.

    Returns:
        `Date` plus the columns of `VIX_COLUMNS`; rows before the first 60-day percentile hold
        NaN. `vix_regime` is 0 below 15, 1 from 15 to 25, 2 from 25 (as a float, like the rest).
    """
    close = vix["Close"].astype("float64")
    values = close.to_numpy()
    mean20 = close.rolling(20).mean()
    std20 = close.rolling(20).std(ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        zscore = np.where(std20 > 0, (close - mean20) / std20, 0.0)
    zscore = np.where(mean20.isna(), np.nan, zscore)
    out = pd.DataFrame({"Date": vix["Date"].to_numpy()})
    out["vix_close"] = values
    out["vix_sma_10"] = close.rolling(10).mean().to_numpy()
    out["vix_sma_20"] = mean20.to_numpy()
    out["vix_percentile_60d"] = _percentile_rank(values, 60)
    out["vix_zscore_20d"] = zscore
    out["vix_regime"] = np.select([values < 15, values < 25], [0.0, 1.0], default=2.0)
    out["vix_change_1d"] = (close / close.shift(1) - 1.0).to_numpy() * 100.0
    out["vix_change_5d"] = (close / close.shift(5) - 1.0).to_numpy() * 100.0
    return out
