"""Which bars a data Job builds a dataset from: the raw snapshots the user built and checked
locally, shipped in a ConfigMap (`local`, the default), or a download on the cluster
(`download`, only when asked for).

A shipped dataset is rebuilt on the cluster from exactly the bars it was built from here, and
the data Job refuses any other result than the sha256 the local manifest records, which the
study spec then pins. A downloaded one is whatever Yahoo answers that day: the study pins the
version the data Job built when its first worker creates it.

Reads the local manifest only (pydantic): no pandas, no TA-Lib.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from finscale.data.manifest import (
    MANIFEST_NAME,
    SNAPSHOT_SUFFIX,
    Manifest,
    ManifestEntry,
    read_manifest,
)
from finscale.data.manifest import sha256_file as _sha256_file
from finscale.errors import DataError
from finscale.spec import StudySpec
from finscale.tiers import DATASETS, SAMPLE_SYMBOLS

DataFrom = Literal["local", "download"]
DATA_FROM: tuple[str, ...] = ("local", "download")

# Kubernetes refuses an object above 1 MiB (etcd's request limit). The shipped files are
# base64 in the ConfigMap (4 bytes per 3); the limit leaves a quarter for the rest and margin.
OBJECT_LIMIT_BYTES = 1 << 20
SHIP_LIMIT_BYTES = 768 * 1024
DATA_JOB_PREFIX = "finscale-data-"


def data_job_name(dataset: str) -> str:
    """The data Job of a dataset's ticker, DNS-safe: `IXIC.dataset.a25` → `finscale-data-ixic`."""
    ticker = dataset.split(".")[0].lower()
    return f"{DATA_JOB_PREFIX}{re.sub(r'[^a-z0-9-]', '-', ticker)}"


@dataclass(frozen=True)
class DataPlan:
    """What one data Job builds: the datasets of one ticker, from shipped snapshots (`files`,
    each dataset with the sha256 it must have) or from a download (no files, no digests).

    Attributes:
        name: the Job's name (`finscale-data-ixic`).
        symbol: the ticker exactly as given when it was built or as Yahoo names it (`^IXIC`).
        datasets: dataset name → the sha256 it must have; None where a download decides.
        files: ConfigMap file name (`IXIC.ohlcv.daily.parquet`) → the snapshot's bytes.
    """

    name: str
    symbol: str
    datasets: dict[str, str | None] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def shipped(self) -> bool:
        return bool(self.files)

    @property
    def kinds(self) -> list[str]:
        """The dataset kinds to build, in the table's order."""
        built = {name.partition(".dataset.")[2] for name in self.datasets}
        return [k for k in DATASETS if k in built]


def _ways_out(dataset: str, data_dir: Path) -> str:
    ticker, _, kind = dataset.partition(".dataset.")
    return (
        f"build it into {data_dir} first (`finscale data build --source csv --csv BARS.csv "
        f"--ticker SYMBOL --kind {kind}`, SYMBOL as your market names it, e.g. ^{ticker} for "
        "an index; or --source yfinance), so that the cluster rebuilds exactly the bars "
        "checked here; or render with `--data-from download` to have the data Job download "
        "it on the cluster"
    )


def _symbol(raw: ManifestEntry | None, prefix: str) -> str:
    """The symbol a ticker's bars were built with, as given: recorded on the raw snapshot's
    input, else read from its origin (`yfinance:^IXIC@…`, `sample:IXIC`), else the sample's
    Yahoo symbol or the file-safe name itself."""
    if raw is not None and raw.inputs:
        ref = raw.inputs[0]
        if ref.symbol:
            return ref.symbol
        source, _, rest = ref.origin.partition(":")
        if source == "yfinance" and rest:
            return rest.split("@")[0]
        if source == "sample" and rest:
            return SAMPLE_SYMBOLS.get(rest, rest)
    return SAMPLE_SYMBOLS.get(prefix, prefix)


def _checked_bytes(entry: ManifestEntry, data_dir: Path) -> bytes:
    """A file's bytes, refused unless they are the ones the manifest recorded."""
    path = entry.file(data_dir)
    if not path.is_file():
        raise DataError(f"{path}: missing ({entry.name}); rebuild it with `finscale data build`")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise DataError(
            f"{path}: {entry.name} has sha256 {digest}, not the {entry.sha256} of "
            f"{data_dir / MANIFEST_NAME}; rebuild it with `finscale data build`"
        )
    return data


