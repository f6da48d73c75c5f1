"""Whether a series of valid bars is plausible market data as a whole: its dates (not from the
future, not before 1900, no months-long hole, weekends noted), its prices (they move, and stay
below a ceiling) and its volume (it trades).

Each finding names the origin, the rows and dates, the column and the value, and its real
cause: a constant price or a volume of zero would otherwise surface as features that cannot be
computed ("fewer rows than the indicators' warm-up") with overflow warnings. What is refused by
default but may be real (`sources.ALLOWABLE`) is accepted with `--allow NAME`, then warned of;
what is harmless in small doses (a few days without volume, bars on weekends) is warned of once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from finscale.data.sources import PRICES, Plausibility, _row
from finscale.errors import DataError

log = logging.getLogger(__name__)

# The first year accepted without `--allow old-dates`: earlier dates are most often a typo or a
# two-digit year read wrongly (`00-01-03` as 1900 or 0001).
FIRST_YEAR = 1900


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """The start and length of the longest run of True in `mask` ((0, 0) when none)."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if starts.size == 0:
        return 0, 0
    longest = int(np.argmax(ends - starts))
    return int(starts[longest]), int(ends[longest] - starts[longest])


def _refuse_or_warn(allowed: bool, name: str, message: str) -> None:
    if not allowed:
        raise DataError(f"{message} (--allow {name} if it is real)")
    log.warning("%s (accepted: --allow %s)", message, name)


def _check_dates(out: pd.DataFrame, origin: str, bounds: Plausibility) -> None:
    dates = out["Date"]
    tomorrow = pd.Timestamp.today().normalize() + pd.Timedelta(days=1)  # a market east of here
    future = np.flatnonzero((dates > tomorrow).to_numpy())
    if future.size:
        i = int(future[0])
        raise DataError(
            f"{origin}: {_row(out, i)}, column 'Date': {dates.iloc[i].date()} is in the future "
            f"(today is {pd.Timestamp.today().date()}; {future.size} such rows)"
        )
    old = np.flatnonzero((dates.dt.year < FIRST_YEAR).to_numpy())
    if old.size:
        i = int(old[0])
        _refuse_or_warn(
            "old-dates" in bounds.allow,
            "old-dates",
            f"{origin}: {_row(out, i)}, column 'Date': {dates.iloc[i].date()} is before "
            f"{FIRST_YEAR} ({old.size} such rows; a typo or a two-digit year?)",
        )
    days = np.diff(dates.to_numpy().astype("datetime64[D]").astype(np.int64))  # no overflow
    gaps = np.flatnonzero(days > bounds.max_gap_days)
    if gaps.size:
        i = int(gaps[np.argmax(days[gaps])])
        _refuse_or_warn(
            "gaps" in bounds.allow,
            "gaps",
            f"{origin}: rows {i + 1}-{i + 2}, column 'Date': {days[i]:.0f} calendar days pass "
            f"between {dates.iloc[i].date()} and {dates.iloc[i + 1].date()}, more than "
            f"{bounds.max_gap_days} ({gaps.size} such gaps): bars are missing, and windows "
            "across the gap would join two eras",
        )
    weekend = np.flatnonzero((dates.dt.day_of_week >= 5).to_numpy())
    if weekend.size:
        log.warning(
            "%s: %d of %d bars fall on a Saturday or Sunday (first: %s); a market open on "
            "weekends, or dates shifted by a time zone?",
            origin, weekend.size, len(out), _row(out, int(weekend[0])),
        )  # fmt: skip


def _check_prices(
    out: pd.DataFrame, origin: str, columns: Sequence[str], bounds: Plausibility
) -> None:
    for column in (c for c in PRICES if c in columns):
        value = out[column].to_numpy()
        above = np.flatnonzero(value > bounds.max_price)
        if above.size:
            i = int(above[0])
            raise DataError(
                f"{origin}: {_row(out, i)}, column '{column}': {value[i]:g} is above the price "
                f"ceiling of {bounds.max_price:g} (raise it with --max-price if it is real)"
            )
    close = out["Close"].to_numpy()
    start, length = _longest_run(np.concatenate([[False], close[1:] == close[:-1]]))
    rows = length + 1  # the run's first row sets the price the others repeat
    if length and rows >= bounds.max_still_rows:
        first, last = start - 1, start + length - 1
        _refuse_or_warn(
            "flat-prices" in bounds.allow,
            "flat-prices",
            f"{origin}: {_row(out, first)} to {_row(out, last)}, column 'Close': {close[first]:g} "
            f"on {rows} rows in a row ({bounds.max_still_rows} or more): a price that does not "
            "move is a stale or filled series (its volatility features go flat, then undefined)",
        )


def _check_volume(out: pd.DataFrame, origin: str, bounds: Plausibility) -> None:
    zero = out["Volume"].to_numpy() == 0
    if not zero.any():
        return
    start, length = _longest_run(zero)
    if length >= bounds.max_still_rows:
        _refuse_or_warn(
            "zero-volume" in bounds.allow,
            "zero-volume",
            f"{origin}: {_row(out, start)} to {_row(out, start + length - 1)}, column 'Volume': "
            f"0 on {length} rows in a row ({bounds.max_still_rows} or more; {int(zero.sum())} "
            f"of {len(out)} rows in all): no trading recorded, and the volume features cannot "
            "be computed",
        )
        return
    first = int(np.flatnonzero(zero)[0])
    log.warning(
        "%s: column 'Volume' is 0 on %d of %d rows (first: %s)",
        origin, int(zero.sum()), len(out), _row(out, first),
    )  # fmt: skip


def check_series(
    out: pd.DataFrame, origin: str, columns: Sequence[str], bounds: Plausibility
) -> None:
    """Check a validated series as a whole (see the module's text).

    Raises:
        DataError: a date in the future; a date before 1900, a gap longer than
            `bounds.max_gap_days`, a close unchanged or a volume of 0 for `max_still_rows`
            rows in a row, unless `bounds.allow` names them; a price above `max_price`.
    """
    _check_dates(out, origin, bounds)
    if "Close" in columns:
        _check_prices(out, origin, columns, bounds)
    if "Volume" in columns:
        _check_volume(out, origin, bounds)
