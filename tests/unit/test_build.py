"""The sample builds end to end; builds are idempotent; bad input writes nothing; verify catches
tampering."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finscale import defaults
from finscale.data import build_datasets, load_dataset, load_inputs, read_manifest, verify_manifest
from finscale.data.inputs import ticker_name
from finscale.data.labels import make_labels
from finscale.data.manifest import sha256_file
from finscale.data.sources import OHLCV, Plausibility
from finscale.errors import DataError
from finscale.tiers import TIERS


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("data")
    build_datasets(load_inputs("sample"), data_dir=data_dir)
    return data_dir


def _files(data_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(data_dir)): p.read_bytes()
        for p in sorted(data_dir.rglob("*"))
        if p.is_file()
    }


def test_sample_builds_both_datasets_with_lineage(built: Path) -> None:
    manifest = read_manifest(built)
    assert manifest.names() == [
        "GSPC.ohlcv.daily",
        "VIX.close.daily",
        "GSPC.dataset.a25",
        "GSPC.dataset.a25c",
    ]
    a25 = load_dataset(built, "GSPC.dataset.a25")
    assert a25.feature_columns == [*OHLCV, *TIERS["a20"].columns]
    assert a25.entry.rows == len(a25.frame) == 5031 - 199
    assert str(a25.entry.start) == "1999-10-18" and str(a25.entry.end) == "2018-12-31"
    assert a25.entry.lookback_rows == 199
    assert [ref.name for ref in a25.entry.inputs] == ["GSPC.ohlcv.daily"]
    raw = manifest.latest("GSPC.ohlcv.daily")
    assert raw is not None and raw.inputs[0].origin == "sample:GSPC"
    assert a25.entry.inputs[0].sha256 == raw.sha256 == sha256_file(built / raw.path)

    a25c = load_dataset(built, "GSPC.dataset.a25c")
    assert a25c.feature_columns == [*OHLCV, *TIERS["a20"].columns, *TIERS["c"].columns]
    assert str(a25c.entry.start) == "2014-03-31"
    assert {ref.name for ref in a25c.entry.inputs} == {"GSPC.ohlcv.daily", "VIX.close.daily"}
    for dataset in (a25, a25c):
        values = dataset.frame.drop(columns="Date").to_numpy()
        assert np.isfinite(values).all()
        assert dataset.frame["Date"].is_monotonic_increasing and dataset.frame["Date"].is_unique


def test_the_nasdaq_sample_builds_a_second_market(tmp_path: Path) -> None:
    # The same days as the S&P 500, through the same validation; a livelier index, so more of
    # its days rise 1 % by the next close (19 % against the S&P 500's 14 %).
    build_datasets(load_inputs("sample", ticker="IXIC", kinds=["a25"]), data_dir=tmp_path)
    assert read_manifest(tmp_path).names() == ["IXIC.ohlcv.daily", "IXIC.dataset.a25"]
    a25 = load_dataset(tmp_path, "IXIC.dataset.a25")
    assert a25.entry.rows == len(a25.frame) == 5031 - 199
    assert str(a25.entry.start) == "1999-10-18" and str(a25.entry.end) == "2018-12-31"
    raw = read_manifest(tmp_path).latest("IXIC.ohlcv.daily")
    assert raw is not None and raw.inputs[0].origin == "sample:IXIC"
    assert np.isfinite(a25.frame.drop(columns="Date").to_numpy()).all()
    close = a25.frame["Close"].to_numpy()
    positive = make_labels(close, None, horizon=1, threshold=defaults.THRESHOLD).mean()
    assert 0.17 < positive < 0.21


def test_no_label_is_ever_a_dataset_column(built: Path) -> None:
    for name in ("GSPC.dataset.a25", "GSPC.dataset.a25c"):
        columns = load_dataset(built, name).feature_columns
        assert not [c for c in columns if "label" in c or "future" in c or "target" in c]


def test_rows_of_the_dataset_are_the_source_bars(built: Path) -> None:
    a25 = load_dataset(built, "GSPC.dataset.a25").frame
    raw = pd.read_csv(Path(__file__).parents[2] / "data/sample/GSPC.csv.gz", parse_dates=["Date"])
    joined = a25.merge(raw, on="Date", suffixes=("", "_raw"))
    assert len(joined) == len(a25)
    np.testing.assert_array_equal(joined["Close"], joined["Close_raw"])


def test_rebuilding_the_same_inputs_changes_nothing(tmp_path: Path) -> None:
    first = build_datasets(load_inputs("sample"), data_dir=tmp_path)
    before = _files(tmp_path)
    second = build_datasets(load_inputs("sample"), data_dir=tmp_path)
    assert [b.unchanged for b in first] == [False] * 4
    assert [b.unchanged for b in second] == [True] * 4
    assert [b.entry.sha256 for b in first] == [b.entry.sha256 for b in second]
    assert _files(tmp_path) == before


def test_a_changed_input_appends_and_keeps_the_old_version(
    tmp_path: Path, make_bars: Callable[..., pd.DataFrame]
) -> None:
    csv = tmp_path / "acme.csv"
    make_bars(400, seed=1).to_csv(csv, index=False)
    data_dir = tmp_path / "data"
    old = build_datasets(load_inputs("csv", ticker="acme", csv_path=csv), data_dir=data_dir)
    make_bars(420, seed=1).to_csv(csv, index=False)
    new = build_datasets(load_inputs("csv", ticker="acme", csv_path=csv), data_dir=data_dir)
    assert [b.entry.name for b in new] == ["ACME.ohlcv.daily", "ACME.dataset.a25"]
    old_sha, new_sha = old[1].entry.sha256, new[1].entry.sha256
    assert old_sha != new_sha
    assert load_dataset(data_dir, "ACME.dataset.a25").sha256 == new_sha
    pinned = load_dataset(data_dir, "ACME.dataset.a25", sha256=old_sha[:12])
    assert pinned.entry.rows == 400 - 199
    assert len(read_manifest(data_dir).entries) == 4
    assert verify_manifest(data_dir) == []


def _bad_csv(
    tmp_path: Path,
    make_bars: Callable[..., pd.DataFrame],
    breaker: Callable[[pd.DataFrame], pd.DataFrame],
) -> Path:
    path = tmp_path / "bad.csv"
    breaker(make_bars(400, seed=2)).to_csv(path, index=False)
    return path


BREAKERS = [
    pytest.param(
        lambda f: f.drop(columns="Volume"), r"missing column\(s\) Volume", id="missing-column"
    ),
    pytest.param(
        lambda f: pd.concat([f.iloc[:10], f.iloc[9:]]),
        r"appears more than once",
        id="duplicate-date",
    ),
    pytest.param(
        lambda f: f.assign(Close=f["Close"].where(f.index != 250)),
        r"row 251 \(\d{4}-\d\d-\d\d\), column 'Close': missing value",
        id="nan-close",
    ),
    pytest.param(
        lambda f: f.assign(High=f["High"].where(f.index != 3, 1.0)),
        r"row 4 .*column 'High': High 1\.0 is below Low",
        id="high-below-low",
    ),
    pytest.param(lambda f: f.iloc[::-1], r"row 2 .*comes before the previous row", id="unsorted"),
    pytest.param(lambda f: f.iloc[:0], r"no rows", id="empty"),
    pytest.param(
        lambda f: f.iloc[:150],
        r"no row has every feature; 150 rows are fewer than the indicators' warm-up",
        id="too-short",
    ),
    pytest.param(
        lambda f: f.assign(Volume=f["Volume"].where((f.index < 300) | (f.index > 330), 0.0)),
        r"row 301 \(.*\) to row 331 \(.*\), column 'Volume': 0 on 31 rows in a row",
        id="zero-volume-gap",
    ),
]


@pytest.mark.parametrize(("breaker", "message"), BREAKERS)
def test_bad_input_gets_a_clear_error_and_writes_nothing(
    tmp_path: Path,
    make_bars: Callable[..., pd.DataFrame],
    breaker: Callable[[pd.DataFrame], pd.DataFrame],
    message: str,
) -> None:
    data_dir = tmp_path / "data"
    build_datasets(load_inputs("sample", kinds=["a25"]), data_dir=data_dir)
    before = _files(data_dir)
    csv = _bad_csv(tmp_path, make_bars, breaker)
    with pytest.raises(DataError, match=message):
        build_datasets(load_inputs("csv", ticker="BAD", csv_path=csv), data_dir=data_dir)
    assert _files(data_dir) == before


def test_unknown_ticker_writes_nothing(tmp_path: Path) -> None:
    def empty(_ticker: str) -> pd.DataFrame:
        return pd.DataFrame()

    with pytest.raises(DataError, match=r"yfinance:ZZZZ: Yahoo returned no rows"):
        build_datasets(
            load_inputs("yfinance", ticker="ZZZZ", history=empty), data_dir=tmp_path / "data"
        )
    assert not (tmp_path / "data").exists()


def test_yfinance_build_snapshots_the_download(
    tmp_path: Path, make_bars: Callable[..., pd.DataFrame]
) -> None:
    """The yfinance path, with Yahoo's client replaced by Yahoo-shaped frames."""

    def yahoo(ticker: str) -> pd.DataFrame:
        bars = make_bars(450, seed=4 if ticker == "SPY" else 5).set_index("Date")
        bars.index = bars.index.tz_localize("America/New_York")
        if ticker == "^VIX":
            bars = bars.assign(Volume=0) / 5
        return bars.assign(Dividends=0.0)

    built = build_datasets(load_inputs("yfinance", history=yahoo), data_dir=tmp_path)
    names = [b.entry.name for b in built]
    assert names == ["SPY.ohlcv.daily", "VIX.close.daily", "SPY.dataset.a25", "SPY.dataset.a25c"]
    assert built[0].entry.inputs[0].origin.startswith("yfinance:SPY@")
    assert built[0].entry.columns == ["Date", *OHLCV]
    assert built[1].entry.columns == ["Date", "Close"]
    assert verify_manifest(tmp_path) == []


