"""Storage errors by cause: a refusal that waiting cannot fix (a host DNS says does not exist,
a full disk, a damaged file) ends at once with exit 2 and one line; a fault that may pass (a
temporary DNS failure, a refused connection) is retried until the deadline."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from finscale.errors import StorageConfigError, StorageUnavailableError
from finscale.hpo import storage
from finscale.hpo.storage import classify, open_storage, with_retries


class _Resolver:
    """`socket.getaddrinfo` as a DNS server answers it: always the error `code`."""

    def __init__(self, code: int, text: str) -> None:
        self.calls = 0
        self.code, self.text = code, text

    def __call__(self, *_args: Any, **_kwargs: Any) -> Any:
        self.calls += 1
        raise socket.gaierror(self.code, self.text)


def _open(url: str, deadline_s: float) -> None:
    open_storage(
        url, heartbeat_interval_s=1, heartbeat_grace_s=2, max_retries=0, deadline_s=deadline_s
    )


def test_a_host_that_dns_says_does_not_exist_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a DNS that answers NXDOMAIN (EAI_NONAME) for the database's host,
    resolver = _Resolver(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    # when a worker opens the storage with a long deadline, it is refused on the first try,
    with pytest.raises(StorageConfigError) as raised:
        _open("postgresql://finscale@postgres.example/finscale", deadline_s=300)
    assert resolver.calls == 1
    # in one line that names the host and says what DNS said.
    message = str(raised.value)
    assert "\n" not in message
    assert "failed to resolve host 'postgres.example'" in message
    assert "DNS says that host does not exist" in message


def test_a_temporary_dns_failure_is_retried_until_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a DNS that cannot answer for now (EAI_AGAIN: no server reachable),
    resolver = _Resolver(socket.EAI_AGAIN, "Temporary failure in name resolution")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setattr(storage, "_FIRST_WAIT_S", 0.05)
    # then the storage is retried until its deadline, and reported unreachable (exit 3).
    with pytest.raises(StorageUnavailableError, match="Temporary failure in name resolution"):
        _open("postgresql://finscale@postgres.example/finscale", deadline_s=1)
    assert resolver.calls > 1


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('connection is bad: invalid port number: "99999"', "permanent"),
        (f"failed to resolve host 'db': [Errno {socket.EAI_AGAIN}] Temporary failure", "transient"),
        (f"failed to resolve host 'db': [Errno {socket.EAI_NONAME}] Name or service not known", "permanent"),
        ('could not translate host name "db" to address: Name or service not known', "permanent"),
        ('could not translate host name "db" to address: Temporary failure in name resolution', "transient"),
        ("connection failed: connection to server at \"10.0.0.1\", port 5432 failed: Connection refused", "transient"),
    ],
)  # fmt: skip
def test_libpq_and_psycopg_words_are_classified_by_cause(text: str, kind: str) -> None:
    error = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(text))
    assert classify(error) == kind


def _full_database(path: Path) -> sqlalchemy.engine.Engine:
    """An SQLite database that may grow to two pages only: SQLite's own "database or disk is
    full" once a write needs a third."""
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")

    @sqlalchemy.event.listens_for(engine, "connect")
    def _small(connection: sqlite3.Connection, _record: object) -> None:
        connection.execute("PRAGMA max_page_count = 2")

    return engine


def test_a_full_disk_under_sqlite_is_refused_at_once_saying_so(tmp_path: Path) -> None:
    engine = _full_database(tmp_path / "studies.db")
    tries = 0

    def write() -> None:
        nonlocal tries
        tries += 1
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("CREATE TABLE IF NOT EXISTS t (v TEXT)"))
            connection.execute(sqlalchemy.text("INSERT INTO t VALUES (:v)"), {"v": "x" * 20000})

    with pytest.raises(StorageConfigError) as raised:
        with_retries(write, what="recording a trial", url=str(engine.url), deadline_s=300)
    engine.dispose()
    assert tries == 1
    assert "database or disk is full; the disk that holds it is full" in str(raised.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"Date,Close\n2020-01-02,3257.85\n" * 200, "file is not a database"),
        (b"SQLite format 3\x00" + b"\xff" * 8000, "file is not a database|malformed"),
    ],
)
def test_a_file_that_is_no_database_is_refused_when_opened_for_a_run(
    tmp_path: Path, content: bytes, words: str
) -> None:
    # Given a storage file that is something else (a CSV, a damaged header),
    path = tmp_path / "studies.db"
    path.write_bytes(content)
    # a worker opening it is refused at once, and the file is left as it was.
    with pytest.raises(StorageConfigError, match=words):
        _open(f"sqlite:///{path}", deadline_s=300)
    assert path.read_bytes() == content


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?uri=true"]
)
def test_an_in_memory_sqlite_study_is_refused(url: str) -> None:
    with pytest.raises(StorageConfigError, match="in-memory SQLite database"):
        _open(url, deadline_s=300)
