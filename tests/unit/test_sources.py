"""Every source goes through one validation; bad bars get an error naming file, row and column."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finscale.data import sources
from finscale.errors import DataError
from tests.conftest import SAMPLE_DIR

GOOD = """Date,Open,High,Low,Close,Volume
2020-01-02,10,11,9,10.5,100
2020-01-03,10.5,11.5,10,11,200
2020-01-06,11,12,10.5,11.5,300
"""


def _write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _edit(line: int, new: str) -> str:
    lines = GOOD.splitlines()
    lines[line] = new
    return "\n".join(lines) + "\n"


BAD_FILES = [
    pytest.param(
        GOOD.replace("Close,", "Last,").replace("Volume", "Volume"),
        r"bars\.csv: missing column\(s\) Close \(found: Date, Open, High, Low, Last, Volume\)",
        id="missing-column",
    ),
    pytest.param(
        _edit(2, "2020-01-02,10.5,11.5,10,11,200"),
        r"bars\.csv: column 'Date': 2020-01-02 appears more than once \(rows 1, 2\)",
        id="duplicate-date",
    ),
    pytest.param(
        _edit(2, "2020-01-03,10.5,11.5,10,,200"),
        r"bars\.csv: row 2 \(2020-01-03\), column 'Close': missing value",
        id="nan-close",
    ),
    pytest.param(
        _edit(2, "2020-01-03,10.5,11.5,10,NaN,200"),
        r"bars\.csv: row 2 \(2020-01-03\), column 'Close': missing value",
        id="nan-literal",
    ),
    pytest.param(
        _edit(3, "2020-01-06,11,9,10.5,11.5,300"),
        r"bars\.csv: row 3 \(2020-01-06\), column 'High': High 9\.0 is below Low 10\.5",
        id="high-below-low",
    ),
    pytest.param(
        _edit(3, "2020-01-06,11,11.2,10.5,11.5,300"),
        r"bars\.csv: row 3 \(2020-01-06\), column 'High': High 11\.2 is below Close 11\.5",
        id="high-below-close",
    ),
    pytest.param(
        _edit(3, "2020-01-06,11,12,11.2,11.5,300"),
        r"bars\.csv: row 3 \(2020-01-06\), column 'Low': Low 11\.2 is above Open 11\.0",
        id="low-above-open",
    ),
    pytest.param(
        _edit(1, "2020-01-07,10,11,9,10.5,100"),
        r"bars\.csv: row 2 \(2020-01-03\), column 'Date': comes before the previous row "
        r"\(2020-01-07\); sort the file by date",
        id="unsorted",
    ),
    pytest.param(
        _edit(2, "2020-01-03,-1,11.5,-2,11,200"),
        r"bars\.csv: row 2 \(2020-01-03\), column 'Open': price must be positive, got -1\.0",
        id="negative-price",
    ),
    pytest.param(
        _edit(2, "2020-01-03,10.5,11.5,10,11,-5"),
        r"bars\.csv: row 2 \(2020-01-03\), column 'Volume': negative \(-5\.0\)",
        id="negative-volume",
    ),
    pytest.param(
        _edit(2, "2020-13-45,10.5,11.5,10,11,200"),
        r"bars\.csv: row 2, column 'Date': not a date \('2020-13-45'\)",
        id="bad-date",
    ),
    pytest.param(
        _edit(2, "2020-01-03,10.5,11.5,10,eleven,200"),
        r"bars\.csv: row 2 \(2020-01-03\), column 'Close': not a finite number \('eleven'\)",
        id="text-price",
    ),
    pytest.param("Date,Open,High,Low,Close,Volume\n", r"bars\.csv: no rows", id="header-only"),
    pytest.param("", r"bars\.csv: the file is empty", id="empty-file"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_bars_get_an_error_naming_file_row_and_column(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=message):
        sources.read_csv_bars(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere\.csv: no such file"):
        sources.read_csv_bars(tmp_path / "nowhere.csv")


def test_volume_is_required_only_where_the_tier_needs_it(tmp_path: Path) -> None:
    closes = _write(tmp_path, "Date,Close\n2020-01-02,13.1\n2020-01-03,14.2\n")
    with pytest.raises(DataError, match=r"missing column\(s\) Open, High, Low, Volume"):
        sources.read_csv_bars(closes)
    bars = sources.read_csv_bars(closes, columns=sources.CLOSE_ONLY)
    assert list(bars.columns) == ["Date", "Close"]


def test_good_bars_come_back_typed_and_trimmed(tmp_path: Path) -> None:
    text = GOOD.replace("Date,Open,High,Low,Close,Volume", "date,OPEN,high,Low,close,volume")
    text = text.replace("\n2020", ",x\n2020").replace("volume\n", "volume,note\n", 1)
    bars = sources.read_csv_bars(_write(tmp_path, text))
    assert list(bars.columns) == ["Date", *sources.OHLCV]
    assert bars["Date"].dtype == "datetime64[ns]"
    assert all(bars[c].dtype == "float64" for c in sources.OHLCV)
    assert bars["Close"].tolist() == [10.5, 11.0, 11.5]


def test_a_file_with_close_and_adj_close_says_which_one_the_bars_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a Yahoo download: Close and Adj Close (a split and dividends apart),
    text = GOOD.replace("Close,Volume", "Close,Adj Close,Volume")
    text = text.replace(",10.5,100", ",10.5,5.25,100").replace(",11,200", ",11,5.5,200")
    path = _write(tmp_path, text.replace(",11.5,300", ",11.5,5.75,300"))
    # when it is read, the bars keep Close, on the scale of Open, High and Low,
    with caplog.at_level("INFO", logger="finscale.data.sources"):
        bars = sources.read_csv_bars(path)
    assert bars["Close"].tolist() == [10.5, 11.0, 11.5]
    # and one line names the file and the close it used (never silently):
    (line,) = caplog.messages
    assert line.startswith(f"{path}: has Close and Adj Close; the bars use Close")
    assert "Adj Close is not read" in line
    # a file with one close says nothing.
    caplog.clear()
    with caplog.at_level("INFO", logger="finscale.data.sources"):
        sources.read_csv_bars(_write(tmp_path, GOOD, "plain.csv"))
    assert caplog.messages == []


def test_bars_off_by_rounding_are_accepted() -> None:
    frame = pd.DataFrame(
        {
            "Date": ["2020-01-02"],
            "Open": [10.0],
            "High": [10.999999999],
            "Low": [9.0],
            "Close": [11.0],
            "Volume": [1.0],
        }
    )
    assert len(sources.validate_bars(frame, origin="x")) == 1


def _yahoo_answer(n: int = 300, *, seed: int = 1) -> pd.DataFrame:
    """What `yf.Ticker(...).history(period="max")` returns: a New York midnight index whose UTC
    offset changes with daylight saving, plus dividends and splits columns."""
    rng = np.random.default_rng(seed)
    index = pd.DatetimeIndex(pd.bdate_range("2019-01-02", periods=n), name="Date").tz_localize(
        "America/New_York"
    )
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(
        {
            "Open": close,
            "High": close * 1.01,
            "Low": close * 0.99,
            "Close": close,
            "Volume": rng.integers(1, 10**6, n),
            "Dividends": 0.0,
            "Stock Splits": 0.0,
        },
        index=index,
    )


def test_yahoo_dates_with_utc_offsets_become_exchange_dates() -> None:
    answer = _yahoo_answer()
    bars = sources.download_yfinance("SPY", history=lambda _t: answer)
    assert list(bars.columns) == ["Date", *sources.OHLCV]
    expected = answer.index.tz_localize(None).normalize()
    assert (bars["Date"].to_numpy() == expected.to_numpy()).all()
    assert (bars["Date"].dt.hour == 0).all()
    # Both offsets (-05:00 in winter, -04:00 in summer) were present and handled.
    assert {str(t.utcoffset()) for t in answer.index} == {"-1 day, 19:00:00", "-1 day, 20:00:00"}


def test_offset_dates_in_a_csv_merge_with_plain_dates(tmp_path: Path) -> None:
    text = (
        "Date,Open,High,Low,Close,Volume\n"
        "2020-03-06 00:00:00-05:00,10,11,9,10,1\n"
        "2020-03-09 00:00:00-04:00,10,11,9,10,1\n"
    )
    bars = sources.read_csv_bars(_write(tmp_path, text))
    plain = pd.DataFrame({"Date": pd.to_datetime(["2020-03-06", "2020-03-09"]), "x": [1, 2]})
    assert len(bars.merge(plain, on="Date")) == 2


def test_yahoo_download_retries_with_growing_jittered_waits() -> None:
    calls: list[str] = []
    waits: list[float] = []

    def flaky(ticker: str) -> pd.DataFrame:
        calls.append(ticker)
        if len(calls) < 3:
            raise ConnectionError("reset by peer")
        return _yahoo_answer()

    bars = sources.download_yfinance("SPY", history=flaky, sleep=waits.append)
    assert len(bars) == 300
    assert calls == ["SPY", "SPY", "SPY"]
    assert len(waits) == 2
    assert 1.0 <= waits[0] <= 1.5
    assert 2.0 <= waits[1] <= 3.0


def test_yahoo_download_gives_up_after_its_attempts() -> None:
    waits: list[float] = []

    def down(_ticker: str) -> pd.DataFrame:
        raise TimeoutError("timed out")

    with pytest.raises(
        DataError, match=r"yfinance:SPY: download failed after 4 attempts: timed out"
    ):
        sources.download_yfinance("SPY", history=down, sleep=waits.append)
    assert len(waits) == 3


def test_unknown_ticker_is_reported_without_retrying() -> None:
    calls: list[str] = []

    def empty(ticker: str) -> pd.DataFrame:
        calls.append(ticker)
        return pd.DataFrame(columns=["Open", "High", "Low", "Close", "Volume"])

    with pytest.raises(
        DataError, match=r"yfinance:NOPE: Yahoo returned no rows; is 'NOPE' a valid"
    ):
        sources.download_yfinance("NOPE", history=empty, sleep=lambda _s: None)
    assert calls == ["NOPE"]


def _sample_readme_rows() -> dict[str, tuple[int, str, str, str]]:
    """file → (rows, first, last, sha256) as the sample README states them."""
    text = (SAMPLE_DIR / "README.md").read_text()
    rows = re.findall(
        r"^\| `(\w+\.csv\.gz)` \| [^|]+ \| ([\d,]+) \| "
        r"(\d{4}-\d\d-\d\d) \| (\d{4}-\d\d-\d\d) \| `([0-9a-f]{64})` \|",
        text,
        flags=re.MULTILINE,
    )
    return {name: (int(n.replace(",", "")), a, b, sha) for name, n, a, b, sha in rows}


def test_sample_readme_lists_every_shipped_file() -> None:
    assert set(_sample_readme_rows()) == set(sources.SAMPLE_FILES.values())


@pytest.mark.parametrize("ticker", sorted(sources.SAMPLE_FILES))
def test_shipped_sample_matches_its_readme(ticker: str) -> None:
    file = sources.SAMPLE_FILES[ticker]
    rows, first, last, sha = _sample_readme_rows()[file]
    assert hashlib.sha256((SAMPLE_DIR / file).read_bytes()).hexdigest() == sha
    bars = sources.sample_bars(SAMPLE_DIR, ticker)
    assert len(bars) == rows
    assert str(bars["Date"].iloc[0].date()) == first
    assert str(bars["Date"].iloc[-1].date()) == last


def test_unknown_sample_ticker_is_refused() -> None:
    with pytest.raises(
        DataError, match=r"sample: unknown ticker 'SPY'; the sample has \['GSPC', 'IXIC', 'VIX'\]"
    ):
        sources.sample_bars(SAMPLE_DIR, "SPY")


def test_sample_dir_defaults_to_the_shipped_files() -> None:
    assert (sources.sample_dir() / "GSPC.csv.gz").is_file()
    assert sources.sample_dir(Path("/elsewhere")) == Path("/elsewhere")


IMPLAUSIBLE = [
    pytest.param(
        _edit(2, "2020-01-03,10.5,1e308,10,11,200"),
        {},
        r"bars\.csv: row 2 \(2020-01-03\), column 'High': 1e\+308 is 9\.52e\+306 times the "
        r"previous close 10\.5; beyond 10x",
        id="high-1e308",
    ),
    pytest.param(
        _edit(2, "2020-01-03,10.5,11.5,10,11,1e300"),
        {},
        r"bars\.csv: row 2 \(2020-01-03\), column 'Volume': 1e\+300 is above the ceiling of "
        r"1e\+13",
        id="volume-1e300",
    ),
    pytest.param(
        _edit(3, "2020-01-06,1100,1200,1050,1150,300"),
        {},
        r"row 3 \(2020-01-06\), column 'Open': 1100 is 100 times the previous close 11",
        id="whole-bar-100x",
    ),
    pytest.param(
        _edit(3, "2020-01-06,0.11,0.12,0.105,0.115,300"),
        {},
        r"row 3 \(2020-01-06\), column 'Open': 0\.11 is 0\.01 times the previous close 11",
        id="whole-bar-100x-down",
    ),
    pytest.param(
        _edit(1, "2020-01-02,10,110,9,10.5,100"),
        {},
        r"row 1 \(2020-01-02\), column 'High': 110 is 12\.2 times the day's Low 9; a range "
        r"beyond 10x",
        id="first-day-range",
    ),
    pytest.param(
        _edit(3, "2020-01-06,55,60,52.5,57.5,300"),
        {"max_jump": 3.0},
        r"row 3 \(2020-01-06\), column 'Open': 55 is 5 times the previous close 11; beyond 3x",
        id="tighter-bound",
    ),
]


@pytest.mark.parametrize(("text", "bounds", "message"), IMPLAUSIBLE)
def test_finite_but_absurd_bars_are_refused(
    tmp_path: Path, text: str, bounds: dict[str, float], message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=message):
        sources.read_csv_bars(path, bounds=sources.Plausibility(**bounds))


def test_plausibility_bounds_widen_for_instruments_that_need_them(tmp_path: Path) -> None:
    # A 20:1 split in unadjusted prices is real: a wider jump bound accepts it.
    path = _write(tmp_path, _edit(3, "2020-01-06,0.55,0.6,0.525,0.575,6000"))
    with pytest.raises(DataError, match="times the previous close"):
        sources.read_csv_bars(path)
    bars = sources.read_csv_bars(path, bounds=sources.Plausibility(max_jump=25))
    assert bars["Close"].iloc[-1] == 0.575


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"max_jump": 1.0}, r"max_jump=1\.0: expected a factor above 1"),
        ({"max_day_range": float("nan")}, r"max_day_range=nan"),
        ({"max_volume": 0.0}, r"max_volume=0\.0: expected a positive number"),
        ({"max_feature": float("inf")}, r"max_feature=inf"),
    ],
)
def test_plausibility_bounds_themselves_are_checked(bounds: dict[str, float], message: str) -> None:
    with pytest.raises(DataError, match=message):
        sources.Plausibility(**bounds)
