"""The feature table (finscale.tiers) and what follows from it: inputs, kinds, lookbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from finscale.data import dataset_names, features, parse_input_csv
from finscale.data.inputs import build_kinds
from finscale.errors import DataError
from finscale.tiers import DATASETS, INPUTS, TIERS, Feature, FeatureTier, check_table


def _problems() -> list[str]:
    return check_table(frozenset(features.OWN_FUNCTIONS), features.talib_functions())


def test_the_table_is_valid() -> None:
    assert _problems() == []


def test_the_check_catches_a_bad_row(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = FeatureTier(
        "x",
        input="gold",
        features=(Feature("sma_12", "SMA", {"timeperiod": 12}), Feature("y", "NO_SUCH")),
    )
    monkeypatch.setitem(TIERS, "x", bad)
    problems = _problems()
    assert "column 'sma_12' appears more than once" in problems
    assert "tier 'x': input 'gold' is not in INPUTS" in problems
    assert "y: 'NO_SUCH' is neither TA-Lib's nor ours" in problems


def test_every_input_a_tier_reads_is_declared() -> None:
    assert {t.input for t in TIERS.values()} <= set(INPUTS)
    assert {i for d in DATASETS.values() for i in d.inputs} <= set(INPUTS)


def test_a_new_period_is_one_row(monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from tests.conftest import random_walk_bars

    tier = TIERS["a20"]
    longer = FeatureTier(
        "a20", "ohlcv", (*tier.features, Feature("sma_300", "SMA", {"timeperiod": 300}))
    )
    monkeypatch.setitem(TIERS, "a20", longer)
    out = features.compute_tier("a20", random_walk_bars(400, seed=3))
    assert isinstance(out, pd.DataFrame)
    assert out.columns[-1] == "sma_300"
    assert out["sma_300"].iloc[:299].isna().all()
    assert features.lookback_rows("a25") == 299
    assert DATASETS["a25"].columns[-1] == "sma_300"


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
