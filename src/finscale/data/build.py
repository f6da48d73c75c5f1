"""Raw bars → indicators → datasets, registered in the manifest.

A build reads and checks every input and computes every dataset before it writes anything, so a
bad input leaves the data directory as it was. Files are content-addressed
(`processed/GSPC.dataset.a25-<sha12>.parquet`): a rebuild that changes a dataset keeps the older
file for studies pinned to its sha256, and one that reproduces it changes nothing.

A build writes a raw snapshot of every series it read, then one dataset per kind it was asked
for (`finscale.tiers.DATASETS`: Date, OHLCV and the features of the kind's tiers).

Labels are not columns of any dataset: they are computed from Close and High when windows are
made (`finscale.data.windows`), so no label can leak into the inputs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
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
from finscale.data.inputs import Inputs, Series
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
from finscale.tiers import DATASETS, INPUTS, TIERS, dataset_kind

log = logging.getLogger(__name__)

# Bump when a feature definition changes: it is part of every entry's code_version.
PIPELINE_VERSION = "1"


@dataclass(frozen=True)
class Built:
    """One file a build produced, and whether the manifest already had it."""

    entry: ManifestEntry
    unchanged: bool


def _trim_warmup(
    frame: pd.DataFrame, what: str, *, max_feature: float = sources.Plausibility.max_feature
) -> pd.DataFrame:
    """Drop the leading rows where an indicator is still warming up; refuse any gap after, and
    any feature whose magnitude exceeds `max_feature` (it would overflow in training)."""
    values = frame.drop(columns="Date").to_numpy(dtype="float64")
    finite = np.isfinite(values)
    complete = finite.all(axis=1)
    if not complete.any():
        warmup = max(map(features.lookback_rows, DATASETS)) + 1
        never = [c for j, c in enumerate(frame.columns[1:]) if not finite[:, j].any()]
        if len(frame) >= warmup and never:  # long enough: a feature that is never defined
            raise DataError(
                f"{what}: no row has every feature: column {never[0]!r} has no finite value on "
                f"any of the {len(frame)} rows ({len(never)} such columns); check the source "
                "bars (zero volume, flat prices)"
            )
        raise DataError(
            f"{what}: no row has every feature; {len(frame)} rows are fewer than the indicators' "
            f"warm-up ({warmup} rows or more)"
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


def _ticker_features(
    bars: pd.DataFrame, tiers: tuple[str, ...], memo: features.Memo
) -> pd.DataFrame:
    """Date + OHLCV + the features of the tiers computed from the ticker's bars."""
    frame = bars[["Date", *sources.OHLCV]].reset_index(drop=True)
    computed = [features.compute_tier(t, bars, memo).drop(columns="Date") for t in tiers]
    return pd.concat([frame, *computed], axis=1)


def _join_auxiliary(
    frame: pd.DataFrame, series: Series, tiers: tuple[str, ...], memo: features.Memo, *, what: str
) -> pd.DataFrame:
    """The ticker's rows where `series` also has data, with the features of its tiers.

    A ticker day without a value of the series takes the previous day's features (known by
    then).
    """
    bars, aux = frame, series.bars
    first = max(bars["Date"].iloc[0], aux["Date"].iloc[0])
    last = min(bars["Date"].iloc[-1], aux["Date"].iloc[-1])
    if first > last:
        raise DataError(
            f"{what}: the ticker ({bars['Date'].iloc[0].date()}..{bars['Date'].iloc[-1].date()}) "
            f"and {series.ticker} ({aux['Date'].iloc[0].date()}..{aux['Date'].iloc[-1].date()}) "
            "share no dates"
        )
    frame = frame[(frame["Date"] >= first) & (frame["Date"] <= last)]
    computed = [features.compute_tier(t, aux, memo) for t in tiers]
    added = [c for t in tiers for c in TIERS[t].columns]
    merged = frame
    for part in computed:
        merged = merged.merge(part, on="Date", how="left", validate="one_to_one")
    filled = int(merged[added[0]].isna().sum())
    if filled:
        log.warning(
            "%s: %d trading days without a %s close take the previous day's",
            what,
            filled,
            series.ticker,
        )
        merged[added] = merged[added].ffill()
    return merged.reset_index(drop=True)


