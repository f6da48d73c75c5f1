"""Indicator values against independent computations, and no look-ahead anywhere."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finscale.data import features
from finscale.tiers import TIERS

# --- independent reference implementations (plain numpy loops, written from the definitions) ---


def ema(x: np.ndarray, n: int, *, seed: str = "sma") -> np.ndarray:
    """EMA with alpha 2/(n+1), seeded with the mean of the first n values (TA-Lib's default)
    or with the first value."""
    out = np.full(len(x), np.nan)
    alpha = 2.0 / (n + 1)
    if seed == "sma":
        out[n - 1] = x[:n].mean()
        start = n
    else:
        out[0] = x[0]
        start = 1
    for i in range(start, len(x)):
        out[i] = alpha * x[i] + (1 - alpha) * out[i - 1]
    return out


def dema(x: np.ndarray, n: int) -> np.ndarray:
    e1 = ema(x, n)
    valid = ~np.isnan(e1)
    e2 = np.full(len(x), np.nan)
    e2[valid] = ema(e1[valid], n)
    return 2 * e1 - e2


def wilder_rsi(x: np.ndarray, n: int = 14) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) <= n:
        return out
    change = np.diff(x)
    gain, loss = np.clip(change, 0, None), np.clip(-change, 0, None)
    avg_gain, avg_loss = gain[:n].mean(), loss[:n].mean()
    out[n] = 100 * avg_gain / (avg_gain + avg_loss)
    for i in range(n + 1, len(x)):
        avg_gain = (avg_gain * (n - 1) + gain[i - 1]) / n
        avg_loss = (avg_loss * (n - 1) + loss[i - 1]) / n
        out[i] = 100 * avg_gain / (avg_gain + avg_loss)
    return out


def stoch_fastk(x: np.ndarray, n: int, *, fastd: int = 3) -> np.ndarray:
    """Fast %K over n values. TA-Lib emits %K only once fast %D (fastd values of %K) exists, so
    the first fastd-1 values are left out here too."""
    out = np.full(len(x), np.nan)
    for i in range(n - 1, len(x)):
        window = x[i - n + 1 : i + 1]
        if np.isnan(window).any():
            continue
        lo, hi = window.min(), window.max()
        out[i] = 0.0 if hi == lo else 100 * (x[i] - lo) / (hi - lo)
    first = np.flatnonzero(~np.isnan(out))
    out[first[: fastd - 1]] = np.nan
    return out


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    tr = np.maximum.reduce(
        [high[1:] - low[1:], np.abs(high[1:] - close[:-1]), np.abs(low[1:] - close[:-1])]
    )
    out = np.full(len(close), np.nan)
    avg = tr[:n].mean()
    out[n] = avg
    for i in range(n + 1, len(close)):
        avg = (avg * (n - 1) + tr[i - 1]) / n
        out[i] = avg
    return out


def obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    out = np.empty(len(close))
    out[0] = volume[0]
    for i in range(1, len(close)):
        sign = np.sign(close[i] - close[i - 1])
        out[i] = out[i - 1] + sign * volume[i]
    return out


def vwap(close: np.ndarray, volume: np.ndarray, n: int = 20) -> np.ndarray:
    out = np.full(len(close), np.nan)
    for i in range(n - 1, len(close)):
        c, v = close[i - n + 1 : i + 1], volume[i - n + 1 : i + 1]
        out[i] = (c * v).sum() / v.sum()
    return out


def adosc(high, low, close, volume, fast=3, slow=10) -> np.ndarray:  # type: ignore[no-untyped-def]
    mfm = np.where(high > low, ((close - low) - (high - close)) / (high - low), 0.0)
    ad = np.cumsum(mfm * volume)
    return ema(ad, fast, seed="first") - ema(ad, slow, seed="first")


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    from tests.conftest import random_walk_bars

    return random_walk_bars(700, seed=3)


@pytest.fixture(scope="module")
def a20(bars: pd.DataFrame) -> pd.DataFrame:
    return features.compute_tier("a20", bars)


def _assert_close_after(
    actual: pd.Series, expected: np.ndarray, *, start: int, rtol: float
) -> None:
    got = actual.to_numpy()[start:]
    want = expected[start:]
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-9)


def test_columns_are_the_reference_tier_in_order(a20: pd.DataFrame) -> None:
    assert list(a20.columns) == ["Date", *TIERS["a20"].columns]
    assert len(TIERS["a20"].columns) == 20


@pytest.mark.parametrize(
    ("column", "n"), [("sma_12", 12), ("sma_50", 50), ("sma_100", 100), ("sma_200", 200)]
)
def test_sma(a20: pd.DataFrame, bars: pd.DataFrame, column: str, n: int) -> None:
    expected = bars["Close"].rolling(n).mean().to_numpy()
    assert a20[column].iloc[: n - 1].isna().all()
    _assert_close_after(a20[column], expected, start=n - 1, rtol=1e-10)


@pytest.mark.parametrize(
    ("column", "n"),
    [("dema_9", 9), ("dema_10", 10), ("dema_20", 20), ("dema_25", 25), ("dema_90", 90)],
)
def test_dema(a20: pd.DataFrame, bars: pd.DataFrame, column: str, n: int) -> None:
    expected = dema(bars["Close"].to_numpy(), n)
    _assert_close_after(a20[column], expected, start=2 * (n - 1), rtol=1e-10)


def test_daily_rsi_is_wilders(a20: pd.DataFrame, bars: pd.DataFrame) -> None:
    _assert_close_after(a20["rsi_daily"], wilder_rsi(bars["Close"].to_numpy()), start=14, rtol=1e-9)


def test_daily_stochrsi_is_the_fast_k_of_rsi(a20: pd.DataFrame, bars: pd.DataFrame) -> None:
    expected = stoch_fastk(wilder_rsi(bars["Close"].to_numpy()), 5)
    assert a20["stochrsi_daily"].iloc[:20].isna().all()
    _assert_close_after(a20["stochrsi_daily"], expected, start=20, rtol=1e-8)


def test_macd_line_is_the_difference_of_two_emas(a20: pd.DataFrame, bars: pd.DataFrame) -> None:
    close = bars["Close"].to_numpy()
    expected = ema(close, 12) - ema(close, 26)
    # Seeds differ (TA-Lib aligns both EMAs at the slow one's start); they fade out.
    _assert_close_after(a20["macd_line"], expected, start=200, rtol=1e-6)


def test_obv(a20: pd.DataFrame, bars: pd.DataFrame) -> None:
    expected = obv(bars["Close"].to_numpy(), bars["Volume"].to_numpy())
    _assert_close_after(a20["obv"], expected, start=0, rtol=1e-12)


def test_adosc(a20: pd.DataFrame, bars: pd.DataFrame) -> None:
    expected = adosc(*(bars[c].to_numpy() for c in ("High", "Low", "Close", "Volume")))
    _assert_close_after(a20["adosc"], expected, start=100, rtol=1e-6)


def test_atr_is_wilders(a20: pd.DataFrame, bars: pd.DataFrame) -> None:
    expected = wilder_atr(*(bars[c].to_numpy() for c in ("High", "Low", "Close")))
    _assert_close_after(a20["atr_14"], expected, start=14, rtol=1e-9)


def test_adx_is_bounded_and_tracks_trend(bars: pd.DataFrame) -> None:
    trending = bars.copy()
    ramp = np.linspace(100, 300, len(bars))
    trending["Close"] = ramp
    trending["Open"] = ramp * 0.999
    trending["High"] = ramp * 1.002
    trending["Low"] = ramp * 0.997
    adx_trend = features.compute_tier("a20", trending)["adx_14"].iloc[100:]
    adx_noise = features.compute_tier("a20", bars)["adx_14"].iloc[100:]
    assert adx_trend.between(0, 100).all() and adx_noise.between(0, 100).all()
    assert adx_trend.mean() > 90 > adx_noise.mean()


def test_bollinger_percent_b(a20: pd.DataFrame, bars: pd.DataFrame) -> None:
    close = bars["Close"]
    mean, std = close.rolling(20).mean(), close.rolling(20).std(ddof=0)
    lower, upper = mean - 2 * std, mean + 2 * std
    expected = ((close - lower) / (upper - lower)).to_numpy()
    _assert_close_after(a20["bb_percent_b"], expected, start=19, rtol=1e-8)


def test_vwap(a20: pd.DataFrame, bars: pd.DataFrame) -> None:
    expected = vwap(bars["Close"].to_numpy(), bars["Volume"].to_numpy())
    _assert_close_after(a20["vwap_20"], expected, start=19, rtol=1e-10)


def test_zero_volume_gives_no_vwap_instead_of_a_division_by_zero(bars: pd.DataFrame) -> None:
    quiet = bars.copy()
    quiet.loc[300:330, "Volume"] = 0.0
    out = features.compute_tier("a20", quiet)["vwap_20"]
    assert out.iloc[320:331].isna().all()
    assert np.isfinite(out.iloc[340])


# --- weekly indicators: computed on finished weeks, visible from the next trading day ---


def _reference_weekly(
    dates: pd.Series, close: pd.Series, indicator: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Group by ISO (year, week), take each week's last close, and give each day the value of
    the latest week whose last trading day came before that day."""
    iso = dates.dt.isocalendar()
    keys = list(zip(iso["year"], iso["week"], strict=True))
    weeks: dict[tuple[int, int], tuple[pd.Timestamp, float]] = {}
    for key, day, price in zip(keys, dates, close, strict=True):
        weeks[key] = (day, price)  # the last row of the week wins
    ordered = sorted(weeks.values())
    values = indicator(np.array([p for _d, p in ordered]))
    out = np.full(len(dates), np.nan)
    for i, day in enumerate(dates):
        finished = [j for j, (last, _p) in enumerate(ordered) if last < day]
        if finished:
            out[i] = values[finished[-1]]
    return out


def test_weekly_rsi_uses_only_finished_weeks(a20: pd.DataFrame, bars: pd.DataFrame) -> None:
    expected = _reference_weekly(bars["Date"], bars["Close"], wilder_rsi)
    got = a20["rsi_weekly"].to_numpy()
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], rtol=1e-9)


