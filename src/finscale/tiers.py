"""Feature tiers and the datasets made of them: the one table that the build, the renderer and
the CLI read. This module imports nothing heavy.

A tier is a group of features computed from one kind of input; a dataset is a ticker's daily
bars (OHLCV) plus one or more tiers. Adding a tier means a row here, its computation in
`finscale.data.features`, and a dataset kind that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Input = Literal["ohlcv", "vix"]  # the ticker's daily bars, VIX closes

OHLCV: tuple[str, ...] = ("Open", "High", "Low", "Close", "Volume")


@dataclass(frozen=True)
class FeatureTier:
    """A group of features and what they need."""

    name: str
    columns: tuple[str, ...]  # in the dataset's column order
    inputs: tuple[Input, ...]
    # Rows of history the longest finite window reads before its first value; training windows
    # keep this far from validation and test days (the default embargo).
    lookback_rows: int
    # Columns on a fixed scale (0..100, 0..1, ordinal codes): normalization leaves them alone.
    bounded: frozenset[str] = frozenset()
    description: str = ""


TIERS: dict[str, FeatureTier] = {
    "a20": FeatureTier(
        name="a20",
        columns=(
            "dema_9", "dema_10", "sma_12", "dema_20", "dema_25", "sma_50", "dema_90", "sma_100",
            "sma_200", "rsi_daily", "rsi_weekly", "stochrsi_daily", "stochrsi_weekly",
            "macd_line", "obv", "adosc", "atr_14", "adx_14", "bb_percent_b", "vwap_20",
        ),
        inputs=("ohlcv",),
        lookback_rows=199,  # SMA-200
        bounded=frozenset(
            {"rsi_daily", "rsi_weekly", "stochrsi_daily", "stochrsi_weekly", "adx_14",
             "bb_percent_b"}
        ),
        description="20 TA-Lib indicators of the ticker (reference §1.3)",
    ),
    "c": FeatureTier(
        name="c",
        columns=(
            "vix_close", "vix_sma_10", "vix_sma_20", "vix_percentile_60d", "vix_zscore_20d",
            "vix_regime", "vix_change_1d", "vix_change_5d",
        ),
        inputs=("vix",),
        lookback_rows=59,  # the 60-value percentile
        bounded=frozenset({"vix_percentile_60d", "vix_regime"}),
        description="8 features of the VIX close (reference §1.4)",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class DatasetKind:
    """A dataset: the ticker's OHLCV and the features of some tiers (`<TICKER>.dataset.<kind>`)."""

    kind: str
    tiers: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return OHLCV + tuple(c for t in self.tiers for c in TIERS[t].columns)

    @property
    def num_features(self) -> int:
        return len(self.columns)

    @property
    def inputs(self) -> tuple[Input, ...]:
        return tuple(dict.fromkeys(i for t in self.tiers for i in TIERS[t].inputs))

    @property
    def lookback_rows(self) -> int:
        return max(TIERS[t].lookback_rows for t in self.tiers)

    def name(self, ticker: str) -> str:
        return f"{ticker}.dataset.{self.kind}"


DATASETS: dict[str, DatasetKind] = {
    "a25": DatasetKind("a25", ("a20",)),
    "a25c": DatasetKind("a25c", ("a20", "c")),
}

BOUNDED_COLUMNS: frozenset[str] = frozenset().union(*(t.bounded for t in TIERS.values()))

# The sample's ticker: its datasets are built into the worker images.
SAMPLE_TICKER = "GSPC"
SAMPLE_DATASETS: frozenset[str] = frozenset(d.name(SAMPLE_TICKER) for d in DATASETS.values())


def dataset_kind(name: str) -> DatasetKind:
    """The kind of a dataset name (`SPY.dataset.a25c` → a25c).

    Raises:
        ValueError: not `<TICKER>.dataset.<kind>` of a known kind.
    """
    _ticker, _, kind = name.partition(".dataset.")
    if kind not in DATASETS:
        raise ValueError(f"dataset {name!r}: expected <TICKER>.dataset.<{'|'.join(DATASETS)}>")
    return DATASETS[kind]


def features_help() -> str:
    """How many features per day each dataset kind has, for option help texts."""
    return ", ".join(f"{d.num_features} for {k}" for k, d in DATASETS.items())
