"""The cluster base's database, against a real PostgreSQL: the init script creates an application
role that owns its database and nothing else; the studies' storage works as that role; the
backup CronJob's script dumps the database (private, complete files, old ones rotated); the
runbook's restore Job's script brings the studies back, over a changed database or into a new,
empty one. The scripts run exactly as the manifests hold them, only the server's address and the
folders differ."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
import yaml
from sqlalchemy.engine import URL, make_url

from finscale.hpo.storage import normalize_url, open_storage
from tests.conftest import REPO
from tests.runbook import restore_job


def _manifest(name: str, kind: str, metadata_name: str) -> dict[str, Any]:
    docs = yaml.safe_load_all((REPO / "k8s" / name).read_text())
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == metadata_name]
    return doc


def _container(pod: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The script of a `/bin/sh -c SCRIPT` container, and its environment."""
    (container,) = pod["containers"]
    shell, flag, script = container["command"]
    assert (shell, flag) == ("/bin/sh", "-c")
    return script, {e["name"]: e["value"] for e in container["env"]}


@dataclass(frozen=True)
class _Server:
    admin: URL  # the superuser's URL (psycopg)
    role: str
    database: str
    password: str

    def url(self, database: str | None = None) -> str:
        url = self.admin.set(username=self.role, password=self.password)
        return url.set(database=database or self.database).render_as_string(hide_password=False)

    def sql(self, statement: str, **params: Any) -> list[Any]:
        engine = sqlalchemy.create_engine(self.admin, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                result = connection.execute(sqlalchemy.text(statement), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def libpq(self, **extra: str) -> dict[str, str]:
        """A container's environment `extra`, pointed at this server instead of the cluster's."""
        return {
            "PATH": os.environ["PATH"],
            **extra,
            "PGHOST": self.admin.host or "127.0.0.1",
            "PGPORT": str(self.admin.port or 5432),
        }


@pytest.fixture
def server(postgres_server_url: str, tmp_path: Path) -> Iterator[_Server]:
    """The application role and database names of this test, dropped afterwards."""
    for tool in ("psql", "pg_dump", "pg_restore"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} (PostgreSQL's client tools) is needed to run the base's scripts")
    suffix = uuid.uuid4().hex[:10]
    admin = make_url(normalize_url(postgres_server_url))
    found = _Server(admin, f"finscale_app_{suffix}", f"finscale_{suffix}", f"pw-{suffix}")
    try:
        yield found
    finally:
        for database in (found.database, f"{found.database}_new"):
            found.sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        found.sql(f'DROP ROLE IF EXISTS "{found.role}"')


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _init(server: _Server, tmp_path: Path) -> None:
    """The StatefulSet's init script, as the image's entrypoint runs it on an empty volume."""
    config_map = _manifest("postgres.yaml", "ConfigMap", "finscale-postgres-init")
    statefulset = _manifest("postgres.yaml", "StatefulSet", "finscale-postgres")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    password = tmp_path / "app-password"
    password.write_text(server.password + "\n")  # as `kubectl create secret --from-file` may
    script = config_map["data"]["10-application-role.sh"]
    _run(
        script,
        server.libpq(
            POSTGRES_USER=server.admin.username or "postgres",
            PGPASSWORD=server.admin.password or "",
            APP_ROLE=server.role,
            APP_DATABASE=server.database,
            APP_PASSWORD_FILE=str(password),
        ),
    )
    assert env["APP_ROLE"] == env["APP_DATABASE"] == "finscale"  # what the test stands in for


def _study_names(url: str) -> list[str]:
    storage = open_storage(url, heartbeat_interval_s=30, heartbeat_grace_s=120, max_retries=0)
    return sorted(s.study_name for s in optuna.get_all_study_summaries(storage))


def _pgpass(server: _Server, tmp_path: Path) -> Path:
    """The Secret's `pgpass` key as the kubelet mounts it (group-readable)."""
    path = tmp_path / "secret" / "pgpass"
    path.parent.mkdir()
    path.write_text(f"*:*:*:{server.role}:{server.password}\n")
    path.chmod(0o440)
    return path


@pytest.mark.postgres
def test_the_application_role_owns_its_database_and_is_no_superuser(
    server: _Server, tmp_path: Path
) -> None:
    _init(server, tmp_path)
    ((superuser, createdb, createrole, login),) = server.sql(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = :r",
        r=server.role,
    )
    assert (superuser, createdb, createrole, login) == (False, False, False, True)
    ((owner, acl),) = server.sql(
        "SELECT pg_get_userbyid(datdba), datacl::text FROM pg_database WHERE datname = :d",
        d=server.database,
    )
    assert owner == server.role
    assert not any(entry.startswith("=") for entry in acl.strip("{}").split(","))  # not PUBLIC

    # the workers' storage, as the role: Optuna creates its tables and a study
    storage = open_storage(
        server.url(), heartbeat_interval_s=30, heartbeat_grace_s=120, max_retries=0
    )
    optuna.create_study(study_name="s", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2
    )
    assert _study_names(server.url()) == ["s"]


@pytest.mark.postgres
def test_the_backup_dumps_privately_and_the_documented_restore_brings_the_studies_back(
    server: _Server, tmp_path: Path
) -> None:
    # given the role's database with a study of 3 trials
    _init(server, tmp_path)
    storage = open_storage(
        server.url(), heartbeat_interval_s=30, heartbeat_grace_s=120, max_retries=0
    )
    optuna.create_study(study_name="kept", storage=storage).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=3
    )
    # and a backup volume holding two older dumps and a file of someone else's
    backups = tmp_path / "backup"
    backups.mkdir()
    for name in ("finscale-20000101T000000Z.dump", "finscale-20000102T000000Z.dump", "notes.txt"):
        (backups / name).write_text("old")
    cron = _manifest("backup.yaml", "CronJob", "finscale-postgres-backup")
    script, env = _container(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    pod_tmp = tmp_path / "tmp"
    pod_tmp.mkdir()
    client = {
        "PGUSER": server.role,
        "PGDATABASE": server.database,
        "PASSWORD_FILE": str(_pgpass(server, tmp_path)),
        "BACKUP_DIR": str(backups),
        "TMPDIR": str(pod_tmp),
    }
    assert set(client) <= set(env) and env["BACKUP_KEEP"] == "14"

    # when the CronJob's script runs (keeping 2 instead of 14)
    out = _run(script, server.libpq(**{**env, **client, "BACKUP_KEEP": "2"})).stdout

    # then one new complete dump, private, and only the newest two dumps remain
    names = sorted(p.name for p in backups.iterdir())
    assert len(names) == 3 and names[0] == "finscale-20000102T000000Z.dump"
    assert names[2] == "notes.txt" and not any(n.startswith(".") for n in names)
    dump = backups / names[1]
    assert f"{dump}: " in out and dump.stat().st_size > 1000
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600

    # when the study storage changes after the backup, and the runbook's restore Job runs
    optuna.create_study(study_name="after-backup", storage=storage)
    storage.remove_session()
    restore = restore_job()
    script, env = _container(restore["spec"]["template"]["spec"])
    assert env["BACKUP_FILE"] == "latest"
    _run(script, server.libpq(**{**env, **client}))

    # then the database is as the dump had it
    assert _study_names(server.url()) == ["kept"]
    study = optuna.load_study(study_name="kept", storage=server.url())
    assert len(study.get_trials()) == 3

    # and after a lost volume: a new empty database of the role (as the init script makes it)
    new = f"{server.database}_new"
    server.sql(f'CREATE DATABASE "{new}" OWNER "{server.role}"')
    _run(script, server.libpq(**{**env, **client, "PGDATABASE": new, "BACKUP_FILE": dump.name}))
    assert _study_names(server.url(new)) == ["kept"]
