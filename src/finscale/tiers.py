"""Feature tiers and the datasets made of them: the one table that the build, the renderer, the
CLI and the docs read. This module imports nothing heavy.

A feature is a row `Feature(name, function, params)`: a TA-Lib function (`DEMA`, `MACD`, …) or
one of our own (`finscale.data.features.OWN_FUNCTIONS`), with its parameters. A tier is a group
of features computed from one input series (`INPUTS`); a dataset kind is a row naming its tiers.
Adding a family or a period is one row here; `check_table` (run by a test) checks the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

OHLCV: tuple[str, ...] = ("Open", "High", "Low", "Close", "Volume")


@dataclass(frozen=True)
class Input:
    """A series a tier is computed from.

    Attributes:
        name: how tiers, `--input-csv NAME=FILE` and `load_inputs(input_csv=…)` call it.
        columns: the price columns the series has.
        label: how messages name it.
        symbol: its Yahoo Finance symbol; None for the ticker's own bars.
        sample: its file among the shipped sample's (`sources.SAMPLE_FILES`); None for the ticker.
        raw_name: its raw snapshot in the manifest; None for the ticker (`<TICKER>.ohlcv.daily`).
    """

    name: str
    columns: tuple[str, ...]
    label: str
    symbol: str | None = None
    sample: str | None = None
    raw_name: str | None = None

    @property
    def auxiliary(self) -> bool:
        """Not the ticker's own bars: an input a build may or may not have."""
        return self.symbol is not None


INPUTS: dict[str, Input] = {
    "ohlcv": Input("ohlcv", OHLCV, "the ticker"),
    "vix": Input("vix", ("Close",), "VIX", symbol="^VIX", sample="VIX", raw_name="VIX.close.daily"),
}


@dataclass(frozen=True)
class Feature:
    """One column: `function` (TA-Lib's, or ours) with `params`.

    Attributes:
        name: the column's name.
        function: a TA-Lib function name (upper case) or a key of `OWN_FUNCTIONS`.
        params: keyword arguments of the function.
        output: which output of a TA-Lib function with several (`MACD` → `macd`).
        weekly: computed on weekly closes and shown from the first day after the week ended.
        bounded: on a fixed scale (0..100, 0..1, ordinal codes): normalization leaves it alone.
    """

    name: str
    function: str
    params: Mapping[str, float] = field(default_factory=dict)
    output: str | None = None
    weekly: bool = False
    bounded: bool = False


@dataclass(frozen=True)
class FeatureTier:
    """A group of features computed from one input series."""

    name: str
    input: str
    features: tuple[Feature, ...]
    description: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """In the dataset's column order."""
        return tuple(f.name for f in self.features)

    @property
    def bounded(self) -> frozenset[str]:
        return frozenset(f.name for f in self.features if f.bounded)


_CLOSE_14 = {"timeperiod": 14}
# fastd uses TA-Lib's default simple moving average (matype 0), as the reference does.
_STOCHRSI = {"timeperiod": 14, "fastk_period": 5, "fastd_period": 3}