def _local_dataset(
    manifest: Manifest, dataset: str, pin: str | None, data_dir: Path
) -> tuple[ManifestEntry, dict[str, bytes], str]:
    """A dataset's entry (the pinned version, else the latest), the raw snapshots it was built
    from by file name, and its ticker's symbol."""
    entry = manifest.find(dataset, pin) if pin else manifest.latest(dataset)
    if entry is None:
        version = f" with sha256 {pin}" if pin else ""
        raise DataError(
            f"dataset {dataset}{version} is not in the image and not built in {data_dir} "
            f"({data_dir / MANIFEST_NAME}); {_ways_out(dataset, data_dir)}"
        )
    path = entry.file(data_dir)
    if not path.is_file() or _sha256_file(path) != entry.sha256:
        raise DataError(
            f"{path}: dataset {dataset} is missing or differs from its sha256 {entry.sha256} in "
            f"{data_dir / MANIFEST_NAME} (`finscale data verify` says more); rebuild it"
        )
    files: dict[str, bytes] = {}
    prefix = dataset.split(".")[0]
    symbol = _symbol(None, prefix)
    for ref in entry.inputs:
        raw = manifest.find(ref.name, ref.sha256)
        if raw is None or raw.kind != "raw":
            raise DataError(
                f"{data_dir / MANIFEST_NAME}: dataset {dataset} ({entry.sha256[:12]}) was built "
                f"from {ref.name} {ref.sha256[:12]}, which the manifest does not hold; rebuild "
                "it with `finscale data build`"
            )
        files[f"{raw.name}{SNAPSHOT_SUFFIX}"] = _checked_bytes(raw, data_dir)
        if raw.name == f"{prefix}.ohlcv.daily":
            symbol = _symbol(raw, prefix)
    if f"{prefix}.ohlcv.daily{SNAPSHOT_SUFFIX}" not in files:
        raise DataError(
            f"{data_dir / MANIFEST_NAME}: dataset {dataset} ({entry.sha256[:12]}) names no raw "
            f"snapshot {prefix}.ohlcv.daily among its inputs; rebuild it with `finscale data "
            "build`"
        )
    return entry, files, symbol


def encoded_size(files: dict[str, bytes]) -> int:
    """Bytes the files take as base64 in a ConfigMap's binaryData."""
    return sum(4 * ((len(data) + 2) // 3) for data in files.values())


def _check_size(plan: DataPlan) -> None:
    size = encoded_size(plan.files)
    if size > SHIP_LIMIT_BYTES:
        raw = sum(len(d) for d in plan.files.values())
        listed = ", ".join(f"{n} ({len(d)} bytes)" for n, d in plan.files.items())
        raise DataError(
            f"dataset {', '.join(plan.datasets)}: its raw snapshots ({listed}; {raw} bytes) take "
            f"{size} bytes in a ConfigMap, above the {SHIP_LIMIT_BYTES} render ships "
            f"(Kubernetes refuses objects above {OBJECT_LIMIT_BYTES}); render with --data-from "
            "download, or build the dataset from fewer years of bars"
        )


def plan_data(
    studies: list[StudySpec], *, data_from: DataFrom, data_dir: Path | None
) -> dict[str, DataPlan]:
    """One data Job per ticker whose datasets the studies read and the image lacks.

    Args:
        studies: the studies of one spec, whose datasets are not in the image.
        data_from: `local` ships each dataset's raw snapshots from `data_dir`; `download`
            builds from Yahoo Finance on the cluster.
        data_dir: the local data directory (its manifest); for `download`, only read for the
            symbol a local build recorded.

    Raises:
        DataError: `local`, and a dataset (or its pinned version) is not built in `data_dir`,
            its files differ from the manifest, two datasets of one ticker were built from
            different bars, or the snapshots exceed what a ConfigMap may hold.
    """
    if data_from not in DATA_FROM:
        raise DataError(f"--data-from {data_from!r}: expected one of {', '.join(DATA_FROM)}")
    manifest = read_manifest(data_dir) if data_dir is not None else Manifest()
    plans: dict[str, DataPlan] = {}
    for spec in studies:
        dataset, name = spec.data.dataset, data_job_name(spec.data.dataset)
        prefix = dataset.split(".")[0]
        if data_from == "download":
            raw = manifest.latest(f"{prefix}.ohlcv.daily")
            plan = plans.setdefault(name, DataPlan(name, _symbol(raw, prefix)))
            plan.datasets[dataset] = None
            continue
        if data_dir is None:
            raise DataError(
                f"dataset {dataset}: no local data directory to ship it from; "
                f"{_ways_out(dataset, Path('data'))}"
            )
        entry, files, symbol = _local_dataset(manifest, dataset, spec.data.sha256, data_dir)
        plan = plans.setdefault(name, DataPlan(name, symbol))
        _add_files(plan, files, dataset=dataset, where=data_dir / MANIFEST_NAME)
        plan.datasets[dataset] = entry.sha256
        _check_size(plan)
    return plans


def _add_files(plan: DataPlan, files: dict[str, bytes], *, dataset: str, where: Path) -> None:
    """One ticker's data Job ships one copy of each snapshot: its datasets must share them."""
    for file, data in files.items():
        if plan.files.setdefault(file, data) != data:
            others = ", ".join(d for d in plan.datasets if d != dataset)
            raise DataError(
                f"{where}: {others} and {dataset} were built from different {file}; one data "
                "Job builds a ticker's datasets from one set of bars: build them together "
                "(`finscale data build` naming every kind with --kind)"
            )


def pinned(spec: StudySpec, plans: dict[str, DataPlan]) -> StudySpec:
    """The study spec pinned to the version its data Job must build (unchanged for a
    download: the worker pins the one it finds when it creates the study)."""
    plan = plans.get(data_job_name(spec.data.dataset))
    digest = plan.datasets.get(spec.data.dataset) if plan is not None else None
    if digest is None:
        return spec
    return spec.model_copy(update={"data": spec.data.model_copy(update={"sha256": digest})})


def config_map_data(plan: DataPlan) -> dict[str, str]:
    """The shipped files as a ConfigMap's binaryData (base64)."""
    return {n: base64.b64encode(d).decode("ascii") for n, d in sorted(plan.files.items())}