def test_weekly_stochrsi_uses_only_finished_weeks(a20: pd.DataFrame, bars: pd.DataFrame) -> None:
    expected = _reference_weekly(
        bars["Date"], bars["Close"], lambda c: stoch_fastk(wilder_rsi(c), 5)
    )
    got = a20["stochrsi_weekly"].to_numpy()
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    valid = ~np.isnan(expected)
    np.testing.assert_allclose(got[valid], expected[valid], rtol=1e-7)


def test_a_weeks_value_shows_from_the_next_week_on(bars: pd.DataFrame) -> None:
    """The research system showed a week's own RSI from its Monday on (look-ahead)."""
    fridays = np.flatnonzero(bars["Date"].dt.day_of_week.to_numpy() == 4)
    friday = int(fridays[60])
    bumped = bars.copy()
    bumped.loc[friday, ["Close", "High"]] *= 1.05
    before = features.compute_tier("a20", bars)
    after = features.compute_tier("a20", bumped)
    for column in ("rsi_weekly", "stochrsi_weekly"):
        # Monday..Friday of that week: unchanged, the week had not ended.
        assert (
            before[column].iloc[friday - 4 : friday + 1]
            == after[column].iloc[friday - 4 : friday + 1]
        ).all()
    # The next Monday sees the finished week, bump included.
    assert before["rsi_weekly"].iloc[friday + 1] != after["rsi_weekly"].iloc[friday + 1]


