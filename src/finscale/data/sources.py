"""Daily bars from the three sources (shipped sample, a CSV file, Yahoo Finance), all validated
the same way.

Every source returns a frame with a `Date` column (midnight, sorted, unique) and the requested
price columns as float64, or raises `DataError` naming the origin, the row and the column. Nothing
here writes a file.
"""

from __future__ import annotations

import importlib.resources
import logging
import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from finscale.errors import DataError
from finscale.tiers import INPUTS

log = logging.getLogger(__name__)

OHLCV: tuple[str, ...] = ("Open", "High", "Low", "Close", "Volume")
CLOSE_ONLY: tuple[str, ...] = ("Close",)
PRICES: tuple[str, ...] = ("Open", "High", "Low", "Close")

SAMPLE_FILES = {"GSPC": "GSPC.csv.gz", "IXIC": "IXIC.csv.gz", "VIX": "VIX.csv.gz"}

# Adjusted prices are rounded by the vendor; a bar may then miss High >= Close by a hair.
_BAR_TOLERANCE = 1e-6

_MISSING_WORDS = frozenset({"nan", "na", "n/a", "null", "none", "-"})

_TRAILING_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


# What `finscale data build --allow NAME` accepts that is refused by default: dates before
# 1900, gaps longer than `max_gap_days`, prices or volumes that stay put for `max_still_rows`.
ALLOWABLE: tuple[str, ...] = ("old-dates", "gaps", "flat-prices", "zero-volume")


