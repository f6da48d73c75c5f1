"""What a dataset holds for training: windows per split and positive rates, per horizon."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from finscale import defaults
from finscale.data.dataset import Dataset
from finscale.data.labels import Target
from finscale.data.preparation import default_split_dates
from finscale.data.windows import (
    MIN_TEST_WINDOWS,
    MIN_TRAIN_WINDOWS,
    MIN_VAL_WINDOWS,
    Splits,
    make_windows,
    split_chronological,
    split_chunks,
)
from finscale.tiers import OHLCV, TIERS, dataset_kind


@dataclass(frozen=True)
class SplitSummary:
    """Windows of one dataset, horizon and split mode."""

    dataset: str
    mode: str  # "chronological" or "chunks"
    horizon: int
    train: int
    val: int
    test: int
    positive_rate: dict[str, float]  # per split
    settings: str  # the split settings, readable
    problem: str | None = None  # why this split is unusable with the default minimums


def _rates(labels: np.ndarray, splits: Splits) -> dict[str, float]:
    return {
        name: float(labels[starts].mean()) if len(starts) else float("nan")
        for name, starts in (("train", splits.train), ("val", splits.val), ("test", splits.test))
    }


def summarize_splits(
    dataset: Dataset,
    *,
    context_length: int = defaults.CONTEXT_LENGTH,
    horizons: tuple[int, ...] = (1, 3, 5),
    threshold: float = defaults.THRESHOLD,
    target: Target = "close",
    n_blocks: int = defaults.N_BLOCKS,
    val_blocks: int = defaults.VAL_BLOCKS,
    test_blocks: int = defaults.TEST_BLOCKS,
    seed: int = defaults.SPLIT_SEED,
) -> list[SplitSummary]:
    """Window counts and positive rates per split, for each horizon and both split modes.

    Chronological splits start validation at 70 % of the rows and test at 85 %; chunk splits
    use `n_blocks` blocks. Training windows keep the dataset's feature lookback away from
    validation and test rows. Minimums are not enforced here; a split below the default
    minimum says so in `problem`.
    """
    embargo = dataset.entry.lookback_rows
    val_start, test_start = default_split_dates(dataset.frame["Date"])
    no_minimum = {"min_train_windows": 0, "min_val_windows": 0, "min_test_windows": 0}
    minimum = {"train": MIN_TRAIN_WINDOWS, "val": MIN_VAL_WINDOWS, "test": MIN_TEST_WINDOWS}
    out = []
    for horizon in horizons:
        windows = make_windows(
            dataset.frame,
            context_length=context_length,
            horizon=horizon,
            threshold=threshold,
            target=target,
        )
        chronological = split_chronological(
            windows, val_start=val_start, test_start=test_start, embargo_rows=embargo, **no_minimum
        )
        chunks = split_chunks(
            windows,
            n_blocks=n_blocks,
            val_blocks=val_blocks,
            test_blocks=test_blocks,
            seed=seed,
            embargo_rows=embargo,
            **no_minimum,
        )
        described = {
            "chronological": (chronological, f"val from {val_start}, test from {test_start}"),
            "chunks": (
                chunks,
                f"{n_blocks} blocks: {val_blocks} val, {test_blocks} test, seed {seed}",
            ),
        }
        for mode, (splits, settings) in described.items():
            counts = splits.counts()
            short = [f"{k} {counts[k]} < {minimum[k]}" for k in counts if counts[k] < minimum[k]]
            out.append(
                SplitSummary(
                    dataset=dataset.name,
                    mode=mode,
                    horizon=horizon,
                    train=counts["train"],
                    val=counts["val"],
                    test=counts["test"],
                    positive_rate=_rates(windows.labels, splits),
                    settings=f"{settings}, embargo {embargo} rows",
                    problem=("below the default minimum: " + ", ".join(short)) if short else None,
                )
            )
    return out


def column_groups(name: str, columns: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """A dataset's columns (Date left out) by where they come from: OHLCV, then each tier of
    its kind, a larger tier by the columns it adds to the one it extends (`a50 adds`). A
    dataset whose columns are not its kind's is one group, `columns`."""
    columns = tuple(c for c in columns if c != "Date")
    try:
        kind = dataset_kind(name)
    except ValueError:
        return [("columns", columns)]
    if kind.columns != columns:
        return [("columns", columns)]
    groups: list[tuple[str, tuple[str, ...]]] = [("OHLCV", OHLCV)]
    for tier_name in kind.tiers:
        chain = [TIERS[tier_name]]
        while chain[0].extends is not None:
            chain.insert(0, chain[0].extends)
        for tier in chain:
            label = f"{tier.name} adds" if tier.extends is not None else tier.name
            groups.append((label, tuple(f.name for f in tier.added)))
    return groups
