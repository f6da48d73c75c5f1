"""The feature table (finscale.tiers) and what follows from it: inputs, kinds, lookbacks."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from finscale.data import dataset_names, features, parse_input_csv
from finscale.data.inputs import build_kinds
from finscale.data.normalization import fit_normalization
from finscale.errors import DataError
from finscale.tier_check import check_table
from finscale.tiers import (
    BOUNDED_COLUMNS,
    DATASETS,
    INPUTS,
    OHLCV,
    SAMPLE_DATASETS,
    TIERS,
    Family,
    Feature,
    FeatureTier,
)


def _problems() -> list[str]:
    return check_table(frozenset(features.OWN_FUNCTIONS), features.talib_functions())


def test_the_table_is_valid() -> None:
    assert _problems() == []


def test_the_check_catches_a_bad_row(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = FeatureTier(
        "x",
        input="gold",
        rows=(
            Feature("sma_12", "SMA", {"timeperiod": 12}),
            Feature("y", "NO_SUCH"),
            Feature("z", "RSI", {"timeperiod": 9}, bounds=(0.0, 100.0)),
            Family("w", "RSI", ((9, 3),)),
            Family("v", "RSI", (9,)),
        ),
    )
    monkeypatch.setitem(TIERS, "x", bad)
    monkeypatch.setitem(TIERS, "a49", replace(TIERS["a50"], name="a49"))
    problems = _problems()
    assert "column 'sma_12' is defined two ways" in problems
    assert "tier 'x': input 'gold' is not in INPUTS" in problems
    assert "y: 'NO_SUCH' is neither TA-Lib's nor ours" in problems
    assert "z: bounds (0.0, 100.0) need bounded=True and low < high" in problems
    assert "family 'w' of x: period (9, 3) does not set ('timeperiod',)" in problems
    assert "v_9 computes what z does" in problems
    assert "tier 'a49' has 50 features: name it by that count" in problems


def test_a_kind_is_named_by_its_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DATASETS, "a56", replace(DATASETS["a55"], kind="a56"))
    assert "dataset kind 'a56': its columns name it 'a55'" in _problems()


def test_every_input_a_tier_reads_is_declared() -> None:
    assert {t.input for t in TIERS.values()} <= set(INPUTS)
    assert {i for d in DATASETS.values() for i in d.inputs} <= set(INPUTS)


def test_each_tier_holds_the_last_and_is_named_by_its_count() -> None:
    chain = ["a20", "a50", "a100", "a200"]
    for smaller, larger in itertools.pairwise(chain):
        small, large = TIERS[smaller].columns, TIERS[larger].columns
        assert large[: len(small)] == small
        assert TIERS[larger].features[: len(small)] == TIERS[smaller].features
    assert [len(TIERS[t].columns) for t in chain] == [20, 50, 100, 200]
    for kind, tier in (("a25", "a20"), ("a55", "a50"), ("a105", "a100"), ("a205", "a200")):
        assert DATASETS[kind].columns == OHLCV + TIERS[tier].columns
        assert DATASETS[kind].num_features == int(kind[1:])


def test_a_family_is_one_row_for_all_its_periods() -> None:
    row = Family("rsi", "RSI", (7, 21), bounds=(0.0, 100.0))
    assert [(f.name, dict(f.params), f.bounded) for f in row.features()] == [
        ("rsi_7", {"timeperiod": 7}, True),
        ("rsi_21", {"timeperiod": 21}, True),
    ]
    several = Family("ppo", "PPO", ((12, 26),), ("fastperiod", "slowperiod"), {"matype": 1})
    assert [(f.name, dict(f.params)) for f in several.features()] == [
        ("ppo_12_26", {"matype": 1, "fastperiod": 12, "slowperiod": 26})
    ]
    assert [f.name for f in Family("bop", "BOP").features()] == ["bop"]


def test_a_new_period_is_one_row(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import random_walk_bars

    tier = TIERS["a50"]
    longer = replace(tier, rows=(*tier.rows, Family("sma", "SMA", (300,))))
    monkeypatch.setitem(TIERS, "a50", longer)
    out = features.compute_tier("a50", random_walk_bars(400, seed=3))
    assert out.columns[-1] == "sma_300"
    assert out["sma_300"].iloc[:299].isna().all()
    assert features.lookback_rows("a55") == 299
    assert DATASETS["a55"].columns[-1] == "sma_300"
    # a function that depends on where the series starts is restarted: 200 rows, whatever the
    # period
    restarted = replace(tier, rows=(*tier.rows, Family("rsi", "RSI", (42,))))
    monkeypatch.setitem(TIERS, "a50", restarted)
    assert features.lookback_rows("a55") == 199


def test_which_functions_restart_is_measured_not_listed() -> None:
    def restarts(function: str, **params: float) -> bool:
        return features.restarts(Feature("f", function, params))

    # flagged by TA-Lib (EMA seeds, running totals), or found by measuring (built on EMAs)
    assert restarts("EMA", timeperiod=10) and restarts("OBV") and restarts("SAR")
    assert restarts("DEMA", timeperiod=10) and restarts("TRIX", timeperiod=15)
    assert restarts("PPO", fastperiod=12, slowperiod=26, matype=1)
    # windows of fixed length do not; nor the same oscillator on simple averages
    assert not restarts("SMA", timeperiod=10) and not restarts("WILLR", timeperiod=14)
    assert not restarts("PPO", fastperiod=12, slowperiod=26, matype=0)
    # a20 keeps the research system's whole-history values
    assert not any(features.restarts(f) for f in TIERS["a20"].features)


def test_every_kind_of_the_ticker_starts_where_a25_does() -> None:
    """Restarted functions read as far back as a20's longest window: every kind has a25's
    lookback, hence its rows, so kinds differ in their columns only."""
    ticker_kinds = [k for k, d in DATASETS.items() if not d.auxiliary_inputs]
    assert {k: features.lookback_rows(k) for k in ticker_kinds} == dict.fromkeys(ticker_kinds, 199)


def test_normalization_leaves_every_bounded_column_alone() -> None:
    columns = DATASETS["a205"].columns
    bounded = {f.name for f in TIERS["a200"].features if f.bounded}
    assert {"rsi_7", "willr_14", "ht_trendmode", "ultosc_7_14_28", "bop"} <= bounded
    assert bounded <= BOUNDED_COLUMNS
    rng = np.random.default_rng(0)
    values = rng.normal(50.0, 20.0, size=(300, len(columns)))
    norm = fit_normalization(values, columns, train_starts=np.arange(200), context_length=60)
    assert {c for c, s in zip(columns, norm.scaled, strict=True) if not s} == bounded


def test_input_csv_options_parse() -> None:
    assert parse_input_csv(["vix=v.csv"]) == {"vix": Path("v.csv")}
    for bad in (["vix"], ["gold=g.csv"], ["vix=a", "vix=b"], ["ohlcv=x.csv"]):
        with pytest.raises(DataError, match="--input-csv"):
            parse_input_csv(bad)


def test_the_kinds_follow_from_the_inputs_a_source_has() -> None:
    assert build_kinds("sample", None) == ("a25", "a25c")
    assert build_kinds("csv", None) == ("a25",)
    assert build_kinds("csv", None, {"vix": Path("v.csv")}) == ("a25", "a25c")
    with pytest.raises(DataError, match="a25c needs the VIX series: --input-csv vix=FILE"):
        build_kinds("csv", ["a25c"])
    with pytest.raises(DataError, match="unknown dataset kind"):
        build_kinds("sample", ["a99"])
    with pytest.raises(DataError, match="--input-csv is for the csv source"):
        build_kinds("sample", None, {"vix": Path("v.csv")})
    assert dataset_names("yfinance", None, kinds=["a25"]) == ["SPY.dataset.a25"]
    assert dataset_names("sample", None) == ["GSPC.dataset.a25", "GSPC.dataset.a25c"]


def test_the_larger_kinds_are_built_when_named() -> None:
    assert build_kinds("sample", ["a205", "a55"]) == ("a205", "a55")
    assert build_kinds("csv", ["a105"]) == ("a105",)
    assert dataset_names("yfinance", "QQQ", kinds=["a205"]) == ["QQQ.dataset.a205"]
    # the worker images hold what a default build makes
    assert {"GSPC.dataset.a25", "GSPC.dataset.a25c"} == SAMPLE_DATASETS
