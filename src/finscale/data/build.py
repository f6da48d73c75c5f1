"""Raw bars → indicators → datasets, registered in the manifest.

A build reads and checks every input and computes every dataset before it writes anything, so a
bad input leaves the data directory as it was. Files are content-addressed
(`processed/GSPC.dataset.a25-<sha12>.parquet`): a rebuild that changes a dataset keeps the older
file for studies pinned to its sha256, and one that reproduces it changes nothing.

Datasets:
- `<TICKER>.dataset.a25`: Date, Open, High, Low, Close, Volume and the 20 a20 indicators.
- `<TICKER>.dataset.a25c`: the same plus the 8 VIX features of tier c (33 features).

Labels are not columns of any dataset: they are computed from Close and High when windows are
made (`finscale.data.windows`), so no label can leak into the inputs.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import talib

from finscale import __version__
from finscale.data import features, sources
from finscale.data.manifest import (
    FILE_MODE,
    InputRef,
    Manifest,
    ManifestEntry,
    make_data_dir,
    read_manifest,
    sha256_file,
    write_manifest,
)
from finscale.errors import DataError
from finscale.tiers import DATASETS, dataset_kind

log = logging.getLogger(__name__)

# Bump when a feature definition changes: it is part of every entry's code_version.
PIPELINE_VERSION = "1"

SourceKind = Literal["sample", "csv", "yfinance"]

_TICKER = re.compile(r"^\^?[A-Za-z0-9][A-Za-z0-9.\-]{0,19}$")


DEFAULT_TICKERS = {"sample": "GSPC", "yfinance": "SPY"}


def dataset_names(source: str, ticker: str | None, *, with_vix: bool) -> list[str]:
    """The datasets a build of `ticker` from `source` registers (what `--if-missing` looks
    for before it downloads anything).

    Raises:
        DataError: no ticker for the csv source, or a bad ticker.
    """
    symbol = ticker or DEFAULT_TICKERS.get(source)
    if symbol is None:
        raise DataError(f"the {source} source needs --ticker")
    name = ticker_name(symbol)
    return [d.name(name) for d in DATASETS.values() if with_vix or "vix" not in d.inputs]


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


@dataclass(frozen=True)
class Series:
    """Validated bars of one symbol and where they came from."""

    ticker: str
    bars: pd.DataFrame
    source: InputRef


@dataclass(frozen=True)
class Inputs:
    """What one build reads: a ticker's OHLCV and, optionally, VIX closes."""

    equity: Series
    vix: Series | None


@dataclass(frozen=True)
class Built:
    """One file a build produced, and whether the manifest already had it."""

    entry: ManifestEntry
    unchanged: bool


def _file_ref(name: str, path: Path, origin: str) -> InputRef:
    return InputRef(name=name, sha256=sha256_file(path), origin=origin)


def load_inputs(
    source: SourceKind,
    *,
    ticker: str | None = None,
    csv_path: Path | None = None,
    vix_csv_path: Path | None = None,
    sample_dir: Path | None = None,
    with_vix: bool = True,
    history: sources.History | None = None,
    bounds: sources.Plausibility | None = None,
) -> Inputs:
    """Read and validate the bars of one build.

    Args:
        source: `sample` (shipped S&P 500 and VIX), `csv` (a user file) or `yfinance`.
        ticker: the symbol; `GSPC` for the sample, required for csv, `SPY` by default for
            yfinance.
        csv_path: the CSV of the csv source (Date, Open, High, Low, Close, Volume).
        vix_csv_path: optional CSV of VIX closes (Date, Close) for the csv source.
        sample_dir: where the sample files are (default: the shipped copy).
        with_vix: also read VIX closes where the source has them.
        history: replaces Yahoo's client (tests).
        bounds: what counts as a plausible bar (default: `sources.Plausibility()`).

    Raises:
        DataError: a missing option, an unknown ticker, or invalid or implausible bars.
    """
    if source == "sample":
        directory = sources.sample_dir(sample_dir)
        name = ticker_name(ticker or "GSPC")
        equity = Series(
            name,
            sources.sample_bars(directory, name, bounds=bounds),
            _file_ref(f"{name}.sample", directory / sources.SAMPLE_FILES[name], f"sample:{name}"),
        )
        vix = None
        if with_vix:
            vix = Series(
                "VIX",
                sources.sample_bars(directory, "VIX", bounds=bounds),
                _file_ref("VIX.sample", directory / sources.SAMPLE_FILES["VIX"], "sample:VIX"),
            )
        return Inputs(equity, vix)
    if source == "csv":
        if csv_path is None or ticker is None:
            raise DataError("the csv source needs --csv PATH and --ticker NAME")
        name = ticker_name(ticker)
        bars = sources.read_csv_bars(csv_path, bounds=bounds)
        equity = Series(name, bars, _file_ref(csv_path.name, csv_path, str(csv_path)))
        vix = None
        if vix_csv_path is not None and with_vix:
            vix_bars = sources.read_csv_bars(
                vix_csv_path, columns=sources.CLOSE_ONLY, bounds=bounds
            )
            vix = Series(
                "VIX", vix_bars, _file_ref(vix_csv_path.name, vix_csv_path, str(vix_csv_path))
            )
        return Inputs(equity, vix)
    if source == "yfinance":
        symbol = ticker or "SPY"
        name = ticker_name(symbol)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        bars = sources.download_yfinance(symbol, history=history, bounds=bounds)
        equity = Series(name, bars, _frame_ref(symbol, bars, f"yfinance:{symbol}@{stamp}"))
        vix = None
        if with_vix:
            vix_bars = sources.download_yfinance(
                "^VIX", columns=sources.CLOSE_ONLY, history=history, bounds=bounds
            )
            vix = Series("VIX", vix_bars, _frame_ref("^VIX", vix_bars, f"yfinance:^VIX@{stamp}"))
        return Inputs(equity, vix)
    raise DataError(f"unknown source {source!r}; expected sample, csv or yfinance")


