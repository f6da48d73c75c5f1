"""A real PostgreSQL for shared studies, the built sample data, small specs and worker processes.

PostgreSQL comes from FINSCALE_TEST_DATABASE_URL (set by .ci/run); where that is unset and a
Docker engine answers, from a testcontainers `PostgresContainer` (image: $FINSCALE_TEST_POSTGRES_IMAGE,
default postgres:16-alpine); otherwise the tests that need it are skipped, saying why. Every test
gets a database of its own, dropped afterwards.

Outage tests share a PostgreSQL server private to the pytest run (initdb and pg_ctl on a free
port, started once), which they stop and restart without touching the shared one; each gets a
fresh database on it (`private_postgres`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import yaml
from sqlalchemy.engine import make_url

from finscale.hpo.storage import normalize_url


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("FINSCALE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    try:
        from testcontainers.postgres import PostgresContainer

        image = os.environ.get("FINSCALE_TEST_POSTGRES_IMAGE", "postgres:16-alpine")
        container = PostgresContainer(image, driver="psycopg")
        container.start()
    except Exception as e:  # no Docker engine, no image: nothing to test against
        pytest.skip(f"no PostgreSQL: set FINSCALE_TEST_DATABASE_URL or start a Docker engine ({e})")
    try:
        yield container.get_connection_url()
    finally:
        container.stop()


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped after the test."""
    server = make_url(normalize_url(postgres_server_url))
    name = f"finscale_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs on SQLite and on PostgreSQL (only that case is marked `postgres`)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studies.db'}"
    return str(request.getfixturevalue("postgres_url"))


SMALL: dict[str, Any] = {
    "name": "it",
    "budgets": ["30K"],
    "horizons": [1],
    "data": {"dataset": "GSPC.dataset.a25"},
    "split": {"mode": "chronological", "val_start": "2015-01-01", "test_start": "2017-01-01"},
    "architecture": {
        "d_model": [16, 24, 32],
        "n_layers": [1, 2],
        "n_heads": [2, 4],
        "d_ff_ratio": [2],
        "tolerance": 0.6,
        "forced_extremes": True,
    },
    "training": {
        "learning_rate": {"type": "log_uniform", "low": 3e-4, "high": 3e-3},
        "weight_decay": {"type": "log_uniform", "low": 1e-4, "high": 1e-2},
        "warmup_steps": 10,
        "dropout": {"type": "uniform", "low": 0.0, "high": 0.2},
        "epochs": 2,
        "batch_size": 512,
        "precision": "fp32",
    },
    "early_stopping": {"patience": 5},
    "sampler": {"type": "tpe", "seed": 1, "n_startup_trials": 3},
    "pruner": {"type": "none"},
    "n_trials": 3,
    "workers": 2,
    "resources": {"gpus": 0, "memory_request": "2Gi", "memory_limit": "2Gi"},
}


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


@pytest.fixture
def make_spec(tmp_path: Path) -> Callable[..., Path]:
    """`make_spec(**changes)`: a small experiment spec file (one study, `it-30k-h1`)."""
    count = iter(range(1000))

    def make(**changes: Any) -> Path:
        path = tmp_path / f"spec-{next(count)}.yaml"
        path.write_text(yaml.safe_dump(_merge(SMALL, changes)))
        return path

    return make


@pytest.fixture
def worker_env(data_dir: Path, tmp_path: Path) -> Callable[[str], dict[str, str]]:
    """`worker_env(storage_url)`: the environment of a fast worker process."""

    def env(url: str, **extra: str) -> dict[str, str]:
        values = {
            "FINSCALE_STORAGE_URL": url,
            "FINSCALE_DATA_DIR": str(data_dir),
            "FINSCALE_RUNS_DIR": str(tmp_path / "runs"),
            "FINSCALE_DEVICE": "cpu",
            "FINSCALE_HEARTBEAT_INTERVAL_S": "1",
            "FINSCALE_HEARTBEAT_GRACE_S": "2",
            "FINSCALE_POLL_INTERVAL_S": "0.3",
            "FINSCALE_STORAGE_DEADLINE_S": "5",
            "OMP_NUM_THREADS": "1",  # several workers share this machine's two cores
            **extra,
        }
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("FINSCALE_") or k.startswith("FINSCALE_TEST")
        }
        return {**clean, **values}

    return env


