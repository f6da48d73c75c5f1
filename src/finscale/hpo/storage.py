"""Optuna storage: URLs, credentials, retries, locks, and opening the storage.

This module alone opens Optuna storage; every other module gets an `RDBStorage` from here and
runs its storage calls through `with_retries`. Everything that must not race between workers
runs under a lock of this module: a PostgreSQL advisory lock, or a file lock next to an SQLite
file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import random
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import make_url

from finscale.errors import SpecError, StorageUnavailableError
from finscale.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean "the database did not answer", as opposed to a bug or a refusal.
_TRANSIENT = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    optuna.exceptions.StorageInternalError,
)


def display_url(url: str) -> str:
    """The storage URL with any password masked, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<unparsable storage URL>"


def normalize_url(url: str) -> str:
    """`postgresql://…` means psycopg 3 (the driver finscale installs), not psycopg2."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def private_pgpassfile(environ: dict[str, str] | None = None) -> Path | None:
    """Make `PGPASSFILE` usable by libpq when it is group-readable.

    libpq ignores a password file that its group may read, but a Kubernetes Secret volume can
    only be read by a non-root worker through the pod's group (files belong to root). The file
    is copied once to a private temporary file (mode 0600, this user's) and `PGPASSFILE` points
    there. Nothing is done when the file is already private or absent.

    Returns:
        The private copy, if one was made.
    """
    env = os.environ if environ is None else environ
    given = env.get("PGPASSFILE")
    if not given:
        return None
    source = Path(given)
    try:
        mode = source.stat().st_mode
    except OSError:
        return None
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    fd, name = tempfile.mkstemp(prefix="finscale-pgpass-")
    with os.fdopen(fd, "wb") as copy:  # mkstemp creates it with mode 0600
        copy.write(source.read_bytes())
    env["PGPASSFILE"] = name
    log.debug("PGPASSFILE %s is group-readable; using a private copy", source)
    return Path(name)


def with_retries(call: Callable[[], T], *, what: str, attempts: int, url: str) -> T:
    """Run a storage call, retrying transient database errors.

    Waits 0.5, 1, 2, 4, 8 … seconds (plus up to 25 % jitter, so that workers started together
    do not retry in step).

    Raises:
        StorageUnavailableError: every attempt failed; keeps the last error as its cause.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except _TRANSIENT as e:
            if attempt == attempts:
                raise StorageUnavailableError(
                    f"storage {display_url(url)} unreachable: {what} failed {attempts} times; "
                    f"last error: {_first_line(e)}"
                ) from e
            wait = 0.5 * 2 ** (attempt - 1) * (1 + random.uniform(0, 0.25))
            log.warning(
                "%s failed (%s); retry %d/%d in %.1fs",
                what,
                _first_line(e),
                attempt,
                attempts - 1,
                wait,
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def open_storage(
    url: str,
    *,
    heartbeat_interval_s: int,
    heartbeat_grace_s: int,
    max_retries: int,
    attempts: int = 6,
) -> RDBStorage:
    """An RDB storage with heartbeats and same-parameter retries of stale trials.

    Args:
        url: `postgresql+psycopg://user@host:5432/db` (the password comes from libpq's
            `PGPASSFILE`/`PGPASSWORD`) or `sqlite:///path`.
        heartbeat_interval_s: seconds between heartbeats of a running trial.
        heartbeat_grace_s: silence after which a running trial is failed as stale.
        max_retries: reruns of a stale trial with the same parameters.
        attempts: tries before giving up.

    Raises:
        SpecError: the URL is neither Postgres nor SQLite.
        StorageUnavailableError: the database did not answer.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        private_pgpassfile()
        # A small pool: the main loop, the heartbeat thread and the lock connection.
        engine_kwargs: dict[str, Any] = {
            "pool_pre_ping": True,
            "pool_size": 3,
            "max_overflow": 2,
            "pool_recycle": 300,
            "connect_args": {"connect_timeout": 10},
        }
    elif backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        raise SpecError(f"storage URL {display_url(url)}: expected postgresql:// or sqlite:///")

    def connect() -> RDBStorage:
        # Workers starting together on an empty database would all create Optuna's tables.
        with exclusive(url, "schema"), warnings.catch_warnings():
            # Heartbeats and stale-trial reruns are experimental in Optuna; they are what we want.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval_s,
                grace_period=heartbeat_grace_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=max_retries
                ),
            )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return with_retries(connect, what="opening the storage", attempts=attempts, url=url)


def open_for_reading(settings: Settings) -> RDBStorage | None:
    """The configured storage, for readers (status, report, replay): no reruns of stale
    trials. None when it is an SQLite file that does not exist: reading never creates one.

    Raises:
        StorageUnavailableError: the database did not answer.
    """
    parsed = make_url(settings.storage_url)
    file = parsed.database or ""
    is_file = parsed.get_backend_name() == "sqlite" and file not in ("", ":memory:")
    if is_file and not Path(file).exists():
        return None
    return open_storage(
        settings.storage_url,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        heartbeat_grace_s=settings.heartbeat_grace_s,
        max_retries=0,
        attempts=settings.storage_attempts,
    )


# --- locks ---


@contextlib.contextmanager
def _advisory_lock(engine: sqlalchemy.engine.Engine, name: str) -> Iterator[None]:
    """A Postgres session advisory lock on a connection of its own (the server releases it if
    the process dies)."""
    key = int.from_bytes(
        hashlib.sha256(f"finscale:{name}".encode()).digest()[:8], "big", signed=True
    )
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_MEMORY_LOCK = threading.Lock()


@contextlib.contextmanager
def exclusive(
    url: str, name: str, engine: sqlalchemy.engine.Engine | None = None
) -> Iterator[None]:
    """Only one process at a time runs the block for this database and name.

    Postgres: an advisory lock. SQLite: a lock on `<database>.lock`. In-memory SQLite: a
    process-wide lock.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        own = engine is None
        engine = engine or sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with _advisory_lock(engine, name):
                yield
        finally:
            if own:
                engine.dispose()
        return
    database = parsed.database or ""
    if not database or database == ":memory:":
        with _MEMORY_LOCK:
            yield
        return
    with _file_lock(f"{database}.lock"):
        yield


def study_lock(storage: RDBStorage, study_name: str) -> contextlib.AbstractContextManager[None]:
    """Hold the study's lock: only one worker at a time runs the block."""
    return exclusive(storage.url, f"study:{study_name}", storage.engine)