def _frame_ref(name: str, frame: pd.DataFrame, origin: str) -> InputRef:
    """A download has no file: its reference is the sha256 of its canonical CSV text."""
    text = frame.to_csv(index=False, date_format="%Y-%m-%d", lineterminator="\n")
    return InputRef(name=name, sha256=hashlib.sha256(text.encode()).hexdigest(), origin=origin)


def _trim_warmup(
    frame: pd.DataFrame, what: str, *, max_feature: float = sources.Plausibility.max_feature
) -> pd.DataFrame:
    """Drop the leading rows where an indicator is still warming up; refuse any gap after, and
    any feature whose magnitude exceeds `max_feature` (it would overflow in training)."""
    values = frame.drop(columns="Date").to_numpy(dtype="float64")
    finite = np.isfinite(values)
    complete = finite.all(axis=1)
    if not complete.any():
        raise DataError(
            f"{what}: no row has every feature; {len(frame)} rows are fewer than the indicators' "
            f"warm-up ({features.A20_LOOKBACK_ROWS + 1} rows or more)"
        )
    first = int(np.argmax(complete))
    holes = ~finite[first:]
    if holes.any():
        row, col = (int(v[0]) for v in np.nonzero(holes))
        column = frame.columns[1 + col]
        date = frame["Date"].iloc[first + row].date()
        count = int((~complete[first:]).sum())
        raise DataError(
            f"{what}: column {column!r} has no finite value on {date} after the warm-up "
            f"({count} such rows); check the source bars around that date "
            "(zero volume, flat prices)"
        )
    huge = np.abs(values[first:]) > max_feature
    if huge.any():
        row, col = (int(v[0]) for v in np.nonzero(huge))
        column = frame.columns[1 + col]
        date = frame["Date"].iloc[first + row].date()
        raise DataError(
            f"{what}: column {column!r} is {values[first + row, col]:g} on {date}, beyond "
            f"{max_feature:g} in magnitude (training would overflow); check the source bars "
            "around that date (--max-feature if it is real)"
        )
    return frame.iloc[first:].reset_index(drop=True)


def assemble_a25(
    bars: pd.DataFrame, *, what: str, max_feature: float = sources.Plausibility.max_feature
) -> pd.DataFrame:
    """Date + OHLCV + the 20 a20 indicators, warm-up rows dropped."""
    indicators = features.compute_a20(bars).drop(columns="Date")
    frame = pd.concat([bars[["Date", *sources.OHLCV]].reset_index(drop=True), indicators], axis=1)
    return _trim_warmup(frame, what, max_feature=max_feature)


def assemble_a25c(
    bars: pd.DataFrame,
    vix: pd.DataFrame,
    *,
    what: str,
    max_feature: float = sources.Plausibility.max_feature,
) -> pd.DataFrame:
    """The a25 columns plus the 8 VIX features, on the ticker's trading days where both exist.

    A ticker day without a VIX close takes the previous VIX day's features (known by then).
    """
    first = max(bars["Date"].iloc[0], vix["Date"].iloc[0])
    last = min(bars["Date"].iloc[-1], vix["Date"].iloc[-1])
    if first > last:
        raise DataError(
            f"{what}: the ticker ({bars['Date'].iloc[0].date()}..{bars['Date'].iloc[-1].date()}) "
            f"and VIX ({vix['Date'].iloc[0].date()}..{vix['Date'].iloc[-1].date()}) share no dates"
        )
    indicators = features.compute_a20(bars).drop(columns="Date")
    equity = pd.concat([bars[["Date", *sources.OHLCV]].reset_index(drop=True), indicators], axis=1)
    equity = equity[(equity["Date"] >= first) & (equity["Date"] <= last)]
    vix_features = features.compute_vix(vix)
    merged = equity.merge(vix_features, on="Date", how="left", validate="one_to_one")
    filled = int(merged["vix_close"].isna().sum())
    if filled:
        log.warning("%s: %d trading days without a VIX close take the previous day's", what, filled)
        merged[list(features.VIX_COLUMNS)] = merged[list(features.VIX_COLUMNS)].ffill()
    return _trim_warmup(merged.reset_index(drop=True), what, max_feature=max_feature)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    # No pandas metadata: the bytes then depend on the data and the parquet writer only.
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd")
    path.chmod(FILE_MODE)  # read by users other than the writer (see manifest.FILE_MODE)