@dataclass(frozen=True)
class Plausibility:
    """Bounds beyond which a bar is a data error, not a market move. The defaults fit indices,
    ETFs and large stocks by a wide margin (the S&P 500's worst day moved 0.8x, its widest
    range was 1.1x, its highest volume 1.2e10); an instrument that needs wider bounds sets them
    (`finscale data build --max-jump 20 …`).

    Attributes:
        max_jump: a price may be at most this many times the previous close, or at least its
            1/max_jump (a 10:1 split in unadjusted data sits at the edge).
        max_day_range: a day's High may be at most this many times its Low.
        max_volume: the most shares a day may trade.
        max_feature: the largest magnitude a feature may reach after the build; beyond it the
            normalization's squares overflow and every trial ends with a NaN loss.
        max_price: the highest price a bar may have (1e308 overflows every indicator).
        max_gap_days: the most calendar days between two bars (a market closes for days, not
            months: a longer hole is missing data, and windows across it mix two eras).
        max_still_rows: the most rows in a row with an unchanged close, or with no volume
            (a stale or filled series; at 20 the volatility and volume features cannot be
            computed at all).
        allow: the checks of `ALLOWABLE` to accept instead of refusing (`--allow NAME`).
    """

    max_jump: float = 10.0
    max_day_range: float = 10.0
    max_volume: float = 1e13
    max_feature: float = 1e18
    max_price: float = 1e12
    max_gap_days: int = 30
    max_still_rows: int = 10
    allow: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("max_jump", "max_day_range"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 1):
                raise DataError(f"plausibility bound {name}={value!r}: expected a factor above 1")
        for name in ("max_volume", "max_feature", "max_price"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise DataError(f"plausibility bound {name}={value!r}: expected a positive number")
        for name in ("max_gap_days", "max_still_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise DataError(
                    f"plausibility bound {name}={value!r}: expected a count of 2 or more"
                )
        unknown = sorted(set(self.allow) - set(ALLOWABLE))
        if unknown:
            raise DataError(f"--allow {unknown[0]!r}: expected one of {', '.join(ALLOWABLE)}")


def _row(frame: pd.DataFrame, i: int) -> str:
    """'row 12 (2001-03-05)': 1-based data row, and its date where it parsed."""
    date = frame["Date"].iloc[i] if "Date" in frame else None
    when = f" ({pd.Timestamp(date).date()})" if isinstance(date, pd.Timestamp) else ""
    return f"row {i + 1}{when}"


def _canonical_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Accept `date`/`close`/… in any case, and a date index (Yahoo answers with one)."""
    has_date = "date" in {str(c).lower() for c in frame.columns}
    if not has_date and str(frame.index.name).lower() in {"date", "datetime"}:
        frame = frame.reset_index()
    rename = {}
    for column in frame.columns:
        for wanted in ("Date", *OHLCV):
            if str(column).strip().lower() == wanted.lower():
                rename[column] = wanted
        if str(column).strip().lower() == "datetime":
            rename[column] = "Date"
    return frame.rename(columns=rename)


def _parse_dates(values: pd.Series, origin: str) -> pd.Series:
    """Calendar dates at midnight, in the exchange's own time zone.

    Yahoo stamps a US session `00:00-05:00` (or `-04:00` in summer); converting that to UTC first
    and then dropping the zone once shifted dates and emptied every merge. The wall-clock date is
    what names the session, so a zone is dropped where it stands.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_localize(None)
    elif pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        text = values.astype("string").str.strip()
        try:
            parsed = pd.to_datetime(text, errors="coerce")
        except ValueError:  # several UTC offsets in one column (daylight saving)
            parsed = pd.to_datetime(
                text.str.replace(_TRAILING_OFFSET, "", regex=True), errors="coerce"
            )
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_localize(None)
        bad = parsed.isna() & values.notna()
        missing = values.isna()
        for mask, what in ((missing, "empty"), (bad, "not a date")):
            if mask.any():
                i = int(np.flatnonzero(mask.to_numpy())[0])
                raise DataError(
                    f"{origin}: row {i + 1}, column 'Date': {what} ({values.iloc[i]!r})"
                )
    normalized: pd.Series = parsed.dt.normalize().astype("datetime64[ns]")
    return normalized


def validate_bars(
    frame: pd.DataFrame,
    *,
    origin: str,
    columns: Sequence[str] = OHLCV,
    bounds: Plausibility | None = None,
) -> pd.DataFrame:
    """Check and normalize daily bars: the one gate every source goes through.

    Args:
        frame: bars with a `Date` column (or a date index) and at least `columns`; column names
            are matched case-insensitively and other columns are dropped.
        origin: where the bars came from (a file path, `yfinance:SPY`), for error messages.
        columns: the price columns that must be present (a feature tier names what it needs).
        bounds: what counts as plausible (default: `Plausibility()`).

    Returns:
        A new frame: `Date` (datetime64, midnight) then `columns` as float64, in date order.

    Raises:
        DataError: no rows; a missing column; an empty, unparsable, duplicate or out-of-order
            date; a missing, non-numeric or infinite value; a price that is not positive; a
            negative volume; a High below Open, Close or Low, or a Low above Open or Close;
            an implausible bar (see `Plausibility`): a volume above the ceiling, a price too many
            times the previous close, a High too many times the Low; an implausible series
            (`finscale.data.plausible`): a date in the future or before 1900, a gap of months,
            prices that do not move or no volume for many rows, a price above the ceiling.
    """
    frame = _canonical_columns(frame)
    if len(frame) == 0:
        raise DataError(f"{origin}: no rows")
    missing = [c for c in ("Date", *columns) if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(f"{origin}: missing column(s) {', '.join(missing)} (found: {found})")

    out = pd.DataFrame({"Date": _parse_dates(frame["Date"].reset_index(drop=True), origin)})
    for column in columns:
        raw = frame[column].reset_index(drop=True)
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = ~np.isfinite(values.to_numpy())
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            value = raw.iloc[i]
            if pd.isna(value) or str(value).strip().lower() in _MISSING_WORDS:
                what = "missing value"
            else:
                what = f"not a finite number ({value!r})"
            raise DataError(f"{origin}: {_row(out, i)}, column '{column}': {what}")
        out[column] = values

    dates = out["Date"]
    duplicated = dates.duplicated(keep=False).to_numpy()
    if duplicated.any():
        rows = np.flatnonzero(dates.to_numpy() == dates.to_numpy()[np.argmax(duplicated)])
        listed = ", ".join(str(r + 1) for r in rows)
        raise DataError(
            f"{origin}: column 'Date': {dates.iloc[rows[0]].date()} appears more than once "
            f"(rows {listed})"
        )
    stamps = dates.to_numpy()  # compared, not subtracted: 300 years of nanoseconds overflow
    backwards = np.flatnonzero(stamps[1:] < stamps[:-1])
    if backwards.size:
        i = int(backwards[0]) + 1
        raise DataError(
            f"{origin}: {_row(out, i)}, column 'Date': comes before the previous row "
            f"({dates.iloc[i - 1].date()}); sort the file by date"
        )

    for column in (c for c in PRICES if c in columns):
        bad = out[column].to_numpy() <= 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{origin}: {_row(out, i)}, column '{column}': price must be positive, "
                f"got {out[column].iloc[i]}"
            )
    if "Volume" in columns and (out["Volume"].to_numpy() < 0).any():
        i = int(np.flatnonzero(out["Volume"].to_numpy() < 0)[0])
        raise DataError(
            f"{origin}: {_row(out, i)}, column 'Volume': negative ({out['Volume'].iloc[i]})"
        )
    _check_bar_ranges(out, origin)
    _check_plausible(out, origin, columns, bounds or Plausibility())
    from finscale.data.plausible import check_series  # it reads this module's helpers

    check_series(out, origin, columns, bounds or Plausibility())
    return out


def _check_plausible(
    out: pd.DataFrame, origin: str, columns: Sequence[str], bounds: Plausibility
) -> None:
    """Finite but absurd values: each would pass the checks above and poison the features."""
    if "Volume" in columns:
        volume = out["Volume"].to_numpy()
        bad = volume > bounds.max_volume
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{origin}: {_row(out, i)}, column 'Volume': {volume[i]:g} is above the ceiling "
                f"of {bounds.max_volume:g} (raise it with --max-volume if it is real)"
            )
    if "Close" not in out:
        return
    close = out["Close"].to_numpy()
    previous = np.concatenate([[np.nan], close[:-1]])
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for column in (c for c in PRICES if c in columns):
            value = out[column].to_numpy()
            ratio = value / previous
            bad = (ratio > bounds.max_jump) | (ratio < 1 / bounds.max_jump)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{origin}: {_row(out, i)}, column '{column}': {value[i]:g} is {ratio[i]:.3g} "
                    f"times the previous close {previous[i]:g}; beyond {bounds.max_jump:g}x (or "
                    f"1/{bounds.max_jump:g}) is taken for a data error (--max-jump if it is real)"
                )
        if "High" in columns and "Low" in columns:
            high, low = out["High"].to_numpy(), out["Low"].to_numpy()
            ratio = high / low
            bad = ratio > bounds.max_day_range
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{origin}: {_row(out, i)}, column 'High': {high[i]:g} is {ratio[i]:.3g} "
                    f"times the day's Low {low[i]:g}; a range beyond {bounds.max_day_range:g}x "
                    "is taken for a data error (--max-day-range if it is real)"
                )