def assemble_dataset(
    kind: str,
    inputs: Inputs,
    *,
    max_feature: float = sources.Plausibility.max_feature,
    memos: dict[str, features.Memo] | None = None,
) -> pd.DataFrame:
    """A dataset of `kind` (`finscale.tiers.DATASETS`): Date, OHLCV and its tiers' features, on
    the ticker's trading days where every series it reads has data, warm-up rows dropped.

    `memos` keeps the functions computed per input series, for the next kind of the build."""
    dataset = DATASETS[kind]
    what = dataset.name(inputs.equity.ticker)
    memos = {} if memos is None else memos
    own = tuple(t for t in dataset.tiers if TIERS[t].input == "ohlcv")
    frame = _ticker_features(inputs.equity.bars, own, memos.setdefault("ohlcv", {}))
    for name in dataset.auxiliary_inputs:
        tiers = tuple(t for t in dataset.tiers if TIERS[t].input == name)
        memo = memos.setdefault(name, {})
        frame = _join_auxiliary(frame, inputs.auxiliary[name], tiers, memo, what=what)
    return _trim_warmup(frame, what, max_feature=max_feature)


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
    """Every file of a build, computed in memory (raises before anything is written): the raw
    snapshots, then the datasets in the table's order."""
    eq = inputs.equity
    plans = [_Planned(f"{eq.ticker}.ohlcv.daily", "raw", "raw", eq.bars, [eq.source], 0)]
    for name, series in inputs.auxiliary.items():
        raw_name = str(INPUTS[name].raw_name)
        plans.append(_Planned(raw_name, "raw", "raw", series.bars, [series.source], 0))
    memos: dict[str, features.Memo] = {}
    for kind in (k for k in DATASETS if k in inputs.kinds):
        frame = assemble_dataset(kind, inputs, max_feature=max_feature, memos=memos)
        name = DATASETS[kind].name(eq.ticker)
        lookback = features.lookback_rows(kind)
        plans.append(_Planned(name, "dataset", "processed", frame, [], lookback))
    return plans


def _check_expected(staged: list[tuple[_Planned, Path, str]], expect: Mapping[str, str]) -> None:
    """Refuse a build whose datasets are not the versions expected, before anything is written."""
    digests = {plan.name: digest for plan, _, digest in staged}
    for name, wanted in expect.items():
        if name not in digests:
            raise DataError(
                f"{name}: expected sha256 {wanted}, but this build does not make it (it makes "
                f"{', '.join(digests)})"
            )
        if digests[name] != wanted:
            raise DataError(
                f"{name}: the rebuilt dataset has sha256 {digests[name]}, not the {wanted} that "
                "was validated and shipped; nothing was written. The bars or the code differ "
                "from the build it was checked with (same finscale version and image?)"
            )


def _entry(
    plan: _Planned, relative: str, target: Path, digest: str, inputs: list[InputRef]
) -> ManifestEntry:
    return ManifestEntry(
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
        inputs=inputs,
        code_version=code_version(),
        created_at=datetime.now(UTC),
    )


def build_datasets(
    inputs: Inputs,
    *,
    data_dir: Path,
    bounds: sources.Plausibility | None = None,
    expect: Mapping[str, str] | None = None,
) -> list[Built]:
    """Write the raw snapshots and datasets of `inputs` and register them in the manifest.

    Args:
        inputs: validated bars (see `load_inputs`).
        data_dir: the data directory (created if needed).
        bounds: its `max_feature` bounds every feature after the build.
        expect: the sha256 each named dataset must have (what a data Job was shipped to
            rebuild); a build that makes another version writes nothing.

    Returns:
        One `Built` per file, raw snapshots first; `unchanged` when the manifest's latest entry
        already had these exact bytes (nothing was appended for it).

    Raises:
        DataError: a dataset would be empty, or hold a non-finite value or one beyond
            `bounds.max_feature` after its warm-up; a dataset's sha256 is not the one in
            `expect`; the manifest is invalid. Nothing is written in any of these cases.
    """
    manifest = read_manifest(data_dir)
    plans = _plan(inputs, (bounds or sources.Plausibility()).max_feature)
    results: list[Built] = []
    make_data_dir(data_dir)
    # Private while it holds half-written files; removed at the end.
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=".build-"))
    try:
        staged = []
        for plan in plans:
            tmp = staging / f"{plan.name}.parquet"
            _write_parquet(plan.frame, tmp)
            staged.append((plan, tmp, sha256_file(tmp)))
        _check_expected(staged, expect or {})
        raw_refs: list[InputRef] = []
        for plan, tmp, digest in staged:
            inputs_of = plan.inputs if plan.kind == "raw" else _raw_inputs(plan.name, raw_refs)
            relative = f"{plan.folder}/{plan.name}-{digest[:12]}.parquet"
            target = data_dir / relative
            make_data_dir(target.parent)
            if not (target.is_file() and sha256_file(target) == digest):
                shutil.move(tmp, target)
            if plan.kind == "raw":
                symbol = plan.inputs[0].symbol
                ref = InputRef(name=plan.name, sha256=digest, origin=relative, symbol=symbol)
                raw_refs.append(ref)
            latest = manifest.latest(plan.name)
            if latest is not None and latest.sha256 == digest and latest.path == relative:
                results.append(Built(latest, unchanged=True))
                continue
            entry = _entry(plan, relative, target, digest, inputs_of)
            manifest = Manifest(entries=[*manifest.entries, entry])
            results.append(Built(entry, unchanged=False))
        if any(not r.unchanged for r in results):
            write_manifest(manifest, data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results


def _raw_inputs(dataset: str, raw_refs: list[InputRef]) -> list[InputRef]:
    """The raw snapshots a dataset reads: the ticker's bars and its auxiliary series."""
    kind = dataset_kind(dataset)
    skipped = {INPUTS[i].raw_name for i in INPUTS if INPUTS[i].auxiliary} - {
        INPUTS[i].raw_name for i in kind.auxiliary_inputs
    }
    return [ref for ref in raw_refs if ref.name not in skipped]
