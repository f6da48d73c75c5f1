"""Feature tiers and the datasets made of them: the one table that the build, the renderer, the
CLI and the docs read. This module imports nothing heavy.

A feature is a row `Feature(name, function, params)`: a TA-Lib function (`DEMA`, `MACD`, …) or
one of our own (`finscale.data.features.OWN_FUNCTIONS`), with its parameters. A `Family` row is
one function at several periods: it expands to one feature per period (`Family("rsi", "RSI",
(7, 21))` → `rsi_7`, `rsi_21`). A tier is a group of features computed from one input series
(`INPUTS`), named by its feature count (a20, a50, …); a larger tier extends a smaller one, so
a50 holds a20's features and 30 more. A dataset kind is a row naming its tiers, named by its
column count with OHLCV (a25 = OHLCV + a20). Adding a family or a period is one row here;
`check_table` (run by a test) checks the table.

Every value of day t is computed from days up to t. A function whose value also depends on
where the series starts (an EMA's seed, a running total: `finscale.data.features.restarts`
finds them by measuring) is restarted on the `HISTORY_ROWS` rows that end at each day, so its
lookback is finite and known; a20 keeps the whole-history values of the research system
(`whole_history`), so that its datasets stay as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

OHLCV: tuple[str, ...] = ("Open", "High", "Low", "Close", "Volume")

# A restarted function reads this many rows ending at each day: as far back as a20's longest
# window (sma_200), so every kind of the ticker starts on the same day.
HISTORY_ROWS = 200


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
        bounds: the range every value lies in, where there is one (a test checks it).
        whole_history: computed once over the whole series even where the value depends on
            where the series starts (a20, as the research system did); otherwise such a
            function is restarted on the `HISTORY_ROWS` rows ending at each day.
    """

    name: str
    function: str
    params: Mapping[str, float] = field(default_factory=dict)
    output: str | None = None
    weekly: bool = False
    bounded: bool = False
    bounds: tuple[float, float] | None = None
    whole_history: bool = False

    @property
    def definition(self) -> tuple[object, ...]:
        """What makes two rows the same column, whatever their names."""
        params = tuple(sorted(self.params.items()))
        return (self.function, params, self.output, self.weekly, self.whole_history)


Period = int | tuple[int, ...]


@dataclass(frozen=True)
class Family:
    """One function at several periods: a row that expands to one feature per period.

    Attributes:
        prefix: the columns are `<prefix>_<period>` (several period values joined by `_`), or
            `<prefix>` alone for a function without periods.
        function: as `Feature.function`.
        periods: the periods, each an int or, with several period parameters, a tuple.
        period: the parameter(s) a period sets, in the order of its values.
        params: the parameters every period shares.
        output: as `Feature.output`.
        bounds: the range of every value (oscillators on a fixed scale): the columns are bounded.
    """

    prefix: str
    function: str
    periods: tuple[Period, ...] = ()
    period: str | tuple[str, ...] = "timeperiod"
    params: Mapping[str, float] = field(default_factory=dict)
    output: str | None = None
    bounds: tuple[float, float] | None = None

    @property
    def period_params(self) -> tuple[str, ...]:
        return (self.period,) if isinstance(self.period, str) else self.period

    def features(self) -> tuple[Feature, ...]:
        """The rows it stands for, in the order of its periods."""
        if not self.periods:
            return (self._feature(self.prefix, {}),)
        out = []
        for period in self.periods:
            values = (period,) if isinstance(period, int) else period
            name = "_".join([self.prefix, *map(str, values)])
            out.append(self._feature(name, dict(zip(self.period_params, values, strict=False))))
        return tuple(out)

    def _feature(self, name: str, periods: Mapping[str, float]) -> Feature:
        return Feature(
            name,
            self.function,
            {**self.params, **periods},
            output=self.output,
            bounded=self.bounds is not None,
            bounds=self.bounds,
        )


Row = Feature | Family


@dataclass(frozen=True)
class FeatureTier:
    """A group of features computed from one input series: the features of the tier it
    extends, then its own rows expanded."""

    name: str
    input: str
    rows: tuple[Row, ...]
    description: str = ""
    extends: FeatureTier | None = None

    @cached_property
    def added(self) -> tuple[Feature, ...]:
        """The features of its own rows."""
        return tuple(
            f for r in self.rows for f in (r.features() if isinstance(r, Family) else (r,))
        )

    @cached_property
    def features(self) -> tuple[Feature, ...]:
        """Every feature, in the dataset's column order."""
        return (self.extends.features if self.extends else ()) + self.added

    @property
    def columns(self) -> tuple[str, ...]:
        """In the dataset's column order."""
        return tuple(f.name for f in self.features)

    @property
    def bounded(self) -> frozenset[str]:
        return frozenset(f.name for f in self.features if f.bounded)


