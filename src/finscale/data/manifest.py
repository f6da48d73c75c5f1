"""The data manifest: what each built file is, where it came from, and its sha256.

`<data dir>/manifest.json` is append-only: a rebuild that changes a dataset adds an entry, one
that reproduces it adds nothing. Verification (`finscale.data.integrity`) checks the latest entry
of every name (older entries describe files that newer builds may have replaced; they stay for
the record). Paths are relative to the data directory, and inside it, so a copied or mounted data
directory stays valid and no entry reads a file elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finscale.errors import DataError

MANIFEST_NAME = "manifest.json"
# A raw snapshot shipped on its own (what `finscale render` puts in a data Job's ConfigMap and
# `data build --source snapshot` reads): `<raw name>.parquet`, e.g. `IXIC.ohlcv.daily.parquet`.
SNAPSHOT_SUFFIX = ".parquet"
SCHEMA_VERSION: Literal[1] = 1
# Built data is read by other users: an image builds it as root and runs as uid 10001; a data Job
# writes the shared volume that every worker pod reads. Its modes never depend on the umask.
FILE_MODE = 0o644
DIR_MODE = 0o755

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class InputRef(BaseModel):
    """One input a file was built from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Manifest name of the input, or the source's own name.")
    sha256: str = Field(description="sha256 of the input's bytes.")
    origin: str = Field(
        description="Where the input was read: a file, a sample file, yfinance:SPY."
    )
    symbol: str | None = Field(
        default=None,
        description="The market symbol exactly as given (`^IXIC`), of a series read from a "
        "source; the file names use its file-safe form (`IXIC`).",
    )


class ManifestEntry(BaseModel):
    """One built file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Dataset name, `<TICKER>.<kind>.<tier>` (e.g. GSPC.dataset.a25).")
    kind: Literal["raw", "dataset"] = Field(
        description="A validated source snapshot, or a dataset."
    )
    path: str = Field(description="File path relative to the data directory, inside it.")
    sha256: str = Field(description="sha256 of the file's bytes.", pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0, description="File size.")
    rows: int = Field(ge=0, description="Number of rows.")
    columns: list[str] = Field(description="Column names in file order.")
    start: date = Field(description="First date.")
    end: date = Field(description="Last date.")
    lookback_rows: int = Field(
        default=0, ge=0, description="Rows of history the longest feature window reads."
    )
    inputs: list[InputRef] = Field(default_factory=list, description="What it was built from.")
    code_version: str = Field(description="finscale version and feature pipeline version.")
    created_at: datetime = Field(description="When the entry was written (UTC).")

    @field_validator("path")
    @classmethod
    def _inside_the_data_directory(cls, path: str) -> str:
        parts = PurePosixPath(path).parts
        if not parts or path.startswith(("/", "~")) or "\\" in path or ".." in parts:
            raise ValueError(f"{path[:200]!r} is not a path inside the data directory")
        return path

    def file(self, data_dir: Path) -> Path:
        """The entry's file in `data_dir`.

        Raises:
            DataError: a link on the way leads outside `data_dir`.
        """
        path = data_dir / self.path
        if not path.resolve().is_relative_to(data_dir.resolve()):
            raise DataError(
                f"{data_dir / MANIFEST_NAME}: {self.name}: path {self.path!r} leads to "
                f"{path.resolve()}, outside the data directory"
            )
        return path


class Manifest(BaseModel):
    """All entries, oldest first."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    entries: list[ManifestEntry] = Field(default_factory=list)

    def latest(self, name: str) -> ManifestEntry | None:
        """The newest entry of `name`, if any."""
        for entry in reversed(self.entries):
            if entry.name == name:
                return entry
        return None

    def find(self, name: str, sha256: str) -> ManifestEntry | None:
        """The newest entry of `name` with this sha256 (a full digest or a prefix of 8+)."""
        for entry in reversed(self.entries):
            if entry.name == name and entry.sha256.startswith(sha256):
                return entry
        return None

    def names(self) -> list[str]:
        """Every name, in order of first appearance."""
        return list(dict.fromkeys(entry.name for entry in self.entries))

    def datasets(self) -> list[str]:
        """The names of the datasets (`TICKER.dataset.KIND`), not of the series they are built
        from, in order of first appearance."""
        return [n for n in self.names() if ".dataset." in n]


def make_data_dir(path: Path) -> None:
    """Create a data folder (and its missing parents) that every user can read; folders that
    already exist keep their modes."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for folder in reversed(missing):
        folder.chmod(DIR_MODE)


def read_manifest(data_dir: Path) -> Manifest:
    """The manifest of a data directory (empty when there is none yet).

    Raises:
        DataError: the file exists but is not a valid manifest.
    """
    path = data_dir / MANIFEST_NAME
    if not path.exists():
        return Manifest()
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DataError(f"{path}: not a valid data manifest: {where}: {first['msg']}") from None


def find_dataset(data_dir: Path, name: str, *, sha256: str | None = None) -> ManifestEntry:
    """The manifest entry of dataset `name`, whose file is there, without reading the dataset:
    what a worker joining a study needs (its version and columns) before it loads the rows.

    Args:
        data_dir: the data directory holding `manifest.json`.
        name: the dataset name (`GSPC.dataset.a25`).
        sha256: a version (the full digest or a prefix of 8+ characters); the latest when omitted.

    Raises:
        DataError: the name or version is not in the manifest, or its file is missing.
    """
    manifest = read_manifest(data_dir)
    entry = manifest.find(name, sha256) if sha256 else manifest.latest(name)
    if entry is None:
        known = ", ".join(n for n in manifest.names() if ".dataset." in n) or "none"
        version = f" with sha256 {sha256}" if sha256 else ""
        raise DataError(
            f"{data_dir / 'manifest.json'}: no dataset {name!r}{version} (datasets: {known}); "
            "build it with `finscale data build`"
        )
    path = entry.file(data_dir)
    if not path.is_file():
        raise DataError(f"{path}: missing (dataset {name}); rebuild it with `finscale data build`")
    return entry


def write_manifest(manifest: Manifest, data_dir: Path) -> Path:
    """Write the manifest atomically (a reader sees the old or the new file, never half), readable
    by every user (mode 0644)."""
    make_data_dir(data_dir)
    path = data_dir / MANIFEST_NAME
    # No nulls: an input without a recorded symbol is written as before the field existed.
    text = json.dumps(manifest.model_dump(mode="json", exclude_none=True), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".manifest-", suffix=".json")
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp creates it 0600: unreadable to the images' user
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
