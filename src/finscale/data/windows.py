"""Sliding windows over a dataset, and leak-free train / validation / test splits.

A window starting at row s reads the features of rows s .. s+L-1 (L = context length) and is
labelled from the prices of rows s+L .. s+L+h-1 (h = horizon): its *span* is the L+h rows
s .. s+L+h-1. The windows are identified by their start rows; nothing is copied per window.

Splits assign windows to regions of consecutive rows:

- a validation or test window's whole span lies inside its region, and every such window is
  used (sliding, stride 1): a region of R rows yields R-L-h+1 windows;
- a training window's span touches no validation or test row, nor any of the `embargo_rows`
  rows after a region: indicators read that many rows of history, so a training window that
  starts sooner after a region would see its prices through them.

Too small a region is an error, not a warning: model selection on a few windows measures noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from finscale import defaults
from finscale.data.labels import Target, make_labels
from finscale.defaults import MIN_WINDOWS
from finscale.errors import DataError

MIN_VAL_WINDOWS = MIN_WINDOWS
MIN_TEST_WINDOWS = MIN_WINDOWS
MIN_TRAIN_WINDOWS = MIN_WINDOWS


@dataclass(frozen=True, eq=False)
class Windows:
    """Features of every row and the label of every window of one dataset."""

    features: np.ndarray  # (T, C) float32, rows in date order
    columns: tuple[str, ...]  # C feature names
    dates: np.ndarray  # (T,) datetime64[D]
    labels: np.ndarray  # (N,) float32, labels[s] = label of the window starting at row s
    context_length: int
    horizon: int

    @property
    def span(self) -> int:
        """Rows one window reads: context plus label days."""
        return self.context_length + self.horizon

    @property
    def n_windows(self) -> int:
        return len(self.labels)

    def gather(self, starts: np.ndarray) -> np.ndarray:
        """The contexts of the windows at `starts`: shape (len(starts), L, C)."""
        rows = starts[:, None] + np.arange(self.context_length)[None, :]
        return self.features[rows]


def make_windows(
    frame: pd.DataFrame,
    *,
    context_length: int,
    horizon: int,
    threshold: float,
    target: Target = "close",
    columns: list[str] | None = None,
) -> Windows:
    """Windows of a dataset frame.

    Args:
        frame: `Date`, `Close` (and `High` for `target="high"`) and the feature columns.
        context_length: rows of features a window reads (L).
        horizon: days after the context whose prices decide the label (h).
        threshold: the rise that makes a positive label (0.01 = 1 %).
        target: `close` or `high`, which future price must reach the level.
        columns: the feature columns (all but `Date` when omitted).

    Raises:
        DataError: a column is missing or the frame has fewer rows than one window's span.
    """
    if context_length < 1 or horizon < 1:
        raise ValueError(
            f"context_length and horizon must be positive, got {context_length}, {horizon}"
        )
    columns = columns if columns is not None else [c for c in frame.columns if c != "Date"]
    missing = [c for c in ("Date", "Close", *columns) if c not in frame.columns]
    if target == "high" and "High" not in frame.columns:
        missing.append("High")
    if missing:
        raise DataError(f"dataset: missing column(s) {', '.join(missing)}")
    span = context_length + horizon
    if len(frame) < span:
        raise DataError(
            f"dataset: {len(frame)} rows, fewer than one window of {span} "
            f"(context {context_length} + horizon {horizon})"
        )
    close = frame["Close"].to_numpy(dtype="float64")
    high = frame["High"].to_numpy(dtype="float64") if "High" in frame.columns else None
    day_labels = make_labels(close, high, horizon=horizon, threshold=threshold, target=target)
    # The window starting at s predicts from its last context row t = s + L - 1.
    labels = day_labels[context_length - 1 :]
    return Windows(
        features=frame[columns].to_numpy(dtype="float32"),
        columns=tuple(columns),
        dates=frame["Date"].to_numpy(dtype="datetime64[D]"),
        labels=np.ascontiguousarray(labels),
        context_length=context_length,
        horizon=horizon,
    )


@dataclass(frozen=True)
class Region:
    """A validation or test region: rows first..last, inclusive."""

    name: str  # "val" or "test"
    first: int
    last: int


@dataclass(frozen=True, eq=False)
class Splits:
    """Window starts of each split, sorted."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    regions: tuple[Region, ...]
    embargo_rows: int

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _snap(dates: np.ndarray, day: date, what: str) -> int:
    """Row of the first date on or after `day`."""
    row = int(np.searchsorted(dates, np.datetime64(day, "D"), side="left"))
    if row >= len(dates):
        raise DataError(f"{what} {day} is after the last date of the dataset ({dates[-1]})")
    return row


