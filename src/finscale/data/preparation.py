"""From a dataset to what training reads: windows, a split, and normalized features."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

from finscale import defaults
from finscale.data.labels import Target
from finscale.data.normalization import Normalization, fit_normalization
from finscale.data.windows import (
    MIN_TEST_WINDOWS,
    MIN_TRAIN_WINDOWS,
    MIN_VAL_WINDOWS,
    Splits,
    Windows,
    make_windows,
    split_chronological,
    split_chunks,
)

SplitMode = Literal["chronological", "chunks"]


@dataclass(frozen=True)
class SplitSettings:
    """How to split windows (see `finscale.data.windows`)."""

    mode: SplitMode = "chronological"
    val_start: date | None = None  # chronological; default: the date at VAL_FRACTION of the rows
    test_start: date | None = None  # chronological; default: the date at TEST_FRACTION
    n_blocks: int = defaults.N_BLOCKS  # chunks
    val_blocks: int = defaults.VAL_BLOCKS  # chunks
    test_blocks: int = defaults.TEST_BLOCKS  # chunks
    seed: int = defaults.SPLIT_SEED  # chunks
    embargo_rows: int | None = None  # default: the dataset's feature lookback
    min_train_windows: int = MIN_TRAIN_WINDOWS
    min_val_windows: int = MIN_VAL_WINDOWS
    min_test_windows: int = MIN_TEST_WINDOWS


def default_split_dates(dates: pd.Series) -> tuple[date, date]:
    """Validation from `VAL_FRACTION` of the rows, test from `TEST_FRACTION`."""
    n = len(dates)
    return (
        pd.Timestamp(dates.iloc[int(n * defaults.VAL_FRACTION)]).date(),
        pd.Timestamp(dates.iloc[int(n * defaults.TEST_FRACTION)]).date(),
    )


def make_splits(windows: Windows, settings: SplitSettings, *, lookback_rows: int) -> Splits:
    """Split `windows` as `settings` say; the embargo defaults to `lookback_rows`.

    Raises:
        DataError: bad dates or block counts, or a split below its minimum.
    """
    embargo = lookback_rows if settings.embargo_rows is None else settings.embargo_rows
    minimums = {
        "min_train_windows": settings.min_train_windows,
        "min_val_windows": settings.min_val_windows,
        "min_test_windows": settings.min_test_windows,
    }
    if settings.mode == "chunks":
        return split_chunks(
            windows,
            n_blocks=settings.n_blocks,
            val_blocks=settings.val_blocks,
            test_blocks=settings.test_blocks,
            seed=settings.seed,
            embargo_rows=embargo,
            **minimums,
        )
    dates = pd.Series(windows.dates)
    default_val, default_test = default_split_dates(dates)
    val_start = settings.val_start or default_val
    test_start = settings.test_start
    if test_start is None and settings.val_start is None:
        test_start = default_test
    return split_chronological(
        windows, val_start=val_start, test_start=test_start, embargo_rows=embargo, **minimums
    )


@dataclass(frozen=True, eq=False)
class Prepared:
    """Windows, their split, and the features as the model reads them."""

    windows: Windows
    splits: Splits
    normalization: Normalization | None
    features: np.ndarray  # (T, C) float32, normalized when `normalization` is set


def prepare(
    frame: pd.DataFrame,
    *,
    context_length: int,
    horizon: int,
    threshold: float,
    target: Target = "close",
    split: SplitSettings | None = None,
    lookback_rows: int = 0,
    normalize: bool = True,
) -> Prepared:
    """Windows of `frame`, split, with z-score statistics fitted on the training rows.

    Args:
        frame: a dataset (`Date` and features, `Close` and `High` among them).
        context_length: rows a window reads.
        horizon: days whose prices decide the label; the same horizon makes the labels and
            the split's window span, so the two cannot disagree.
        threshold: rise that makes a positive label.
        target: `close` or `high`.
        split: how to split (chronological with the default dates when omitted).
        lookback_rows: the dataset's feature lookback, the default embargo.
        normalize: fit and apply z-score normalization (bounded oscillators are left alone).

    Raises:
        DataError: missing columns, too few rows, or a split below its minimum.
    """
    windows = make_windows(
        frame, context_length=context_length, horizon=horizon, threshold=threshold, target=target
    )
    splits = make_splits(windows, split or SplitSettings(), lookback_rows=lookback_rows)
    if not normalize:
        return Prepared(windows, splits, None, windows.features)
    norm = fit_normalization(
        windows.features, windows.columns, train_starts=splits.train, context_length=context_length
    )
    return Prepared(windows, splits, norm, norm.apply(windows.features))