def start_worker(
    spec: Path, env: dict[str, str], *, index: int = 0, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """`finscale worker SPEC --index N` as its own process, exactly as a pod runs it."""
    command = [sys.executable, "-m", "finscale", "worker", str(spec), "--index", str(index)]
    output = log.open("wb") if log else subprocess.PIPE
    return subprocess.Popen(
        command, env=env, stdout=output, stderr=subprocess.STDOUT if log else subprocess.PIPE
    )


# --- a private PostgreSQL that a test may stop and restart ---


def _postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl: on the PATH, else the newest Debian/Ubuntu install."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return installed[-1].parent if installed else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivatePostgres:
    """A PostgreSQL server private to the test run, on a free port: a test stops, starts and
    restarts it (`pg_ctl`, fast shutdown: open connections are cut, as in a pod restart).

    Role `postgres` connects without a password (trust); role `secured` needs the password
    `right` (scram-sha-256), for authentication failures. `url` names the test's database.
    """

    bin_dir: Path
    root: Path
    port: int
    run_as: list[str]
    database: str = "postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _admin(self) -> sqlalchemy.Engine:
        return sqlalchemy.create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
            isolation_level="AUTOCOMMIT",
        )

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str) -> None:
        admin = self._admin()
        try:
            with admin.connect() as connection:
                connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()

    def drop_database(self, name: str) -> None:
        admin = self._admin()
        try:
            with admin.connect() as connection:
                connection.execute(
                    sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                )
        finally:
            admin.dispose()

    def _run(self, *args: str, timeout: float = 60) -> None:
        # Output to a file: the server started by pg_ctl inherits these descriptors, and a pipe
        # would be waited on until the server exits.
        with (self.root / "pg_ctl.log").open("ab") as log:
            subprocess.run(
                [*self.run_as, *args],
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                cwd=self.root,
            )

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root / 'sockets'} -c listen_addresses=127.0.0.1"
        self._pg_ctl("-o", options, "-l", str(self.root / "server.log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "stop")

    def restart(self) -> None:
        """Stop (fast) and start again at once: a crash-free pod restart."""
        self.stop()
        self.start()

    def initialize(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            "host all secured 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
            "local all all trust\n"
        )
        self.start()
        admin = self._admin()
        try:
            with admin.connect() as connection:
                connection.execute(
                    sqlalchemy.text("CREATE ROLE secured LOGIN PASSWORD 'right' SUPERUSER")
                )
        finally:
            admin.dispose()


@pytest.fixture(scope="session")
def private_postgres_server() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server private to this pytest run (initdb, pg_ctl), removed afterwards:
    initdb once, not once per outage test.

    As root, the server runs as the `postgres` user (PostgreSQL refuses root). Skipped, saying
    why, where initdb is not installed (FINSCALE_REQUIRE_ALL_TESTS turns that into a failure).
    """
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): install postgresql")
    root = Path(tempfile.mkdtemp(prefix="finscale-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        run_as = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
        os.chown(root, user.pw_uid, user.pw_gid)
    (root / "sockets").mkdir()
    if run_as:
        os.chown(root / "sockets", user.pw_uid, user.pw_gid)
    server = PrivatePostgres(bin_dir=bin_dir, root=root, port=_free_port(), run_as=run_as)
    try:
        server.initialize()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_postgres(private_postgres_server: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The run's private server, started, with a fresh database of this test's own (`url`),
    dropped afterwards. The test may stop and restart the server; it is started again after."""
    server = private_postgres_server
    if not server.is_running():  # a test before this one failed with the server stopped
        server.start()
    name = f"finscale_{uuid.uuid4().hex[:12]}"
    server.create_database(name)
    try:
        yield replace(server, database=name)
    finally:
        if not server.is_running():
            server.start()
        with contextlib.suppress(Exception):
            server.drop_database(name)


def log_text(output: bytes | str) -> str:
    """A worker's output (JSON lines) as a person reads it: each log record as its text
    (`readable`), quotes unescaped; other lines as they are."""
    from finscale.json_lines import readable

    text = output.decode() if isinstance(output, bytes) else output
    return "\n".join(readable(line) for line in text.splitlines())
