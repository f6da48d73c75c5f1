"""Verifying the data manifest: every field that matters of every latest entry, against its file
and against the code.

`finscale data verify` checks, for the latest entry of every name: the file is there, inside the
data directory (`ManifestEntry.path` refuses any other), of the recorded size and sha256, and
holds the recorded rows, columns, first and last date; and the entry's `lookback_rows` (the
default embargo between training and evaluation windows) is the one its kind's features read.
An edited entry cannot pass for the file it describes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from finscale.data.manifest import MANIFEST_NAME, ManifestEntry, read_manifest, sha256_file
from finscale.errors import DataError
from finscale.tiers import DATASETS


def expected_lookback(entry: ManifestEntry) -> int:
    """The lookback an entry must record: its kind's longest feature window for a dataset,
    none for a raw snapshot."""
    if entry.kind == "raw":
        return 0
    from finscale.data.features import lookback_rows  # TA-Lib: only when verifying

    kind = entry.name.partition(".dataset.")[2]
    if kind not in DATASETS:
        raise DataError(f"{entry.name}: a dataset of no known kind ({', '.join(DATASETS)})")
    return lookback_rows(kind)


def frame_problems(path: Path, entry: ManifestEntry, frame: pd.DataFrame) -> list[str]:
    """What the rows of a file contradict in its entry: rows, columns, first and last date."""
    problems = []
    if list(frame.columns) != entry.columns:
        problems.append(
            f"{path}: columns {list(frame.columns)} differ from the manifest's {entry.columns}"
        )
    if len(frame) != entry.rows:
        problems.append(f"{path}: {len(frame)} rows, but the manifest says rows={entry.rows}")
    if len(frame) and "Date" in frame:
        first, last = (pd.Timestamp(frame["Date"].iloc[i]).date() for i in (0, -1))
        if (first, last) != (entry.start, entry.end):
            problems.append(
                f"{path}: dates {first} .. {last}, but the manifest says start={entry.start}, "
                f"end={entry.end}"
            )
    return problems


def entry_problems(data_dir: Path, entry: ManifestEntry) -> list[str]:
    """Every way an entry and its file disagree; empty when they agree.

    Raises:
        DataError: the entry names a dataset of no known kind, or a link leads its path outside
            the data directory.
    """
    path = entry.file(data_dir)
    where = f"{data_dir / MANIFEST_NAME}: {entry.name}"
    if not path.is_file():
        return [f"{path}: missing (latest entry of {entry.name})"]
    actual = sha256_file(path)
    if actual != entry.sha256:
        return [
            f"{path}: checksum mismatch for {entry.name}: manifest has sha256 {entry.sha256}, "
            f"the file has {actual}"
        ]
    size = path.stat().st_size
    if size != entry.size_bytes:
        return [f"{where}: size_bytes={entry.size_bytes}, but the file has {size} bytes"]
    problems = frame_problems(path, entry, pd.read_parquet(path))
    lookback = expected_lookback(entry)
    if entry.lookback_rows != lookback:
        problems.append(
            f"{where}: lookback_rows={entry.lookback_rows}, but its features read {lookback} "
            "rows back (the default embargo); rebuild it with `finscale data build`"
        )
    return problems


def verify_manifest(data_dir: Path) -> list[str]:
    """Check the latest entry of every name (`entry_problems`).

    Returns:
        One message per problem (empty when everything matches).

    Raises:
        DataError: the manifest itself is missing or invalid.
    """
    if not (data_dir / MANIFEST_NAME).exists():
        raise DataError(
            f"{data_dir / MANIFEST_NAME}: no data manifest; build data first (finscale data build)"
        )
    manifest = read_manifest(data_dir)
    problems = []
    for name in manifest.names():
        entry = manifest.latest(name)
        assert entry is not None
        problems += entry_problems(data_dir, entry)
    return problems