def test_week_starting_on_a_holiday_gets_last_weeks_value() -> None:
    from tests.conftest import random_walk_bars

    bars = random_walk_bars(400, seed=5)
    mondays = bars.index[bars["Date"].dt.day_of_week == 0]
    holiday = mondays[40]  # the Monday of some week after the warm-up
    bars = bars.drop(index=holiday).reset_index(drop=True)
    out = features.compute_tier("a20", bars)
    tuesday = int(np.flatnonzero(bars["Date"] == bars["Date"].iloc[holiday])[0])
    assert bars["Date"].iloc[tuesday].day_of_week == 1
    friday = tuesday - 1
    assert bars["Date"].iloc[friday].day_of_week == 4
    expected = _reference_weekly(bars["Date"], bars["Close"], wilder_rsi)
    # The Tuesday opening the holiday week shows the week that ended on the Friday before.
    assert out["rsi_weekly"].iloc[tuesday] == pytest.approx(expected[tuesday])
    assert out["rsi_weekly"].iloc[tuesday] != out["rsi_weekly"].iloc[friday]


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=30, max_value=599), seed=st.integers(0, 3))
def test_no_indicator_reads_a_later_day(cut: int, seed: int) -> None:
    """Every feature of day t is the same whether or not the days after t exist."""
    from tests.conftest import random_walk_bars

    full = random_walk_bars(600, seed=seed)
    whole = features.compute_tier("a20", full).drop(columns="Date").to_numpy()
    prefix = features.compute_tier("a20", full.iloc[: cut + 1]).drop(columns="Date").to_numpy()
    np.testing.assert_allclose(prefix, whole[: cut + 1], rtol=1e-12, atol=0, equal_nan=True)