def _whole_history(*features: Feature) -> tuple[Feature, ...]:
    return tuple(replace(f, whole_history=True) for f in features)


_CLOSE_14 = {"timeperiod": 14}
# fastd uses TA-Lib's default simple moving average (matype 0), as the reference does.
_STOCHRSI = {"timeperiod": 14, "fastk_period": 5, "fastd_period": 3}
_PERCENT = (0.0, 100.0)

_A20 = FeatureTier(
    name="a20",
    input="ohlcv",
    description="20 TA-Lib indicators of the ticker (reference §1.3)",
    rows=_whole_history(
        Feature("dema_9", "DEMA", {"timeperiod": 9}),
        Feature("dema_10", "DEMA", {"timeperiod": 10}),
        Feature("sma_12", "SMA", {"timeperiod": 12}),
        Feature("dema_20", "DEMA", {"timeperiod": 20}),
        Feature("dema_25", "DEMA", {"timeperiod": 25}),
        Feature("sma_50", "SMA", {"timeperiod": 50}),
        Feature("dema_90", "DEMA", {"timeperiod": 90}),
        Feature("sma_100", "SMA", {"timeperiod": 100}),
        Feature("sma_200", "SMA", {"timeperiod": 200}),
        Feature("rsi_daily", "RSI", _CLOSE_14, bounded=True, bounds=_PERCENT),
        Feature("rsi_weekly", "RSI", _CLOSE_14, weekly=True, bounded=True, bounds=_PERCENT),
        Feature(
            "stochrsi_daily", "STOCHRSI", _STOCHRSI, output="fastk", bounded=True,
            bounds=_PERCENT,
        ),
        Feature(
            "stochrsi_weekly", "STOCHRSI", _STOCHRSI, output="fastk", weekly=True,
            bounded=True, bounds=_PERCENT,
        ),
        Feature(
            "macd_line", "MACD", {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9},
            output="macd",
        ),
        Feature("obv", "OBV"),
        Feature("adosc", "ADOSC", {"fastperiod": 3, "slowperiod": 10}),
        Feature("atr_14", "ATR", _CLOSE_14),
        Feature("adx_14", "ADX", _CLOSE_14, bounded=True, bounds=_PERCENT),
        # Not within 0..1: the close leaves its bands. Bounded: it is on the bands' scale.
        Feature("bb_percent_b", "percent_b", {"timeperiod": 20, "nbdev": 2}, bounded=True),
        Feature("vwap_20", "vwap", {"timeperiod": 20}),
    ),
)  # fmt: skip

# Parameters that TA-Lib versions default differently are spelled out.
_SIGNED_PERCENT = (-100.0, 100.0)
_WILLR = (-100.0, 0.0)
_SINE = (-1.0, 1.0)
_FAST_SLOW = ("fastperiod", "slowperiod")
_MACD = ("fastperiod", "slowperiod", "signalperiod")
_STOCH = ("fastk_period", "slowk_period")
_STOCH_SMA = {"slowd_period": 3, "slowk_matype": 0, "slowd_matype": 0}
_STOCHF = ("fastk_period", "fastd_period")
_ULTOSC = ("timeperiod1", "timeperiod2", "timeperiod3")
_EMA = {"matype": 1}
_MAMA = {"fastlimit": 0.5, "slowlimit": 0.05}
_SAR = {"acceleration": 0.02, "maximum": 0.2}

_A50 = FeatureTier(
    name="a50",
    input="ohlcv",
    extends=_A20,
    description="averages, oscillators, momentum and volatility at common periods",
    rows=(
        Family("ema", "EMA", (5, 20, 50)),
        Family("wma", "WMA", (10, 30)),
        Family("rsi", "RSI", (7, 21), bounds=_PERCENT),
        Family("roc", "ROC", (5, 10, 20)),
        Family("mom", "MOM", (10,)),
        Family("willr", "WILLR", (14,), bounds=_WILLR),
        Family("cci", "CCI", (14, 20)),
        Family("stoch_k", "STOCH", ((5, 3),), _STOCH, _STOCH_SMA, "slowk", _PERCENT),
        Family("mfi", "MFI", (14,), bounds=_PERCENT),
        Family("cmo", "CMO", (14,), bounds=_SIGNED_PERCENT),
        Family("aroonosc", "AROONOSC", (14, 25), bounds=_SIGNED_PERCENT),
        Family("ppo", "PPO", ((12, 26),), _FAST_SLOW, _EMA),
        Family("macd_signal", "MACD", ((12, 26, 9),), _MACD, output="macdsignal"),
        Family("macd_hist", "MACD", ((12, 26, 9),), _MACD, output="macdhist"),
        Family("atr", "ATR", (5, 21)),
        Family("natr", "NATR", (14,)),
        Family("stddev", "STDDEV", (10, 20), params={"nbdev": 1.0}),
        Family("trange", "TRANGE"),
        Family("bop", "BOP", bounds=(-1.0, 1.0)),
        Family("ht_trendmode", "HT_TRENDMODE", bounds=(0.0, 1.0)),
    ),
)