TIERS: dict[str, FeatureTier] = {
    "a20": FeatureTier(
        name="a20",
        input="ohlcv",
        description="20 TA-Lib indicators of the ticker (reference §1.3)",
        features=(
            Feature("dema_9", "DEMA", {"timeperiod": 9}),
            Feature("dema_10", "DEMA", {"timeperiod": 10}),
            Feature("sma_12", "SMA", {"timeperiod": 12}),
            Feature("dema_20", "DEMA", {"timeperiod": 20}),
            Feature("dema_25", "DEMA", {"timeperiod": 25}),
            Feature("sma_50", "SMA", {"timeperiod": 50}),
            Feature("dema_90", "DEMA", {"timeperiod": 90}),
            Feature("sma_100", "SMA", {"timeperiod": 100}),
            Feature("sma_200", "SMA", {"timeperiod": 200}),
            Feature("rsi_daily", "RSI", _CLOSE_14, bounded=True),
            Feature("rsi_weekly", "RSI", _CLOSE_14, weekly=True, bounded=True),
            Feature("stochrsi_daily", "STOCHRSI", _STOCHRSI, output="fastk", bounded=True),
            Feature(
                "stochrsi_weekly", "STOCHRSI", _STOCHRSI, output="fastk", weekly=True,
                bounded=True,
            ),
            Feature(
                "macd_line", "MACD", {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9},
                output="macd",
            ),
            Feature("obv", "OBV"),
            Feature("adosc", "ADOSC", {"fastperiod": 3, "slowperiod": 10}),
            Feature("atr_14", "ATR", _CLOSE_14),
            Feature("adx_14", "ADX", _CLOSE_14, bounded=True),
            Feature("bb_percent_b", "percent_b", {"timeperiod": 20, "nbdev": 2}, bounded=True),
            Feature("vwap_20", "vwap", {"timeperiod": 20}),
        ),
    ),
    "c": FeatureTier(
        name="c",
        input="vix",
        description="8 features of the VIX close (reference §1.4)",
        features=(
            Feature("vix_close", "close"),
            Feature("vix_sma_10", "rolling_mean", {"window": 10}),
            Feature("vix_sma_20", "rolling_mean", {"window": 20}),
            Feature("vix_percentile_60d", "percentile_rank", {"window": 60}, bounded=True),
            Feature("vix_zscore_20d", "zscore", {"window": 20}),
            Feature("vix_regime", "regime", {"low": 15, "high": 25}, bounded=True),
            Feature("vix_change_1d", "percent_change", {"periods": 1}),
            Feature("vix_change_5d", "percent_change", {"periods": 5}),
        ),
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
    def inputs(self) -> tuple[str, ...]:
        """The input series it reads, the ticker's first."""
        return tuple(dict.fromkeys(["ohlcv", *(TIERS[t].input for t in self.tiers)]))

    @property
    def auxiliary_inputs(self) -> tuple[str, ...]:
        """The inputs besides the ticker's bars (a build without them skips this kind)."""
        return tuple(i for i in self.inputs if INPUTS[i].auxiliary)

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


def input_names() -> str:
    """The auxiliary inputs a csv build can be given (`--input-csv NAME=FILE`)."""
    return ", ".join(f"{k}: {i.label}" for k, i in INPUTS.items() if i.auxiliary)


def check_table(own_functions: frozenset[str], talib_functions: frozenset[str]) -> list[str]:
    """What is wrong with the table (empty when nothing): duplicate names, a function neither
    TA-Lib nor ours has, an undeclared input or tier, a weekly feature off the ticker's bars.

    The function lists are arguments so that this module stays free of TA-Lib.
    """
    problems: list[str] = []
    columns = [*OHLCV, *(c for t in TIERS.values() for c in t.columns)]
    for name in sorted({c for c in columns if columns.count(c) > 1}):
        problems.append(f"column {name!r} appears more than once")
    for key, tier in TIERS.items():
        if key != tier.name:
            problems.append(f"tier {key!r} is named {tier.name!r}")
        if tier.input not in INPUTS:
            problems.append(f"tier {key!r}: input {tier.input!r} is not in INPUTS")
        for f in tier.features:
            if f.function not in own_functions and f.function not in talib_functions:
                problems.append(f"{f.name}: {f.function!r} is neither TA-Lib's nor ours")
            if f.function in own_functions and f.output is not None:
                problems.append(f"{f.name}: our functions have one output; drop output=")
            if f.weekly and "Close" not in INPUTS.get(tier.input, INPUTS["ohlcv"]).columns:
                problems.append(f"{f.name}: weekly features need a close")
    for key, inp in INPUTS.items():
        if key != inp.name:
            problems.append(f"input {key!r} is named {inp.name!r}")
    for key, kind in DATASETS.items():
        if key != kind.kind:
            problems.append(f"dataset kind {key!r} is named {kind.kind!r}")
        for t in kind.tiers:
            if t not in TIERS:
                problems.append(f"dataset kind {key!r}: tier {t!r} is not in TIERS")
    return problems
