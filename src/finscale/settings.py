"""Where and how this process runs: the `FINSCALE_*` environment.

Settings never enter a study's fingerprint (that is the spec's job). Build one `Settings` in the
CLI and pass it down; tests pass keywords, which outrank the environment.

| variable | default | meaning |
|---|---|---|
| `FINSCALE_DATA_DIR` | `data` | built datasets, raw snapshots and `manifest.json` |
| `FINSCALE_SAMPLE_DIR` | (the shipped sample) | holds `GSPC.csv.gz`, `IXIC.csv.gz`, `VIX.csv.gz` |
| `FINSCALE_LOG_LEVEL` | `INFO` | `DEBUG`, `INFO`, `WARNING` or `ERROR` |
| `FINSCALE_STORAGE_URL` | `sqlite:///runs/finscale.db` | Optuna storage (no password in it) |
| `FINSCALE_DEVICE` | `auto` | `auto` (CUDA when present), `cpu` or `cuda` |
| `FINSCALE_HEARTBEAT_INTERVAL_S` | `30` | seconds between a running trial's heartbeats |
| `FINSCALE_HEARTBEAT_GRACE_S` | `120` | silence before a running trial is stale (≥ 2 × interval) |
| `FINSCALE_STORAGE_DEADLINE_S` | `300` | how long a storage call is retried (then exit 3) |
| `FINSCALE_POLL_INTERVAL_S` | `5` | how often an idle worker looks for work |
| `FINSCALE_MEMORY_SHARE` | `1` | share of the device's memory a worker plans within |
| `FINSCALE_RUNS_DIR` | `runs` | local runs: worker logs and the default report folder |
| `FINSCALE_ALLOW_CODE_CHANGE` | `false` | join a study created by other finscale code (a warning) |

The Postgres password never appears in a URL: libpq reads it from `PGPASSFILE` or `PGPASSWORD`.

Every value is checked when the settings are built (`load_settings`): a malformed one is a
`SettingsError` (exit 2) naming the variable and its value, one line each.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finscale import defaults
from finscale.errors import SettingsError
from finscale.redaction import mask_secrets

ENV_PREFIX = "FINSCALE_"

# Variables finscale once read under another name: a warning says what replaced them.
RENAMED = {"FINSCALE_STORAGE_ATTEMPTS": "FINSCALE_STORAGE_DEADLINE_S"}

# The storages finscale opens: PostgreSQL through psycopg 3, and SQLite. Checked here by the
# URL's scheme alone (importing sqlalchemy would slow every command); `finscale.hpo.storage`
# parses the rest when it opens the storage.
STORAGE_SCHEME = re.compile(r"^(postgresql(\+psycopg)?|sqlite(\+pysqlite)?)://")
# An SQLite file under the home folder: `~` is expanded once, here (SQLite would not).
_SQLITE_HOME = re.compile(r"^(sqlite(?:\+pysqlite)?:///)(~[^/]*)")
# Values quoted in messages are cut to this many characters.
_QUOTE_LIMIT = 200

# Variables with the prefix that are read elsewhere on purpose (the test suite), not settings.
_NOT_SETTINGS = frozenset(
    {
        "FINSCALE_TEST_DATABASE_URL",
        "FINSCALE_TEST_POSTGRES_IMAGE",
        "FINSCALE_REQUIRE_ALL_TESTS",
        "FINSCALE_PARENT_PID",  # set by `finscale run` and a pod for their workers
    }
)


class Settings(BaseSettings):
    """The process environment of finscale (prefix `FINSCALE_`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=Path("data"),
        description="Folder of built datasets, raw snapshots and the data manifest.",
    )
    sample_dir: Path | None = Field(
        default=None,
        description="Folder with the sample files GSPC.csv.gz, IXIC.csv.gz and VIX.csv.gz; "
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
    heartbeat_interval_s: int = Field(
        default=30, ge=1, le=3600, description="Seconds between heartbeats (at most an hour)."
    )
    heartbeat_grace_s: int = Field(
        default=120,
        ge=2,
        le=86400,
        description="Silence after which a running trial counts as dead; at least twice the "
        "interval, so that one missed beat never fails a live trial.",
    )
    storage_deadline_s: float = Field(
        default=defaults.STORAGE_DEADLINE_S,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        description="How long one storage call is retried (jittered backoff) before the worker "
        "gives up with exit 3: long enough to ride out a PostgreSQL restart or failover.",
    )
    poll_interval_s: float = Field(
        default=5.0, gt=0, le=3600, allow_inf_nan=False, description="Idle worker's polling period."
    )
    memory_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Share of the device's memory (or the container's) a worker plans within; "
        "a pod running N worker processes gives each 1/N.",
    )
    runs_dir: Path = Field(
        default=Path("runs"),
        description="Local runs: worker logs (<runs>/<study>/run-<id>/worker-<i>.log) and the "
        "default report folder (<runs>/report). The default SQLite file is a separate setting.",
    )

    allow_code_change: bool = Field(
        default=False,
        description="Let a worker join a study that other finscale code created (its source "
        "digest differs, `finscale.identity`), with a warning instead of exit 2.",
    )

    study_per_build: bool = Field(
        default=False,
        description="A dev loop's worker: run the study of this build, not the spec's own: "
        "experiment `<experiment>-<8 hex>` (and its study named after it), the hex digits a "
        "digest of the code and the study's search definition, so that every change of either "
        "gets a fresh study and a rebuild of the same code rejoins its own.",
    )

    @field_validator("data_dir", "runs_dir", "sample_dir", "storage_url", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("data_dir", "runs_dir", "sample_dir")
    @classmethod
    def _home_expanded(cls, path: Path | None) -> Path | None:
        """`~` and `~user` are expanded once, here: every later use sees the real folder."""
        return None if path is None else path.expanduser()

    @field_validator("storage_url")
    @classmethod
    def _supported_storage(cls, url: str) -> str:
        if not STORAGE_SCHEME.match(url):
            scheme = url.split("://", 1)[0] if "://" in url else "(none)"
            raise ValueError(
                f"unsupported storage URL scheme {scheme!r}; expected postgresql:// "
                "(postgresql+psycopg://) or sqlite:///PATH"
            )
        home = _SQLITE_HOME.match(url)
        if home:
            url = home.group(1) + str(Path(home.group(2)).expanduser()) + url[home.end() :]
        return url

    @model_validator(mode="after")
    def _grace_covers_missed_beats(self) -> Settings:
        if self.heartbeat_grace_s < 2 * self.heartbeat_interval_s:
            raise ValueError(
                f"FINSCALE_HEARTBEAT_GRACE_S ({self.heartbeat_grace_s}) must be at least twice "
                f"FINSCALE_HEARTBEAT_INTERVAL_S ({self.heartbeat_interval_s}): with less, one "
                "late heartbeat lets a peer fail a live trial"
            )
        return self


def _describe(error: ValidationError) -> str:
    """One line per bad value: the variable, the value given and what is wrong."""
    lines = []
    for problem in error.errors():
        loc = [str(p) for p in problem["loc"]]
        message = str(problem["msg"]).removeprefix("Value error, ")
        if not loc:  # a rule across fields: its message names them
            lines.append(message)
            continue
        variable = ENV_PREFIX + "__".join(loc).upper()
        value = problem.get("input")
        if isinstance(value, str):
            value = mask_secrets(value)
            if len(value) > _QUOTE_LIMIT:
                value = f"{value[:_QUOTE_LIMIT]}…"
        lines.append(f"{variable}={value!r}: {message}")
    return "\n".join(lines)


def load_settings(**values: Any) -> Settings:
    """The settings of this process: `values`, then the `FINSCALE_*` environment.

    Raises:
        SettingsError: a value is malformed or out of range; one line per value, naming the
            variable and what it was given.
    """
    try:
        return Settings(**values)
    except ValidationError as e:
        raise SettingsError(_describe(e)) from None


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
        and key.upper() not in known
        and key.upper() not in _NOT_SETTINGS
    )


def check_folder(path: Path, variable: str) -> None:
    """Refuse, before anything is created, a folder this process could not create or write
    into: a path through a file (`/dev/null/runs`), or a folder without write permission.

    Raises:
        SettingsError: names the variable, its value and the part of the path at fault.
    """
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:  # a relative path in a folder that vanished: nothing to check
        return
    if not existing.is_dir():
        raise SettingsError(
            f"{variable}={str(path)!r}: {existing} is not a folder, so {path} cannot be one"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SettingsError(f"{variable}={str(path)!r}: {existing} is not writable by this user")
