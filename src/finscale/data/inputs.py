"""What one build reads: the ticker's bars and the auxiliary series (`finscale.tiers.INPUTS`)
its dataset kinds need, from the shipped sample, CSV files or Yahoo Finance.

Which series a build reads follows from the dataset kinds asked for: a kind whose tiers need VIX
makes the sample and yfinance sources read VIX, and the csv source read `input_csv["vix"]`.
Without a kind named, a build makes every kind its source can feed that is built by default
(`DatasetKind.by_default`: not the larger tiers' a55, a105, a205, which take `--kind`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pandas as pd

from finscale.data import sources
from finscale.data.integrity import verify_manifest
from finscale.data.manifest import SNAPSHOT_SUFFIX, InputRef, read_manifest, sha256_file
from finscale.errors import DataError
from finscale.tiers import DATASETS, INPUTS, SAMPLE_SYMBOLS

SourceKind = Literal["sample", "csv", "yfinance", "snapshot"]
SOURCES: tuple[str, ...] = ("sample", "csv", "yfinance", "snapshot")

DEFAULT_TICKERS = {"sample": "GSPC", "yfinance": "SPY"}

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TICKER = re.compile(r"^\^?[A-Za-z0-9][A-Za-z0-9.\-]{0,19}$")


@dataclass(frozen=True)
class Series:
    """Validated bars of one symbol and where they came from."""

    ticker: str
    bars: pd.DataFrame
    source: InputRef


@dataclass(frozen=True)
class Inputs:
    """What one build reads: a ticker's OHLCV, the auxiliary series by input name, and the
    dataset kinds to make of them."""

    equity: Series
    auxiliary: dict[str, Series] = field(default_factory=dict)
    kinds: tuple[str, ...] = tuple(k for k, d in DATASETS.items() if d.by_default)


def ticker_name(symbol: str) -> str:
    """The file-safe name of a symbol: `^VIX` → `VIX`, `brk.b` → `BRK-B`.

    Raises:
        DataError: the symbol is empty or holds characters no exchange symbol uses.
    """
    if not _TICKER.match(symbol):
        raise DataError(
            f"ticker {symbol!r}: expected letters, digits, '.', '-' and an optional '^'"
        )
    return symbol.lstrip("^").upper().replace(".", "-")


def parse_input_csv(values: Iterable[str]) -> dict[str, Path]:
    """`["vix=vix.csv"]` → `{"vix": Path("vix.csv")}` (the `--input-csv NAME=FILE` options).

    Raises:
        DataError: not NAME=FILE, a name no tier reads, or a name given twice.
    """
    auxiliary = [name for name, inp in INPUTS.items() if inp.auxiliary]
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        name = name.strip().lower()
        if not sep or not path:
            raise DataError(f"--input-csv {value!r}: expected NAME=FILE, NAME one of {auxiliary}")
        if name not in auxiliary:
            raise DataError(f"--input-csv {value!r}: unknown input {name!r}; one of {auxiliary}")
        if name in out:
            raise DataError(f"--input-csv: {name!r} is given twice")
        out[name] = Path(path)
    return out


def raw_name(ticker: str) -> str:
    """The manifest name of a ticker's raw bars: `^IXIC` → `IXIC.ohlcv.daily`."""
    return f"{ticker_name(ticker)}.ohlcv.daily"


def parse_expected(values: Iterable[str]) -> dict[str, str]:
    """`["IXIC.dataset.a25=<sha256>"]` → `{"IXIC.dataset.a25": "<sha256>"}` (the
    `--expect-sha256 NAME=DIGEST` options of a data Job that rebuilds shipped bars).

    Raises:
        DataError: not NAME=DIGEST with a full sha256, or a name given twice.
    """
    out: dict[str, str] = {}
    for value in values:
        name, _, digest = value.partition("=")
        if not name or not _SHA256.match(digest):
            raise DataError(
                f"--expect-sha256 {value[:200]!r}: expected NAME=DIGEST, DIGEST a full sha256 "
                "(64 hex digits)"
            )
        if name in out:
            raise DataError(f"--expect-sha256: {name!r} is given twice")
        out[name] = digest
    return out


def check_snapshots(directory: Path, expect: Mapping[str, str]) -> None:
    """The shipped snapshots of `directory` whose raw name `expect` lists are the bytes that
    were validated (before any is read: a damaged file is named as such, not as bad bars).

    Raises:
        DataError: a snapshot's sha256 differs; names the file, the datasets and both digests.
    """
    datasets = ", ".join(n for n in expect if ".dataset." in n) or "its datasets"
    for name, wanted in expect.items():
        path = directory / f"{name}{SNAPSHOT_SUFFIX}"
        if ".dataset." in name or not path.is_file():
            continue
        digest = sha256_file(path)
        if digest != wanted:
            raise DataError(
                f"{path}: the bars of {datasets} have sha256 {digest}, not the {wanted} they "
                f"were validated with ({name}); nothing was built. Render and apply the data "
                "Job again from the data directory that built them"
            )