def _assign(
    windows: Windows,
    regions: list[Region],
    *,
    embargo_rows: int,
    min_windows: dict[str, int],
) -> Splits:
    span = windows.span
    n_rows = len(windows.features)
    by_name: dict[str, list[np.ndarray]] = {"val": [], "test": []}
    blocked = np.zeros(n_rows + 1, dtype="int64")
    for region in regions:
        by_name[region.name].append(np.arange(region.first, region.last - span + 2, dtype="int64"))
        blocked[region.first] += 1
        blocked[min(region.last + 1 + embargo_rows, n_rows)] -= 1
    # A training span [s, s+span) is clear when it holds no blocked row.
    blocked_rows = np.cumsum(blocked[:-1]) > 0
    touched = np.concatenate([[0], np.cumsum(blocked_rows)])
    starts = np.arange(windows.n_windows, dtype="int64")
    train = starts[touched[starts + span] - touched[starts] == 0]
    val = np.concatenate(by_name["val"]) if by_name["val"] else np.zeros(0, "int64")
    test = np.concatenate(by_name["test"]) if by_name["test"] else np.zeros(0, "int64")
    splits = Splits(
        train=train,
        val=np.sort(val),
        test=np.sort(test),
        regions=tuple(regions),
        embargo_rows=embargo_rows,
    )
    for name, count in splits.counts().items():
        wanted = min_windows.get(name, 0)
        if count < wanted:
            where = ", ".join(
                f"{windows.dates[r.first]}..{windows.dates[r.last]}"
                for r in regions
                if r.name == name
            )
            raise DataError(
                f"{name} split: {count} windows"
                + (f" in {where}" if where else "")
                + f" (span {span} = context {windows.context_length} + horizon {windows.horizon}), "
                f"fewer than the minimum of {wanted} (min_{name}_windows); "
                "widen the region or lower the minimum"
            )
    return splits


def split_chronological(
    windows: Windows,
    *,
    val_start: date,
    test_start: date | None = None,
    embargo_rows: int = 0,
    min_train_windows: int = MIN_TRAIN_WINDOWS,
    min_val_windows: int = MIN_VAL_WINDOWS,
    min_test_windows: int = MIN_TEST_WINDOWS,
) -> Splits:
    """Train before `val_start`, validation until `test_start`, test after.

    A date that is not a trading day stands for the first trading day on or after it.

    Args:
        windows: the windows to split.
        val_start: first day of the validation region.
        test_start: first day of the test region; none when omitted (validation runs to the end).
        embargo_rows: rows after each region that training spans avoid (see the module doc).
        min_train_windows: fewest training windows accepted.
        min_val_windows: fewest validation windows accepted.
        min_test_windows: fewest test windows accepted (when there is a test region).

    Raises:
        DataError: the dates are out of order or out of range, or a split is below its minimum.
    """
    dates = windows.dates
    v = _snap(dates, val_start, "val_start")
    last = len(dates) - 1
    regions = []
    if test_start is not None:
        if test_start <= val_start:
            raise DataError(f"test_start {test_start} must come after val_start {val_start}")
        t = _snap(dates, test_start, "test_start")
        regions = [Region("val", v, t - 1), Region("test", t, last)]
    else:
        regions = [Region("val", v, last)]
    minimums = {"train": min_train_windows, "val": min_val_windows}
    if test_start is not None:
        minimums["test"] = min_test_windows
    return _assign(windows, regions, embargo_rows=embargo_rows, min_windows=minimums)


def split_chunks(
    windows: Windows,
    *,
    n_blocks: int = defaults.N_BLOCKS,
    val_blocks: int = defaults.VAL_BLOCKS,
    test_blocks: int = defaults.TEST_BLOCKS,
    seed: int = defaults.SPLIT_SEED,
    embargo_rows: int = 0,
    min_train_windows: int = MIN_TRAIN_WINDOWS,
    min_val_windows: int = MIN_VAL_WINDOWS,
    min_test_windows: int = MIN_TEST_WINDOWS,
) -> Splits:
    """Cut the rows into `n_blocks` contiguous blocks of equal size and draw, with `seed`,
    `val_blocks` for validation and `test_blocks` for test; the rest is training.

    Neighbouring blocks of one split form one region, so windows may cross their border.
    Spreading validation over several periods keeps it from resting on one market regime.

    Raises:
        DataError: the block counts do not fit, or a split is below its minimum.
    """
    if n_blocks < 1 or val_blocks < 1 or test_blocks < 0 or val_blocks + test_blocks >= n_blocks:
        raise DataError(
            f"chunks: need 1 <= val_blocks and val_blocks + test_blocks < n_blocks, got "
            f"n_blocks={n_blocks}, val_blocks={val_blocks}, test_blocks={test_blocks}"
        )
    n_rows = len(windows.features)
    edges = np.linspace(0, n_rows, n_blocks + 1).round().astype(int)
    order = np.random.default_rng(seed).permutation(n_blocks)
    role = np.full(n_blocks, "train", dtype=object)
    role[order[:val_blocks]] = "val"
    role[order[val_blocks : val_blocks + test_blocks]] = "test"
    regions: list[Region] = []
    for block in range(n_blocks):
        if role[block] == "train":
            continue
        first, last = int(edges[block]), int(edges[block + 1]) - 1
        if regions and regions[-1].name == role[block] and regions[-1].last + 1 == first:
            regions[-1] = Region(role[block], regions[-1].first, last)
        else:
            regions.append(Region(str(role[block]), first, last))
    minimums = {"train": min_train_windows, "val": min_val_windows}
    if test_blocks:
        minimums["test"] = min_test_windows
    return _assign(windows, regions, embargo_rows=embargo_rows, min_windows=minimums)
