"""Locks on a study's storage: one process at a time creates a study or, on SQLite, reserves
a trial (PostgreSQL: an advisory lock the server releases if its holder dies; SQLite: a file
lock beside the database)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import threading
from collections.abc import Iterator

import sqlalchemy
from optuna.storages import RDBStorage
from sqlalchemy.engine import make_url


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


def reservation_lock(
    storage: RDBStorage, study_name: str
) -> contextlib.AbstractContextManager[None]:
    """What a trial reservation holds besides its own transaction: nothing on PostgreSQL, whose
    transaction takes the study row's lock; the study's lock on SQLite, which has no row locks."""
    if storage.engine.dialect.name == "postgresql":
        return contextlib.nullcontext()
    return study_lock(storage, study_name)