def _available(source: str, input_csv: Mapping[str, Path]) -> set[str]:
    """The auxiliary inputs a source can read."""
    auxiliary = {name for name, inp in INPUTS.items() if inp.auxiliary}
    return set(input_csv) if source == "csv" else auxiliary


def build_kinds(
    source: str, kinds: Sequence[str] | None, input_csv: Mapping[str, Path] | None = None
) -> tuple[str, ...]:
    """The dataset kinds a build makes: `kinds`, or every kind built by default that the
    source can feed.

    Raises:
        DataError: an unknown kind, or one whose input the source lacks (the csv source without
            `input_csv` for it), or an `input_csv` with another source.
    """
    given = dict(input_csv or {})
    if given and source != "csv":
        raise DataError(f"--input-csv is for the csv source; the {source} source reads its own")
    available = _available(source, given)
    if kinds is None:
        return tuple(
            k for k, d in DATASETS.items() if d.by_default and set(d.auxiliary_inputs) <= available
        )
    for kind in kinds:
        if kind not in DATASETS:
            raise DataError(f"unknown dataset kind {kind!r}; expected one of {list(DATASETS)}")
        for missing in (i for i in DATASETS[kind].auxiliary_inputs if i not in available):
            raise DataError(
                f"dataset kind {kind} needs the {INPUTS[missing].label} series: "
                f"--input-csv {missing}=FILE"
            )
    return tuple(dict.fromkeys(kinds))


def dataset_names(
    source: str,
    ticker: str | None,
    *,
    kinds: Sequence[str] | None = None,
    input_csv: Mapping[str, Path] | None = None,
) -> list[str]:
    """The datasets a build of `ticker` from `source` registers (what `--if-missing` looks
    for before it downloads anything).

    Raises:
        DataError: no ticker for the csv source, a bad ticker, or kinds the source cannot feed.
    """
    symbol = ticker or DEFAULT_TICKERS.get(source)
    if symbol is None:
        raise DataError(f"the {source} source needs --ticker")
    name = ticker_name(symbol)
    return [DATASETS[k].name(name) for k in build_kinds(source, kinds, input_csv)]


def _file_ref(name: str, path: Path, origin: str, symbol: str | None = None) -> InputRef:
    return InputRef(name=name, sha256=sha256_file(path), origin=origin, symbol=symbol)


def _frame_ref(name: str, frame: pd.DataFrame, origin: str) -> InputRef:
    """A download has no file: its reference is the sha256 of its canonical CSV text."""
    text = frame.to_csv(index=False, date_format="%Y-%m-%d", lineterminator="\n")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return InputRef(name=name, sha256=digest, origin=origin, symbol=name)


def _snapshot_inputs(
    directory: Path,
    ticker: str,
    needed: Iterable[str],
    chosen: tuple[str, ...],
    bounds: sources.Plausibility | None,
) -> Inputs:
    """The snapshot source: the raw snapshots an earlier build wrote (`<raw name>.parquet` in
    `directory`), validated again; the ticker's symbol is kept as given."""

    def read(name: str, columns: Sequence[str], symbol: str) -> Series:
        path = directory / f"{name}{SNAPSHOT_SUFFIX}"
        if not path.is_file():
            shipped = sorted(p.name for p in directory.glob(f"*{SNAPSHOT_SUFFIX}")) or "none"
            raise DataError(f"{path}: no such snapshot (the folder has: {shipped})")
        frame = sources.read_snapshot(path)
        bars = sources.validate_bars(frame, origin=str(path), columns=columns, bounds=bounds)
        ref = _file_ref(path.name, path, f"snapshot:{symbol}", symbol)
        return Series(ticker_name(symbol), bars, ref)

    equity = read(raw_name(ticker), sources.OHLCV, ticker)
    aux = {}
    for i in needed:
        series = read(str(INPUTS[i].raw_name), INPUTS[i].columns, str(INPUTS[i].symbol))
        aux[i] = Series(INPUTS[i].label, series.bars, series.source)
    return Inputs(equity, aux, chosen)