_A100 = FeatureTier(
    name="a100",
    input="ohlcv",
    extends=_A50,
    description="more periods, trend strength, adaptive averages, the Hilbert transform",
    rows=(
        Family("sma", "SMA", (5, 20, 150)),
        Family("ema", "EMA", (10, 35)),
        Family("tema", "TEMA", (10, 20)),
        Family("kama", "KAMA", (10, 30)),
        Family("trima", "TRIMA", (20, 50)),
        Family("sar", "SAR", params=_SAR),
        Family("rsi", "RSI", (5, 28), bounds=_PERCENT),
        Family("roc", "ROC", (60, 120)),
        Family("mom", "MOM", (5, 20)),
        Family("willr", "WILLR", (7, 28), bounds=_WILLR),
        Family("cci", "CCI", (50,)),
        Family("stochf_k", "STOCHF", ((14, 3),), _STOCHF, {"fastd_matype": 0}, "fastk", _PERCENT),
        Family("adx", "ADX", (7, 21), bounds=_PERCENT),
        Family("plus_di", "PLUS_DI", (14,), bounds=_PERCENT),
        Family("minus_di", "MINUS_DI", (14,), bounds=_PERCENT),
        Family("ultosc", "ULTOSC", ((7, 14, 28),), _ULTOSC, bounds=_PERCENT),
        Family("apo", "APO", ((10, 30),), _FAST_SLOW, _EMA),
        Family("trix", "TRIX", (15,)),
        Family("mfi", "MFI", (7, 28), bounds=_PERCENT),
        Family("adosc", "ADOSC", ((5, 20),), _FAST_SLOW),
        Family("natr", "NATR", (7, 28)),
        Family("stddev", "STDDEV", (5, 50), params={"nbdev": 1.0}),
        Family("linearreg_slope", "LINEARREG_SLOPE", (14, 50)),
        Family("linearreg_angle", "LINEARREG_ANGLE", (14,), bounds=(-90.0, 90.0)),
        Family("ht_dcperiod", "HT_DCPERIOD"),
        Family("ht_dcphase", "HT_DCPHASE"),
        Family("ht_inphase", "HT_PHASOR", output="inphase"),
        Family("ht_quadrature", "HT_PHASOR", output="quadrature"),
        Family("ht_sine", "HT_SINE", output="sine", bounds=_SINE),
        Family("ht_leadsine", "HT_SINE", output="leadsine", bounds=_SINE),
        Family("ht_trendline", "HT_TRENDLINE"),
        Family("mama", "MAMA", params=_MAMA, output="mama"),
        Family("fama", "MAMA", params=_MAMA, output="fama"),
        Family("medprice", "MEDPRICE"),
        Family("typprice", "TYPPRICE"),
    ),
)

