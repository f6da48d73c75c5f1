"""Optuna storage: URLs, credentials, retries, locks, and opening the storage.

This module alone opens Optuna storage; every other module gets an `RDBStorage` from here and
runs its storage calls through `with_retries`: transient errors (unreachable, restarting, a cut
connection) are retried until a deadline, permanent refusals (authentication, a missing database,
a bad URL) are raised at once as `StorageConfigError` (docs/reliability.md). Writers open the
storage with `open_storage`, which creates Optuna's tables; readers with `open_for_reading`,
which creates nothing. What must not race between workers runs under a lock of this module (a
PostgreSQL advisory lock, or a file lock next to an SQLite file), except trial reservations,
which on PostgreSQL hold the study row's lock in their own transaction (`hpo/trial_budget.py`).
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import socket
import sqlite3
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import URL, make_url

from finscale import defaults
from finscale.errors import StorageConfigError, StorageUnavailableError
from finscale.hpo.locks import exclusive
from finscale.redaction import mask_secrets, remove_at_exit
from finscale.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean "the database did not answer" (down, restarting, failing over, a dropped
# connection), as opposed to a bug or a refusal. Optuna wraps them in StorageInternalError
# ("invalid data in the commit"), so the exception chain is what decides.
_CONNECTION_ERRORS = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
)

# Refusals that waiting cannot fix, in the words of libpq and SQLite: libpq gives the errors of
# a failed connection no SQLSTATE, so the server's words are all there is.
_PERMANENT = re.compile(
    "|".join(
        (
            r'database "[^"]*" does not exist',
            r'role "[^"]*" does not exist',
            r"password authentication failed",
            r"\w+ authentication failed",
            r"no password supplied",
            r"no pg_hba\.conf entry",
            r"permission denied for database",
            r"invalid connection option",
            r"invalid (integer|port|sslmode) value",
            r"invalid URI",
            r"unable to open database file",
            r"invalid port number",
            # DNS says the host does not exist (EAI_NONAME, NXDOMAIN), in psycopg's words and
            # libpq's; a temporary resolution failure (EAI_AGAIN) is retried.
            rf"failed to resolve host .*\[Errno {socket.EAI_NONAME}\]",
            r'could not translate host name "[^"]*" to address: '
            r"(Name or service not known|nodename nor servname provided, or not known)",
        )
    ),
    re.IGNORECASE,
)

# SQLite result codes (the low byte of an extended code) that waiting cannot fix, and what each
# means for the file: it is read-only, damaged, on a full disk, or no database at all.
_SQLITE_PERMANENT = {
    sqlite3.SQLITE_READONLY: "the file or its folder is read-only",
    sqlite3.SQLITE_CORRUPT: "the file is damaged (truncated or overwritten): restore it from a "
    "copy, or point FINSCALE_STORAGE_URL at another file",
    sqlite3.SQLITE_FULL: "the disk that holds it is full: free space, or point "
    "FINSCALE_STORAGE_URL at another disk",
    sqlite3.SQLITE_NOTADB: "the file is not an SQLite database (or is damaged): point "
    "FINSCALE_STORAGE_URL at a study database, or restore it from a copy",
}

# The storages finscale opens, backend → accepted drivers (None: SQLAlchemy's default).
_DRIVERS = {"postgresql": ("psycopg",), "sqlite": ("pysqlite",)}

# Retry waits: the first 0.5 s, doubling up to 10 s, each a random 50-100 % of that ("equal
# jitter": workers that failed together do not retry together). The cap keeps a recovered
# database noticed within ~10 s while N workers cost it one connection attempt per 10 s each.
_FIRST_WAIT_S = 0.5
_MAX_WAIT_S = 10.0

# Optuna's tables that must exist before a reader opens a storage (else it would create them).
_OPTUNA_TABLES = frozenset({"studies", "version_info"})


def display_url(url: str) -> str:
    """The storage URL with any password masked (`user:***@`, `?password=***`), for logs,
    messages and the report."""
    try:
        return mask_secrets(make_url(url).render_as_string(hide_password=True))
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return "<unparsable storage URL>"


def parse_url(url: str) -> URL:
    """The storage URL, parsed; `postgresql://…` means psycopg 3 (the driver finscale installs).

    Raises:
        StorageConfigError: the URL does not parse, or names a backend or driver finscale does
            not open.
    """
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # a port that is no number: ValueError
        raise StorageConfigError(
            f"storage URL {display_url(url)} does not parse; expected "
            "postgresql+psycopg://USER@HOST:PORT/DATABASE or sqlite:///PATH"
        ) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in _DRIVERS:
        raise StorageConfigError(
            f"storage URL {display_url(url)}: unsupported backend {backend!r}; expected "
            "postgresql:// or sqlite:///"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif driver not in _DRIVERS[backend]:
        raise StorageConfigError(
            f"storage URL {display_url(url)}: unsupported driver {driver!r}; finscale opens "
            f"{backend} with {' or '.join(_DRIVERS[backend])}"
        )
    if backend == "sqlite" and _in_memory(parsed):
        raise StorageConfigError(
            f"storage URL {display_url(url)}: an in-memory SQLite database lives and dies with "
            "one process, and a study is shared by its workers; give a file: sqlite:///PATH"
        )
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise StorageConfigError(
            f"storage URL {display_url(url)}: port {parsed.port} is not in 1-65535"
        )
    return parsed


def _in_memory(parsed: URL) -> bool:
    """Whether an SQLite URL names an in-memory database (`sqlite://`, `sqlite:///:memory:`,
    or a `file:` URI in memory mode)."""
    database = parsed.database or ""
    mode = parsed.query.get("mode")
    return database in ("", ":memory:") or database.startswith("file::memory:") or mode == "memory"


def normalize_url(url: str) -> str:
    """The URL as finscale opens it (see `parse_url`), password included."""
    return parse_url(url).render_as_string(hide_password=False)


def private_pgpassfile(environ: dict[str, str] | None = None) -> Path | None:
    """Make `PGPASSFILE` usable by libpq when it is group-readable.

    libpq ignores a password file that its group may read, but a Kubernetes Secret volume can
    only be read by a non-root worker through the pod's group (files belong to root). The file
    is copied once to a private temporary file (mode 0600, this user's) and `PGPASSFILE` points
    there; the copy is deleted when this process ends (normally, by an exception or by SIGTERM).
    Nothing is done when the file is already private or absent.

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
    remove_at_exit(Path(name))
    with os.fdopen(fd, "wb") as copy:  # mkstemp creates it with mode 0600
        copy.write(source.read_bytes())
    env["PGPASSFILE"] = name
    log.debug("PGPASSFILE %s is group-readable; using a private copy", source)
    return Path(name)


# --- classifying and retrying storage errors ---


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, the driver errors it wraps (`.orig`) and its causes and contexts."""
    seen: set[int] = set()
    queue: list[BaseException | None] = [error]
    while queue:
        e = queue.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None)
        queue += [orig if isinstance(orig, BaseException) else None, e.__cause__, e.__context__]


def classify(error: BaseException) -> Literal["transient", "permanent"] | None:
    """What a storage error means: `transient` (unreachable, restarting, a dropped connection:
    retry), `permanent` (authentication, a missing database or role, a bad URL: retrying cannot
    help), or None (not a storage outage: a bug, or Optuna refusing an update)."""
    chain = list(_chain(error))
    if any(
        isinstance(e, sqlalchemy.exc.ArgumentError | sqlalchemy.exc.NoSuchModuleError)
        or _sqlite_problem(e) is not None
        or (isinstance(e, socket.gaierror) and e.errno == socket.EAI_NONAME)
        for e in chain
    ):
        return "permanent"
    connection = [e for e in chain if isinstance(e, _CONNECTION_ERRORS)]
    if not connection:
        return None
    if any(_PERMANENT.search(str(e)) for e in chain):
        return "permanent"
    return "transient"


def _sqlite_problem(error: BaseException) -> str | None:
    """What a permanent SQLite error says about the file (damaged, full, read-only, not a
    database), or None for any other error."""
    if not isinstance(error, sqlite3.Error):
        return None
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else _SQLITE_PERMANENT.get(code & 0xFF)


def _advice(error: BaseException) -> str:
    """What a permanent refusal means, when the driver's words do not say it: `; …` or ''."""
    for e in _chain(error):
        problem = _sqlite_problem(e)
        if problem is not None:
            return f"; {problem}"
    text = " ".join(str(e) for e in _chain(error))
    if re.search(rf"\[Errno {socket.EAI_NONAME}\]|could not translate host name", text):
        return "; DNS says that host does not exist (check the host name)"
    return ""


def cause_text(error: BaseException) -> str:
    """The innermost error's first line: the server's or driver's own words (not Optuna's
    "invalid data in the commit", which wraps every outage)."""
    chain = list(_chain(error))
    innermost = next(
        (e for e in reversed(chain) if str(e).strip()),
        error,
    )
    driver = next((getattr(e, "orig", None) for e in chain if getattr(e, "orig", None)), None)
    chosen = driver if isinstance(driver, BaseException) else innermost
    text = " ".join(str(chosen).split("\n")[0].split())
    return text or type(chosen).__name__


class Reachability:
    """Whether this process reaches the storage, and for how long it has without a failure.

    Every storage call (`with_retries`, the heartbeat thread) reports here. A worker fails a
    peer's trial as stale only when its own storage has been steady for a whole grace period:
    after an outage nobody could beat, and the owners need that long to beat again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing = False
        self._steady_since = -math.inf

    def failed(self) -> None:
        with self._lock:
            self._failing = True

    def succeeded(self) -> None:
        with self._lock:
            if self._failing:
                self._failing = False
                self._steady_since = time.monotonic()

    def steady_for_s(self) -> float:
        """Seconds since the last failure ended (infinite when none; 0 while failing)."""
        with self._lock:
            return 0.0 if self._failing else time.monotonic() - self._steady_since


# One per process: every thread's storage calls report to it.
REACHABILITY = Reachability()


def with_retries(call: Callable[[], T], *, what: str, url: str, deadline_s: float) -> T:
    """Run a storage call, retrying transient database errors until `deadline_s` has passed.

    Waits 0.5, 1, 2, 4, 8, 10, 10 … seconds, each a random 50-100 % of that, and never past the
    deadline; the last try runs at the deadline. Permanent refusals are not retried.

    Args:
        call: the storage call; it must be safe to repeat after a lost answer.
        what: what the call does, for messages ("recording a trial").
        url: the storage URL (shown with its password masked).
        deadline_s: how long to keep trying (`FINSCALE_STORAGE_DEADLINE_S`).

    Raises:
        StorageUnavailableError: the storage did not answer by the deadline; keeps the last
            error as its cause and quotes it.
        StorageConfigError: authentication failed, the database or role does not exist, or the
            URL is bad: at once, quoting the server.
    """
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            result = call()
        except Exception as e:
            kind = classify(e)
            if kind is None:
                raise
            if kind == "permanent":
                raise StorageConfigError(
                    f"storage {display_url(url)} refused {what}: {cause_text(e)}{_advice(e)}"
                ) from e
            REACHABILITY.failed()
            elapsed = time.monotonic() - started
            left = deadline_s - elapsed
            if left <= 0:
                raise StorageUnavailableError(
                    f"storage {display_url(url)} unreachable: {what} failed for {elapsed:.0f}s "
                    f"({attempt} tries; deadline {deadline_s:g}s, FINSCALE_STORAGE_DEADLINE_S); "
                    f"last error: {cause_text(e)}"
                ) from e
            wait = min(left, min(_MAX_WAIT_S, _FIRST_WAIT_S * 2 ** (attempt - 1)))
            wait *= random.uniform(0.5, 1.0) if wait < left else 1.0
            log.warning(
                "%s failed (%s); try %d, %.0fs of %gs spent; next in %.1fs",
                what, cause_text(e), attempt, elapsed, deadline_s, wait,
            )  # fmt: skip
            time.sleep(wait)
            continue
        REACHABILITY.succeeded()
        return result


def _engine_kwargs(parsed: URL) -> dict[str, Any]:
    if parsed.get_backend_name() == "postgresql":
        # A small pool: the main loop, the heartbeat thread and the lock connection.
        return {
            "pool_pre_ping": True,
            "pool_size": 3,
            "max_overflow": 2,
            "pool_recycle": 300,
            "connect_args": {"connect_timeout": 10},
        }
    return {"connect_args": {"timeout": 60}}


def open_storage(
    url: str,
    *,
    heartbeat_interval_s: int,
    heartbeat_grace_s: int,
    max_retries: int,
    deadline_s: float = defaults.STORAGE_DEADLINE_S,
) -> RDBStorage:
    """An RDB storage with heartbeats and same-parameter retries of stale trials, for workers:
    creates Optuna's tables (and an SQLite file) when missing.

    Args:
        url: `postgresql+psycopg://user@host:5432/db` (the password comes from libpq's
            `PGPASSFILE`/`PGPASSWORD`) or `sqlite:///path`.
        heartbeat_interval_s: seconds between heartbeats of a running trial.
        heartbeat_grace_s: silence after which a running trial is failed as stale.
        max_retries: reruns of a stale trial with the same parameters.
        deadline_s: how long to retry a database that does not answer.

    Raises:
        StorageConfigError: a bad URL, authentication failure, missing database (exit 2).
        StorageUnavailableError: the database did not answer by the deadline (exit 3).
    """
    parsed = parse_url(url)
    url = parsed.render_as_string(hide_password=False)
    if parsed.get_backend_name() == "postgresql":
        private_pgpassfile()
    else:
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)

    def connect() -> RDBStorage:
        # Workers starting together on an empty database would all create Optuna's tables.
        with exclusive(url, "schema"), warnings.catch_warnings():
            # Heartbeats and stale-trial reruns are experimental in Optuna; they are what we want.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(parsed),
                heartbeat_interval=heartbeat_interval_s,
                grace_period=heartbeat_grace_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=max_retries
                ),
            )

    _optuna_logs_through_ours()
    return with_retries(connect, what="opening the storage", url=url, deadline_s=deadline_s)


def _optuna_logs_through_ours() -> None:
    """Optuna's warnings (nothing below) go through finscale's logging, not Optuna's own
    handler: one format (a worker's JSON lines), with passwords masked."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def _tables(url: str, parsed: URL) -> set[str]:
    """The tables of the database, read without creating anything."""
    engine = sqlalchemy.create_engine(
        url, poolclass=sqlalchemy.pool.NullPool, **{
            k: v for k, v in _engine_kwargs(parsed).items() if k == "connect_args"
        }
    )  # fmt: skip
    try:
        return set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def open_for_reading(settings: Settings) -> RDBStorage | None:
    """The configured storage, for readers (status, report, `train --trial`): no heartbeats, no
    reruns, and nothing created. None when there is nothing to read: an SQLite file that does
    not exist, or a database without Optuna's tables (a reader would otherwise create them).

    Raises:
        StorageConfigError: a bad URL, authentication failure, missing database (exit 2).
        StorageUnavailableError: the database did not answer by the deadline (exit 3).
    """
    parsed = parse_url(settings.storage_url)
    url = parsed.render_as_string(hide_password=False)
    file = parsed.database or ""
    if parsed.get_backend_name() == "sqlite":
        if file in ("", ":memory:") or not Path(file).is_file():
            return None
    else:
        private_pgpassfile()
    deadline = settings.storage_deadline_s
    tables = with_retries(
        lambda: _tables(url, parsed), what="listing tables", url=url, deadline_s=deadline
    )
    if not _OPTUNA_TABLES.issubset(tables):
        return None

    def connect() -> RDBStorage:
        _optuna_logs_through_ours()
        return RDBStorage(url, engine_kwargs=_engine_kwargs(parsed), skip_table_creation=True)

    return with_retries(connect, what="opening the storage", url=url, deadline_s=deadline)