def _check_bar_ranges(out: pd.DataFrame, origin: str) -> None:
    """High is the bar's top and Low its bottom."""
    slack = 1.0 + _BAR_TOLERANCE
    pairs = [
        ("High", "Low"),
        ("High", "Open"),
        ("High", "Close"),
        ("Low", "Open"),
        ("Low", "Close"),
    ]
    for a, b in pairs:
        if a not in out or b not in out:
            continue
        edge, other = out[a].to_numpy(), out[b].to_numpy()
        bad = edge * slack < other if a == "High" else edge > other * slack
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            relation = "below" if a == "High" else "above"
            raise DataError(
                f"{origin}: {_row(out, i)}, column '{a}': "
                f"{a} {edge[i]} is {relation} {b} {other[i]}"
            )


def read_csv_bars(
    path: Path, *, columns: Sequence[str] = OHLCV, bounds: Plausibility | None = None
) -> pd.DataFrame:
    """Read and validate a CSV (optionally gzip-compressed) of daily bars.

    Raises:
        DataError: the file is missing, empty or unreadable, or its bars are invalid.
    """
    origin = str(path)
    if path.is_dir():
        raise DataError(f"{origin}: is a folder, not a CSV file")
    if not path.is_file():
        raise DataError(f"{origin}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise DataError(f"{origin}: the file is empty") from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError) as e:
        raise DataError(f"{origin}: not a readable CSV file ({e})") from e
    if "Close" in columns:
        say_which_close(list(frame.columns), origin)
    return validate_bars(frame, origin=origin, columns=columns, bounds=bounds)


def _plain_name(column: object) -> str:
    """`Adj Close`, `adj_close` and `AdjClose` alike: `adjclose`."""
    return re.sub(r"[^a-z]", "", str(column).lower())


def say_which_close(columns: Sequence[object], origin: str) -> None:
    """Log which close a file with both `Close` and `Adj Close` (a Yahoo download) trains on:
    `Close`, since a bar's Open, High, Low and Close must be on one scale and the file has no
    adjusted Open, High or Low to go with `Adj Close`. Where the file's Close is not adjusted
    for splits, a split shows in the bars as a jump (refused only beyond `--max-jump`)."""
    names = {_plain_name(c) for c in columns}
    if {"close", "adjclose"} <= names:
        log.info(
            "%s: has Close and Adj Close; the bars use Close, with Open, High and Low on its "
            "scale, and Adj Close is not read (for adjusted bars, scale Open, High, Low and "
            "Close by Adj Close / Close before the build, or build from --source yfinance)",
            origin,
        )


def read_snapshot(path: Path) -> pd.DataFrame:
    """The bars of a raw snapshot (parquet) an earlier build wrote, to be validated again.

    Raises:
        DataError: the file is not a readable parquet file.
    """
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:  # pyarrow's errors derive from both
        raise DataError(f"{path}: not a readable raw snapshot (parquet): {e}") from e


def sample_dir(override: Path | None = None) -> Path:
    """The folder of the shipped sample files: `override`, the copy inside an installed wheel,
    or the source tree's `data/sample`."""
    if override is not None:
        return override
    packaged = Path(str(importlib.resources.files("finscale"))) / "_sample"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "data" / "sample"


def sample_bars(
    directory: Path, ticker: str, *, bounds: Plausibility | None = None
) -> pd.DataFrame:
    """The shipped sample series `GSPC` (S&P 500 OHLCV), `IXIC` (NASDAQ Composite OHLCV) or `VIX`
    (closes only).

    Raises:
        DataError: an unknown sample ticker, or a sample file that is missing or invalid.
    """
    if ticker not in SAMPLE_FILES:
        raise DataError(f"sample: unknown ticker {ticker!r}; the sample has {sorted(SAMPLE_FILES)}")
    # An auxiliary series has the columns its input declares; the ticker's own, OHLCV.
    columns = next((i.columns for i in INPUTS.values() if i.sample == ticker), OHLCV)
    return read_csv_bars(directory / SAMPLE_FILES[ticker], columns=columns, bounds=bounds)


History = Callable[[str], pd.DataFrame]


def _yahoo_history(ticker: str) -> pd.DataFrame:
    try:
        import yfinance as yf
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise DataError(
            "the yfinance source needs the optional dependency: pip install 'finscale[yfinance]'"
        ) from None
    # auto_adjust: splits and dividends folded into OHLC, as the research system used them.
    frame: pd.DataFrame = yf.Ticker(ticker).history(period="max", auto_adjust=True)
    return frame


def download_yfinance(
    ticker: str,
    *,
    columns: Sequence[str] = OHLCV,
    history: History | None = None,
    attempts: int = 4,
    backoff_s: Sequence[float] = (1.0, 2.0, 4.0),
    sleep: Callable[[float], None] = time.sleep,
    bounds: Plausibility | None = None,
) -> pd.DataFrame:
    """Download a ticker's whole daily history from Yahoo Finance, with retries.

    Args:
        ticker: Yahoo's symbol (`SPY`, `^VIX`).
        columns: the price columns that must come back.
        history: the call that fetches a symbol's history; Yahoo's client when omitted (tests
            pass a function returning a frame shaped like Yahoo's answer).
        attempts: tries in all before giving up.
        backoff_s: waits between tries (the last one repeats), each plus up to 50 % jitter so
            that parallel downloads do not retry in step.
        sleep: how to wait (tests pass a recorder).
        bounds: what counts as a plausible bar.

    Raises:
        DataError: the ticker is unknown (Yahoo returns no rows), every attempt failed, or the
            bars are invalid.
    """
    fetch = history or _yahoo_history
    origin = f"yfinance:{ticker}"
    for attempt in range(1, attempts + 1):
        try:
            frame = fetch(ticker)
            break
        except DataError:
            raise
        except Exception as e:  # network, HTTP, JSON: Yahoo fails in many shapes
            if attempt == attempts:
                raise DataError(f"{origin}: download failed after {attempts} attempts: {e}") from e
            base = backoff_s[min(attempt - 1, len(backoff_s) - 1)]
            wait = base + random.uniform(0.0, 0.5 * base)
            log.warning(
                "%s: attempt %d/%d failed (%s); retrying in %.1fs",
                origin,
                attempt,
                attempts,
                e,
                wait,
            )
            sleep(wait)
    if frame is None or len(frame) == 0:
        raise DataError(f"{origin}: Yahoo returned no rows; is {ticker!r} a valid symbol?")
    return validate_bars(frame, origin=origin, columns=columns, bounds=bounds)
