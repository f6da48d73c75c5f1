"""Where and how this process runs: the `FINSCALE_*` environment.

Settings never enter a study's fingerprint (that is the spec's job). Build one `Settings` in the
CLI and pass it down; tests pass keywords, which outrank the environment.

| variable | default | meaning |
|---|---|---|
| `FINSCALE_DATA_DIR` | `data` | built datasets, raw snapshots and `manifest.json` |
| `FINSCALE_SAMPLE_DIR` | (the shipped sample) | folder holding `GSPC.csv.gz` and `VIX.csv.gz` |
| `FINSCALE_LOG_LEVEL` | `INFO` | `DEBUG`, `INFO`, `WARNING` or `ERROR` |
| `FINSCALE_STORAGE_URL` | `sqlite:///runs/finscale.db` | Optuna storage (no password in it) |
| `FINSCALE_DEVICE` | `auto` | `auto` (CUDA when present), `cpu` or `cuda` |
| `FINSCALE_HEARTBEAT_INTERVAL_S` | `30` | seconds between a running trial's heartbeats |
| `FINSCALE_HEARTBEAT_GRACE_S` | `120` | silence after which a running trial is stale |
| `FINSCALE_STORAGE_ATTEMPTS` | `6` | tries of a storage call before giving up (exit 3) |
| `FINSCALE_POLL_INTERVAL_S` | `5` | how often an idle worker looks for work |
| `FINSCALE_RUNS_DIR` | `runs` | local runs: worker logs (and the default SQLite file) |

The Postgres password never appears in a URL: libpq reads it from `PGPASSFILE` or `PGPASSWORD`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FINSCALE_"

# Variables with the prefix that are read elsewhere on purpose (the test suite), not settings.
_NOT_SETTINGS = frozenset(
    {"FINSCALE_TEST_DATABASE_URL", "FINSCALE_TEST_POSTGRES_IMAGE", "FINSCALE_REQUIRE_ALL_TESTS"}
)


class Settings(BaseSettings):
    """The process environment of finscale (prefix `FINSCALE_`, `__` for nested groups)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", frozen=True
    )

    data_dir: Path = Field(
        default=Path("data"),
        description="Folder of built datasets, raw snapshots and the data manifest.",
    )
    sample_dir: Path | None = Field(
        default=None,
        description="Folder with the sample files GSPC.csv.gz and VIX.csv.gz; "
        "unset: the copy shipped with finscale.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Threshold of the log messages finscale prints."
    )
    storage_url: str = Field(
        default="sqlite:///runs/finscale.db",
        description="Optuna storage: postgresql+psycopg://user@host/db (no password) or sqlite:///file.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where trials train: auto picks CUDA when present."
    )
    heartbeat_interval_s: int = Field(default=30, ge=1, description="Seconds between heartbeats.")
    heartbeat_grace_s: int = Field(
        default=120, ge=1, description="Silence after which a running trial counts as dead."
    )
    storage_attempts: int = Field(
        default=6, ge=1, description="Tries of a storage call before the worker gives up."
    )
    poll_interval_s: float = Field(default=5.0, gt=0, description="Idle worker's polling period.")
    runs_dir: Path = Field(default=Path("runs"), description="Local run logs and SQLite file.")


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """`FINSCALE_*` variables that no setting reads: most likely typos, worth a warning.

    Args:
        environ: the environment to inspect; the process environment when omitted.

    Returns:
        The unknown variable names, sorted.
    """
    env = os.environ if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(
        key
        for key in env
        if key.upper().startswith(ENV_PREFIX)
        and key.upper().split("__")[0] not in known
        and key.upper() not in _NOT_SETTINGS
    )