def test_vix_without_shared_dates_is_refused(
    tmp_path: Path, make_bars: Callable[..., pd.DataFrame]
) -> None:
    equity, vix = tmp_path / "e.csv", tmp_path / "v.csv"
    make_bars(400, seed=1, start="2000-01-03").to_csv(equity, index=False)
    make_bars(100, seed=1, start="2010-01-04")[["Date", "Close"]].to_csv(vix, index=False)
    inputs = load_inputs("csv", ticker="ACME", csv_path=equity, input_csv={"vix": vix})
    with pytest.raises(DataError, match=r"ACME\.dataset\.a25c: the ticker .* and VIX .* share"):
        build_datasets(inputs, data_dir=tmp_path / "data")


def test_verify_names_a_tampered_or_missing_file(tmp_path: Path) -> None:
    build_datasets(load_inputs("sample", kinds=["a25"]), data_dir=tmp_path)
    assert verify_manifest(tmp_path) == []
    entry = read_manifest(tmp_path).latest("GSPC.dataset.a25")
    assert entry is not None
    target = tmp_path / entry.path
    target.write_bytes(target.read_bytes() + b"\0")
    problems = verify_manifest(tmp_path)
    assert len(problems) == 1
    assert str(target) in problems[0] and "checksum mismatch for GSPC.dataset.a25" in problems[0]
    with pytest.raises(DataError, match=r"checksum mismatch for GSPC\.dataset\.a25"):
        load_dataset(tmp_path, "GSPC.dataset.a25")
    target.unlink()
    assert verify_manifest(tmp_path) == [f"{target}: missing (latest entry of GSPC.dataset.a25)"]