# --- tier c: VIX ---


def _vix(closes: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"Date": pd.bdate_range("2020-01-01", periods=len(closes)), "Close": closes}
    )


def test_vix_percentile_counts_strictly_lower_previous_values() -> None:
    closes = [float(v) for v in range(1, 61)]  # rising: today beats all 59 previous values
    closes += [30.0]  # 29 of the previous 59 (2..60) are below 30
    out = features.compute_tier("c", _vix(closes))
    assert out["vix_percentile_60d"].iloc[:59].isna().all()
    assert out["vix_percentile_60d"].iloc[59] == pytest.approx(100.0)
    assert out["vix_percentile_60d"].iloc[60] == pytest.approx(100 * 28 / 59)
    ties = features.compute_tier("c", _vix([20.0] * 60))
    assert ties["vix_percentile_60d"].iloc[59] == 0.0


def test_vix_regime_codes_and_thresholds() -> None:
    out = features.compute_tier("c", _vix([14.99, 15.0, 24.99, 25.0, 80.0]))
    assert out["vix_regime"].tolist() == [0.0, 1.0, 1.0, 2.0, 2.0]
    assert out.drop(columns="Date").dtypes.map(pd.api.types.is_float_dtype).all()


def test_vix_zscore_and_changes() -> None:
    rng = np.random.default_rng(0)
    closes = list(15 + rng.random(80) * 10)
    out = features.compute_tier("c", _vix(closes))
    series = pd.Series(closes)
    expected = ((series - series.rolling(20).mean()) / series.rolling(20).std()).to_numpy()
    np.testing.assert_allclose(out["vix_zscore_20d"].iloc[19:], expected[19:], rtol=1e-10)
    assert out["vix_change_1d"].iloc[5] == pytest.approx((closes[5] / closes[4] - 1) * 100)
    assert out["vix_change_5d"].iloc[9] == pytest.approx((closes[9] / closes[4] - 1) * 100)
    assert out["vix_sma_10"].iloc[9] == pytest.approx(np.mean(closes[:10]))


def test_flat_vix_has_a_zero_zscore_not_nan() -> None:
    out = features.compute_tier("c", _vix([20.0] * 30))
    assert (out["vix_zscore_20d"].iloc[19:] == 0.0).all()
