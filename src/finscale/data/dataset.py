"""Load a built dataset by name, checked against the manifest."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from finscale.data.integrity import frame_problems
from finscale.data.manifest import ManifestEntry, find_dataset, read_manifest, sha256_file
from finscale.errors import DataError


@dataclass(frozen=True)
class Dataset:
    """A dataset's rows (`Date` then the features) and its manifest entry."""

    frame: pd.DataFrame
    entry: ManifestEntry

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def sha256(self) -> str:
        return self.entry.sha256

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c != "Date"]


def load_dataset(data_dir: Path, name: str, *, sha256: str | None = None) -> Dataset:
    """Read a dataset registered in the manifest and check that it is the one registered.

    Args:
        data_dir: the data directory holding `manifest.json`.
        name: the dataset name (`GSPC.dataset.a25`).
        sha256: pin a version (the full digest or a prefix of 8+ characters); the latest entry
            of `name` when omitted.

    Raises:
        DataError: the name or version is not in the manifest; the file is missing, its sha256
            differs from the manifest's, it holds other columns, rows or dates than the
            manifest says, or a non-finite value.
    """
    entry = find_dataset(data_dir, name, sha256=sha256)
    path = entry.file(data_dir)
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise DataError(
            f"{path}: checksum mismatch for {name}: manifest has sha256 {entry.sha256}, the file "
            f"has {actual}; rebuild it with `finscale data build`"
        )
    frame = pd.read_parquet(path)
    problems = frame_problems(path, entry, frame)
    if problems:
        raise DataError(f"{problems[0]}; rebuild it with `finscale data build`")
    values = frame.drop(columns="Date").to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        row, col = (int(v[0]) for v in np.nonzero(~np.isfinite(values)))
        raise DataError(f"{path}: row {row + 1}, column {entry.columns[col + 1]!r}: not finite")
    return Dataset(frame=frame, entry=entry)


def wait_for_dataset(
    data_dir: Path,
    name: str,
    *,
    sha256: str | None = None,
    timeout_s: float = 0.0,
    poll_s: float = 10.0,
) -> Dataset:
    """Load a dataset, waiting up to `timeout_s` for it to appear (a data Job may still be
    building it). A file that exists but does not match is an error at once.

    Raises:
        DataError: the dataset did not appear in time, or does not match its sha256.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        manifest = read_manifest(data_dir)
        entry = manifest.find(name, sha256) if sha256 else manifest.latest(name)
        if entry is not None and (data_dir / entry.path).is_file():
            return load_dataset(data_dir, name, sha256=sha256)
        if time.monotonic() >= deadline:
            return load_dataset(data_dir, name, sha256=sha256)  # raises with the reason
        time.sleep(poll_s)