def test_verify_without_a_manifest_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"no data manifest; build data first \(finscale data build\)"
    ):
        verify_manifest(tmp_path)


def test_a_corrupt_manifest_is_named(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        json.dumps({"schema_version": 1, "entries": [{"name": 3}]})
    )
    with pytest.raises(
        DataError, match=r"manifest\.json: not a valid data manifest: entries\.0\.name"
    ):
        read_manifest(tmp_path)


def test_unknown_dataset_lists_the_known_ones(built: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"no dataset 'SPY\.dataset\.a25' "
        r"\(datasets: GSPC\.dataset\.a25, GSPC\.dataset\.a25c\)",
    ):
        load_dataset(built, "SPY.dataset.a25")


@pytest.mark.parametrize(("symbol", "name"), [("^VIX", "VIX"), ("spy", "SPY"), ("BRK.B", "BRK-B")])
def test_ticker_names_are_file_safe(symbol: str, name: str) -> None:
    assert ticker_name(symbol) == name


def test_a_ticker_with_a_path_in_it_is_refused() -> None:
    with pytest.raises(DataError, match=r"ticker '\.\./x'"):
        ticker_name("../x")


def test_built_files_are_readable_by_every_user_whatever_the_umask(tmp_path: Path) -> None:
    # given a strict umask, as in some build environments
    old = os.umask(0o077)
    try:
        # when a build writes the data directory
        build_datasets(load_inputs("sample", kinds=["a25"]), data_dir=tmp_path)
    finally:
        os.umask(old)
    # then the images' non-root user, who does not own the files, can read every one of them
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.json"} and len(files) == 3
    assert {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in files} == {
        str(p.relative_to(tmp_path)): 0o644 for p in files
    }
    folders = [p for p in tmp_path.rglob("*") if p.is_dir()]
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in folders} == {
        "raw": 0o755,
        "processed": 0o755,
    }


