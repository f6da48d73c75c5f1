"""A series of valid bars that is not plausible market data is refused naming its real cause
(or, where it may be real, accepted with `--allow` and warned of); what is harmless in small
doses is warned of once, briefly. The shipped sample builds as it is."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pandas as pd
import pytest

from finscale.data import load_inputs
from finscale.data.sources import Plausibility, validate_bars
from finscale.errors import DataError

Bars = Callable[..., pd.DataFrame]


def _check(bars: pd.DataFrame, **bounds: object) -> pd.DataFrame:
    return validate_bars(bars, origin="bars.csv", bounds=Plausibility(**bounds))  # type: ignore[arg-type]


def _flat(bars: pd.DataFrame, start: int, rows: int) -> pd.DataFrame:
    """`rows` bars from `start` on that repeat the close of the bar at `start`."""
    out = bars.copy()
    price = out.loc[start, "Close"]
    for column in ("Open", "High", "Low", "Close"):
        out.loc[start : start + rows - 1, column] = price
    return out


def _dated(bars: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.DataFrame:
    return bars.iloc[: len(dates)].assign(Date=dates)


def test_an_unchanged_close_is_refused_from_the_tenth_row_on(make_bars: Bars) -> None:
    bars = make_bars(300)
    assert len(_check(_flat(bars, 100, 9))) == 300
    with pytest.raises(
        DataError,
        match=r"bars\.csv: row 101 \(2000-05-22\) to row 110 \(2000-06-02\), column 'Close': "
        r"[0-9.]+ on 10 rows in a row \(10 or more\): a price that does not move .* "
        r"\(--allow flat-prices if it is real\)",
    ):
        _check(_flat(bars, 100, 10))


def test_a_gap_of_more_than_thirty_days_is_refused(make_bars: Bars) -> None:
    month = pd.DatetimeIndex(["2000-01-03", "2000-02-02"])  # 30 days apart
    dates = month.append(pd.bdate_range("2000-02-03", periods=98))
    assert len(_check(_dated(make_bars(100), dates))) == 100
    later = dates[:1].append(dates[1:] + pd.Timedelta(days=1))
    with pytest.raises(DataError, match=r"rows 1-2, column 'Date': 31 calendar days pass"):
        _check(_dated(make_bars(100), later))


def test_dates_before_1900_are_refused_unless_allowed(
    make_bars: Bars, caplog: pytest.LogCaptureFixture
) -> None:
    bars = _dated(make_bars(100), pd.bdate_range("1899-12-01", periods=100))
    with pytest.raises(DataError, match=r"row 1 \(1899-12-01\), column 'Date': 1899-12-01 is "):
        _check(bars)
    with caplog.at_level(logging.WARNING):
        assert len(_check(bars, allow=frozenset({"old-dates"}))) == 100
    assert caplog.messages == [
        "bars.csv: row 1 (1899-12-01), column 'Date': 1899-12-01 is before 1900 (21 such rows; "
        "a typo or a two-digit year?) (accepted: --allow old-dates)"
    ]


def test_a_date_after_tomorrow_is_refused_and_none_can_allow_it(make_bars: Bars) -> None:
    today = pd.Timestamp.today().normalize()
    recent = pd.bdate_range(end=today, periods=100)
    assert len(_check(_dated(make_bars(100), recent))) == 100
    future = pd.bdate_range(start=today + pd.Timedelta(days=3), periods=100)
    with pytest.raises(DataError, match=r"row 1 \(.*\), column 'Date': .* is in the future"):
        _check(_dated(make_bars(100), future), allow=frozenset({"old-dates", "gaps"}))


def test_weekend_bars_and_a_few_days_without_volume_are_warned_of_once(
    make_bars: Bars, caplog: pytest.LogCaptureFixture
) -> None:
    bars = _dated(make_bars(120), pd.date_range("2000-01-03", periods=120, freq="D"))
    bars.loc[[10, 50], "Volume"] = 0.0
    with caplog.at_level(logging.WARNING):
        assert len(_check(bars)) == 120
    assert caplog.messages == [
        "bars.csv: 34 of 120 bars fall on a Saturday or Sunday (first: row 6 (2000-01-08)); a "
        "market open on weekends, or dates shifted by a time zone?",
        "bars.csv: column 'Volume' is 0 on 2 of 120 rows (first: row 11 (2000-01-13))",
    ]


def test_no_volume_for_ten_rows_is_refused(make_bars: Bars) -> None:
    bars = make_bars(300)
    bars.loc[100:109, "Volume"] = 0.0
    with pytest.raises(DataError, match=r"column 'Volume': 0 on 10 rows in a row"):
        _check(bars)
    assert len(_check(bars, allow=frozenset({"zero-volume"}))) == 300


def test_a_price_above_the_ceiling_is_refused_naming_row_and_value(make_bars: Bars) -> None:
    bars = make_bars(300)
    for column in ("Open", "High", "Low", "Close"):
        bars[column] = bars[column] * 1e300
    with pytest.raises(
        DataError, match=r"row 1 \(2000-01-03\), column 'Open': [0-9.]+e\+302 is above the price"
    ):
        _check(bars)
    assert len(_check(bars, max_price=1e305)) == 300


def test_the_shipped_sample_passes_with_one_brief_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        load_inputs("sample", ticker="GSPC")
        load_inputs("sample", ticker="IXIC")
    assert len(caplog.messages) == 1
    assert caplog.messages[0].endswith(
        "IXIC.csv.gz: column 'Volume' is 0 on 2 of 5031 rows (first: row 4115 (2015-05-12))"
    )


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"allow": frozenset({"weekends"})}, "--allow 'weekends': expected one of old-dates"),
        ({"max_gap_days": 1}, "max_gap_days=1: expected a count of 2 or more"),
        ({"max_price": float("nan")}, "max_price=nan: expected a positive number"),
    ],
)
def test_bad_bounds_are_refused(bounds: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        Plausibility(**bounds)  # type: ignore[arg-type]