def load_inputs(
    source: SourceKind,
    *,
    ticker: str | None = None,
    csv_path: Path | None = None,
    kinds: Sequence[str] | None = None,
    input_csv: Mapping[str, Path] | None = None,
    sample_dir: Path | None = None,
    history: sources.History | None = None,
    bounds: sources.Plausibility | None = None,
    snapshot_dir: Path | None = None,
) -> Inputs:
    """Read and validate the bars of one build.

    Args:
        source: `sample` (shipped S&P 500, NASDAQ Composite and VIX), `csv` (a user file),
            `yfinance`, or `snapshot` (the raw snapshots of an earlier build, in
            `snapshot_dir`: what a data Job rebuilds a shipped dataset from).
        ticker: the symbol, recorded as given (`^IXIC`; the file names use `IXIC`); `GSPC`
            (default) or `IXIC` for the sample, required for csv and snapshot, `SPY` by default
            for yfinance.
        csv_path: the CSV of the csv source (Date, Open, High, Low, Close, Volume).
        kinds: the dataset kinds to build (default: every kind built by default that the source
            can feed).
        input_csv: for the csv source, a CSV per auxiliary input (`{"vix": path}`, Date, Close).
        sample_dir: where the sample files are (default: the shipped copy).
        history: replaces Yahoo's client (tests).
        bounds: what counts as a plausible bar (default: `sources.Plausibility()`).
        snapshot_dir: the folder of the snapshot source (`<raw name>.parquet` files).

    Raises:
        DataError: a missing option, an unknown ticker or kind, or invalid or implausible bars.
    """
    if source not in SOURCES:
        raise DataError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    files = dict(input_csv or {})
    chosen = build_kinds(source, kinds, files)
    needed = dict.fromkeys(i for k in chosen for i in DATASETS[k].auxiliary_inputs)
    if source == "sample":
        directory = sources.sample_dir(sample_dir)

        def sample(name: str) -> Series:
            bars = sources.sample_bars(directory, name, bounds=bounds)
            path = directory / sources.SAMPLE_FILES[name]
            ref = _file_ref(f"{name}.sample", path, f"sample:{name}", SAMPLE_SYMBOLS.get(name))
            return Series(name, bars, ref)

        equity = sample(ticker_name(ticker or DEFAULT_TICKERS["sample"]))
        aux = {i: sample(str(INPUTS[i].sample)) for i in needed}
        return Inputs(equity, aux, chosen)
    if source == "csv":
        if csv_path is None or ticker is None:
            raise DataError("the csv source needs --csv PATH and --ticker NAME")
        bars = sources.read_csv_bars(csv_path, bounds=bounds)
        ref = _file_ref(csv_path.name, csv_path, str(csv_path), ticker)
        equity = Series(ticker_name(ticker), bars, ref)
        aux = {}
        for i in needed:
            path = files[i]
            aux_bars = sources.read_csv_bars(path, columns=INPUTS[i].columns, bounds=bounds)
            aux[i] = Series(INPUTS[i].label, aux_bars, _file_ref(path.name, path, str(path)))
        return Inputs(equity, aux, chosen)
    if source == "snapshot":
        if snapshot_dir is None or ticker is None:
            raise DataError("the snapshot source needs --snapshot-dir DIR and --ticker SYMBOL")
        return _snapshot_inputs(snapshot_dir, ticker, needed, chosen, bounds)
    symbol = ticker or DEFAULT_TICKERS["yfinance"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def download(symbol: str, columns: Sequence[str]) -> pd.DataFrame:
        return sources.download_yfinance(symbol, columns=columns, history=history, bounds=bounds)

    bars = download(symbol, sources.OHLCV)
    equity = Series(
        ticker_name(symbol), bars, _frame_ref(symbol, bars, f"yfinance:{symbol}@{stamp}")
    )
    aux = {}
    for i in needed:
        aux_symbol = str(INPUTS[i].symbol)
        aux_bars = download(aux_symbol, INPUTS[i].columns)
        ref = _frame_ref(aux_symbol, aux_bars, f"yfinance:{aux_symbol}@{stamp}")
        aux[i] = Series(INPUTS[i].label, aux_bars, ref)
    return Inputs(equity, aux, chosen)


def already_built(
    data_dir: Path,
    source: str,
    ticker: str | None,
    *,
    kinds: Sequence[str] | None = None,
    input_csv: Mapping[str, Path] | None = None,
) -> list[str] | None:
    """`finscale data build --if-missing`: the names of the datasets this build would make
    when every one is in the manifest and every file the manifest lists matches its sha256
    (nothing to do); None when the build must run."""
    wanted = dataset_names(source, ticker, kinds=kinds, input_csv=input_csv)
    manifest = read_manifest(data_dir)
    if all(manifest.latest(n) is not None for n in wanted) and not verify_manifest(data_dir):
        return wanted
    return None


def already_expected(data_dir: Path, expect: Mapping[str, str]) -> list[str] | None:
    """`--if-missing` with `--expect-sha256`: the names when the manifest has every expected
    version and each file matches its entry (nothing to do); None when the build must run."""
    from finscale.data.integrity import entry_problems

    manifest = read_manifest(data_dir)
    for name, digest in expect.items():
        entry = manifest.find(name, digest)
        if entry is None or entry.sha256 != digest or entry_problems(data_dir, entry):
            return None
    return list(expect)