def code_version() -> str:
    """What produced a file: finscale, the feature pipeline and TA-Lib versions."""
    return f"finscale {__version__}; pipeline {PIPELINE_VERSION}; ta-lib {talib.__version__}"


@dataclass(frozen=True)
class _Planned:
    name: str
    kind: Literal["raw", "dataset"]
    folder: str
    frame: pd.DataFrame
    inputs: list[InputRef]
    lookback_rows: int


def _plan(inputs: Inputs, max_feature: float) -> list[_Planned]:
    """Every file of a build, computed in memory (raises before anything is written)."""
    eq = inputs.equity
    raw_name = f"{eq.ticker}.ohlcv.daily"
    plans = [_Planned(raw_name, "raw", "raw", eq.bars, [eq.source], 0)]
    a25_name = DATASETS["a25"].name(eq.ticker)
    a25 = assemble_a25(eq.bars, what=a25_name, max_feature=max_feature)
    lookback = DATASETS["a25"].lookback_rows
    plans.append(_Planned(a25_name, "dataset", "processed", a25, [], lookback))
    if inputs.vix is not None:
        vix_name = "VIX.close.daily"
        plans.insert(1, _Planned(vix_name, "raw", "raw", inputs.vix.bars, [inputs.vix.source], 0))
        a25c_name = DATASETS["a25c"].name(eq.ticker)
        a25c = assemble_a25c(eq.bars, inputs.vix.bars, what=a25c_name, max_feature=max_feature)
        lookback = DATASETS["a25c"].lookback_rows
        plans.append(_Planned(a25c_name, "dataset", "processed", a25c, [], lookback))
    return plans


def build_datasets(
    inputs: Inputs, *, data_dir: Path, bounds: sources.Plausibility | None = None
) -> list[Built]:
    """Write the raw snapshots and datasets of `inputs` and register them in the manifest.

    Args:
        inputs: validated bars (see `load_inputs`).
        data_dir: the data directory (created if needed).
        bounds: its `max_feature` bounds every feature after the build.

    Returns:
        One `Built` per file, raw snapshots first; `unchanged` when the manifest's latest entry
        already had these exact bytes (nothing was appended for it).

    Raises:
        DataError: a dataset would be empty, or hold a non-finite value or one beyond
            `bounds.max_feature` after its warm-up; the manifest is invalid. Nothing is written
            in either case.
    """
    manifest = read_manifest(data_dir)
    plans = _plan(inputs, (bounds or sources.Plausibility()).max_feature)
    results: list[Built] = []
    make_data_dir(data_dir)
    # Private while it holds half-written files; removed at the end.
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=".build-"))
    try:
        raw_refs: list[InputRef] = []
        for plan in plans:
            inputs_of = plan.inputs if plan.kind == "raw" else _raw_inputs(plan.name, raw_refs)
            tmp = staging / f"{plan.name}.parquet"
            _write_parquet(plan.frame, tmp)
            digest = sha256_file(tmp)
            relative = f"{plan.folder}/{plan.name}-{digest[:12]}.parquet"
            target = data_dir / relative
            make_data_dir(target.parent)
            if not (target.is_file() and sha256_file(target) == digest):
                shutil.move(tmp, target)
            if plan.kind == "raw":
                raw_refs.append(InputRef(name=plan.name, sha256=digest, origin=relative))
            latest = manifest.latest(plan.name)
            if latest is not None and latest.sha256 == digest and latest.path == relative:
                results.append(Built(latest, unchanged=True))
                continue
            entry = ManifestEntry(
                name=plan.name,
                kind=plan.kind,
                path=relative,
                sha256=digest,
                size_bytes=target.stat().st_size,
                rows=len(plan.frame),
                columns=[str(c) for c in plan.frame.columns],
                start=plan.frame["Date"].iloc[0].date(),
                end=plan.frame["Date"].iloc[-1].date(),
                lookback_rows=plan.lookback_rows,
                inputs=inputs_of,
                code_version=code_version(),
                created_at=datetime.now(UTC),
            )
            manifest = Manifest(entries=[*manifest.entries, entry])
            results.append(Built(entry, unchanged=False))
        if any(not r.unchanged for r in results):
            write_manifest(manifest, data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results


def _raw_inputs(dataset: str, raw_refs: list[InputRef]) -> list[InputRef]:
    """The raw snapshots a dataset reads: the ticker's bars, and VIX for the c variant."""
    if "vix" in dataset_kind(dataset).inputs:
        return list(raw_refs)
    return [ref for ref in raw_refs if not ref.name.startswith("VIX.")]