_A200 = FeatureTier(
    name="a200",
    input="ohlcv",
    extends=_A100,
    description="every family at more periods, regressions, ranges",
    rows=(
        Family("sma", "SMA", (10, 30, 75)),
        Family("ema", "EMA", (15, 30)),
        Family("wma", "WMA", (5, 20, 50, 100, 200)),
        Family("dema", "DEMA", (5, 15, 30)),
        Family("tema", "TEMA", (5, 30)),
        Family("trima", "TRIMA", (10, 100, 200)),
        Family("kama", "KAMA", (20,)),
        Family("t3", "T3", (5, 10), params={"vfactor": 0.7}),
        Family("midpoint", "MIDPOINT", (14, 50, 100)),
        Family("midprice", "MIDPRICE", (14, 50, 100)),
        Family("max", "MAX", (20, 50, 100)),
        Family("min", "MIN", (20, 50, 100)),
        Family("rsi", "RSI", (3, 10), bounds=_PERCENT),
        Family("stochrsi_k", "STOCHRSI", ((7, 5, 3),), ("timeperiod", *_STOCHF),
               {"fastd_matype": 0}, "fastk", _PERCENT),
        Family("roc", "ROC", (1, 2, 3, 40, 90)),
        Family("mom", "MOM", (1, 40, 60)),
        Family("willr", "WILLR", (3, 50, 100), bounds=_WILLR),
        Family("cci", "CCI", (7, 30, 100)),
        Family("stoch_k", "STOCH", ((14, 3), (21, 5)), _STOCH, _STOCH_SMA, "slowk", _PERCENT),
        Family("stochf_k", "STOCHF", ((5, 3),), _STOCHF, {"fastd_matype": 0}, "fastk", _PERCENT),
        Family("mfi", "MFI", (3, 50), bounds=_PERCENT),
        Family("cmo", "CMO", (7, 28), bounds=_SIGNED_PERCENT),
        Family("aroonosc", "AROONOSC", (7, 50, 100), bounds=_SIGNED_PERCENT),
        Family("aroon_up", "AROON", (25,), output="aroonup", bounds=_PERCENT),
        Family("aroon_down", "AROON", (25,), output="aroondown", bounds=_PERCENT),
        Family("ppo", "PPO", ((5, 35), (10, 50)), _FAST_SLOW, _EMA),
        Family("apo", "APO", ((12, 26),), _FAST_SLOW, _EMA),
        Family("macd_line", "MACD", ((5, 35, 5),), _MACD, output="macd"),
        Family("adx", "ADX", (10,), bounds=_PERCENT),
        Family("adxr", "ADXR", (14,), bounds=_PERCENT),
        Family("dx", "DX", (14,), bounds=_PERCENT),
        Family("plus_di", "PLUS_DI", (7, 28), bounds=_PERCENT),
        Family("minus_di", "MINUS_DI", (7, 28), bounds=_PERCENT),
        Family("plus_dm", "PLUS_DM", (14,)),
        Family("minus_dm", "MINUS_DM", (14,)),
        Family("ultosc", "ULTOSC", ((3, 7, 14), (14, 28, 56)), _ULTOSC, bounds=_PERCENT),
        Family("trix", "TRIX", (5, 30)),
        Family("adosc", "ADOSC", ((10, 30),), _FAST_SLOW),
        Family("atr", "ATR", (3, 10, 28)),
        Family("natr", "NATR", (5, 10, 21)),
        Family("stddev", "STDDEV", (3, 30, 100), params={"nbdev": 1.0}),
        Family("linearreg", "LINEARREG", (14, 50, 100)),
        Family("linearreg_slope", "LINEARREG_SLOPE", (5, 100)),
        Family("linearreg_angle", "LINEARREG_ANGLE", (50,), bounds=(-90.0, 90.0)),
        Family("linearreg_intercept", "LINEARREG_INTERCEPT", (14,)),
        Family("tsf", "TSF", (14, 50)),
        Family("avgprice", "AVGPRICE"),
        Family("wclprice", "WCLPRICE"),
    ),
)  # fmt: skip

TIERS: dict[str, FeatureTier] = {
    "a20": _A20,
    "a50": _A50,
    "a100": _A100,
    "a200": _A200,
    "c": FeatureTier(
        name="c",
        input="vix",
        description="8 features of the VIX close (reference §1.4)",
        rows=(
            Feature("vix_close", "close"),
            Feature("vix_sma_10", "rolling_mean", {"window": 10}),
            Feature("vix_sma_20", "rolling_mean", {"window": 20}),
            Feature(
                "vix_percentile_60d", "percentile_rank", {"window": 60}, bounded=True,
                bounds=_PERCENT,
            ),
            Feature("vix_zscore_20d", "zscore", {"window": 20}),
            Feature("vix_regime", "regime", {"low": 15, "high": 25}, bounded=True, bounds=(0, 2)),
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
    by_default: bool = True  # built when a build names no kind (the larger tiers are not)

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
    "a55": DatasetKind("a55", ("a50",), by_default=False),
    "a105": DatasetKind("a105", ("a100",), by_default=False),
    "a205": DatasetKind("a205", ("a200",), by_default=False),
}

BOUNDED_COLUMNS: frozenset[str] = frozenset().union(*(t.bounded for t in TIERS.values()))

# The sample's ticker: the datasets a build makes by default are built into the worker images.
SAMPLE_TICKER = "GSPC"
# The Yahoo Finance symbols of the sample's series (data/sample/README.md): what a download of
# the same market asks for, and what a sample build records as the symbol of its bars.
SAMPLE_SYMBOLS: dict[str, str] = {"GSPC": "^GSPC", "IXIC": "^IXIC", "VIX": "^VIX"}
SAMPLE_DATASETS: frozenset[str] = frozenset(
    d.name(SAMPLE_TICKER) for d in DATASETS.values() if d.by_default
)


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


def default_kinds() -> str:
    """The kinds a build makes when it names none (the sources without VIX skip a25c)."""
    return ", ".join(k for k, d in DATASETS.items() if d.by_default)


def input_names() -> str:
    """The auxiliary inputs a csv build can be given (`--input-csv NAME=FILE`)."""
    return ", ".join(f"{k}: {i.label}" for k, i in INPUTS.items() if i.auxiliary)