def test_a_feature_that_would_overflow_is_refused_and_nothing_is_written(
    tmp_path: Path, make_bars: Callable[..., pd.DataFrame]
) -> None:
    # Bounds opened wide let an absurd High through the source check; the build still refuses
    # the features it makes (ATR and its kin near 1e200), naming the column and the day.
    data_dir = tmp_path / "data"
    bars = make_bars(400)
    bars.loc[320, "High"] = 1e200
    csv = tmp_path / "absurd.csv"
    bars.to_csv(csv, index=False)
    wide = Plausibility(max_jump=1e300, max_day_range=1e300, max_price=1e300)
    inputs = load_inputs("csv", ticker="ABS", csv_path=csv, bounds=wide)
    with pytest.raises(
        DataError,
        match=r"ABS\.dataset\.a25: column 'High' is 1e\+200 on \d{4}-\d\d-\d\d, beyond 1e\+18 "
        r"in magnitude",
    ):
        build_datasets(inputs, data_dir=data_dir, bounds=wide)
    assert not (data_dir / "manifest.json").exists()


def test_the_tier_table_is_what_the_build_makes(tmp_path: Path) -> None:
    # one table names each tier's columns, inputs and lookback; the build follows it
    from finscale.data.features import lookback_rows, tier_lookback
    from finscale.tiers import DATASETS

    built = build_datasets(load_inputs("sample"), data_dir=tmp_path)
    for b in built:
        if ".dataset." not in b.entry.name:
            continue
        kind = DATASETS[b.entry.name.split(".dataset.")[1]]
        assert tuple(b.entry.columns[1:]) == kind.columns
        assert b.entry.lookback_rows == max(tier_lookback(t) for t in kind.tiers)
    # the lookbacks the table yields are those the build always recorded
    assert {t: tier_lookback(t) for t in TIERS} == {
        "a20": 199, "a50": 199, "a100": 199, "a200": 199, "c": 59,
    }  # fmt: skip
    assert {k: lookback_rows(k) for k in DATASETS} == dict.fromkeys(DATASETS, 199)
