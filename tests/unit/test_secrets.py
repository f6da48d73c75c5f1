"""A password never leaves finscale: in whatever form a storage URL carries it (`user:pw@`,
`?password=`, `sslpassword=`, a libpq connection string), it is masked in every line finscale
prints and in the report; `render` refuses it and writes nothing; and the private copy of the
password file a worker makes is removed however the process ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from finscale.hpo.storage import display_url
from finscale.redaction import has_secret, mask_secrets
from tests.conftest import REPO
from tests.conftest import run_cli as run
from tests.unit.test_report import add_study

SECRET = "s3cr3t-Pw-77"
SPEC = REPO / "configs" / "experiments" / "validation.yaml"
# SQLite ignores a query password (and SQLAlchemy says so): these tests need only its URL.
_SQLITE_IGNORES_IT = pytest.mark.filterwarnings("ignore:Query string argument")
# A port nothing listens on: connections are refused at once, and retried until the deadline.
REFUSED = "postgresql://finscale@127.0.0.1:1/finscale"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:PW@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("postgresql://u:P@W@db/x", "postgresql://u:***@db/x"),  # an unencoded @ in it
        ("postgresql://u@db/x?password=PW", "postgresql://u@db/x?password=***"),
        ("postgresql://u@db/x?sslmode=require&password=PW&a=1", "postgresql://u@db/x?sslmode=require&password=***&a=1"),
        ("postgresql://u@db/x?PASSWORD=PW", "postgresql://u@db/x?PASSWORD=***"),
        ("postgresql://u@db/x?%70assword=PW", "postgresql://u@db/x?%70assword=***"),
        ("postgresql://u@db/x?sslpassword=PW", "postgresql://u@db/x?sslpassword=***"),
        ("host=db user=u password=PW dbname=x", "host=db user=u password=*** dbname=x"),
        ("host=db password = 'P W \\' x' dbname=x", "host=db password = *** dbname=x"),
        ('error: "password=PW"', 'error: "password=***"'),
        ("PGPASSWORD=PW finscale status", "PGPASSWORD=*** finscale status"),
    ],
)  # fmt: skip
def test_every_form_of_a_password_is_masked(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
    assert has_secret(text)


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://finscale@finscale-postgres:5432/finscale",
        "postgresql://u@db/x?passfile=/etc/finscale/pgpass&sslmode=require",
        "sqlite:////data/studies.db",
        "the password file is mounted from the Secret",
    ],
)
def test_text_without_a_password_is_left_as_it_is(text: str) -> None:
    assert mask_secrets(text) == text
    assert not has_secret(text)


@_SQLITE_IGNORES_IT
def test_status_shows_the_storage_without_its_query_password(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a study in an SQLite file reached through a URL carrying a query password,
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(storage=url, study_name="someone-elses")
    env.setenv("FINSCALE_STORAGE_URL", f"{url}?password={SECRET}")
    # when `status` lists it, then its title shows the URL with the password masked.
    code, out, err = run(["status"], capsys)
    assert code == 0, err
    assert "password=***" in "".join(out.split())  # the title may fold anywhere
    assert SECRET not in out + err
    assert display_url(f"{url}?password={SECRET}") == f"{url}?password=***"


@_SQLITE_IGNORES_IT
def test_the_report_names_the_storage_without_its_query_password(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = optuna.storages.RDBStorage(url)
    add_study(storage, None, "someone-elses", [0.3, 0.2])
    env.setenv("FINSCALE_STORAGE_URL", f"{url}?password={SECRET}")
    out_dir = tmp_path / "report"
    code, out, err = run(["report", "--out", str(out_dir), "--no-plots"], capsys)
    assert code == 0, err
    summary = (out_dir / "summary.md").read_text()
    assert "password=***" in summary
    for path in out_dir.rglob("*"):
        assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in out + err


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u@127.0.0.1:1/x?password={SECRET}",  # unreachable: warnings, then exit 3
        f"postgresql://u:{SECRET}@127.0.0.1:1/x",
        f"postgresql://u@db:port/x?password={SECRET}",  # does not parse: exit 2
        f"host=db user=u password={SECRET}",  # a connection string is no URL: exit 2
        f"mysql://u@db/x?password={SECRET}",  # not a backend finscale opens: exit 2
    ],
)
def test_error_messages_and_log_lines_mask_the_password(
    url: str, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_STORAGE_URL", url)
    env.setenv("FINSCALE_STORAGE_DEADLINE_S", "0.5")
    code, out, err = run(["status"], capsys)
    assert code in (2, 3), err
    assert "error:" in err and "Traceback" not in err, err
    assert SECRET not in out + err
    assert "***" in err or "<unparsable storage URL>" in err, err


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://finscale@db:5432/finscale?password={SECRET}",
        f"postgresql://finscale@db:5432/finscale?sslmode=require&sslpassword={SECRET}",
        f"postgresql://finscale:{SECRET}@db:5432/finscale",
        f"host=db user=finscale password={SECRET}",
    ],
)
def test_render_refuses_a_storage_url_with_a_password_and_writes_nothing(
    url: str, tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "jobs"
    code, out, err = run(["render", str(SPEC), "--out", str(out_dir), "--storage-url", url], capsys)
    assert code == 2
    text = " ".join(err.split())
    assert "must not carry a password" in text and "PGPASSFILE" in text, text
    assert SECRET not in out + err
    assert not out_dir.exists()


# --- the private copy of a group-readable password file ---------------------------------------


def _status_with_a_password_file(
    tmp_path: Path, deadline_s: float
) -> tuple[subprocess.Popen[bytes], Path]:
    """`finscale status` against a refused port, with a group-readable PGPASSFILE (as a Secret
    volume mounts it) that it copies privately into a temporary folder of its own."""
    secret = tmp_path / "pgpass"
    secret.write_text(f"*:*:*:finscale:{SECRET}\n")
    secret.chmod(0o440)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FINSCALE_", "PG"))},
        "PGPASSFILE": str(secret),
        "TMPDIR": str(temporary),
        "FINSCALE_STORAGE_URL": REFUSED,
        "FINSCALE_STORAGE_DEADLINE_S": str(deadline_s),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "finscale", "status"],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    return process, temporary


def _copies(folder: Path) -> list[Path]:
    return sorted(folder.glob("finscale-pgpass-*"))


def test_the_private_password_copy_is_removed_when_the_process_exits(tmp_path: Path) -> None:
    process, temporary = _status_with_a_password_file(tmp_path, deadline_s=1)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 3, err.decode()  # the storage never answered
    assert _copies(temporary) == []
    assert SECRET.encode() not in out + err


def test_the_private_password_copy_is_removed_on_sigterm(tmp_path: Path) -> None:
    # Given a reader retrying a refused storage, holding its private copy of the password file,
    process, temporary = _status_with_a_password_file(tmp_path, deadline_s=600)
    try:
        give_up = time.monotonic() + 120
        while not _copies(temporary) and process.poll() is None and time.monotonic() < give_up:
            time.sleep(0.05)
        assert _copies(temporary), "the private copy was never made"
        # when it is stopped with SIGTERM,
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    # then it ends at once and the copy is gone.
    assert process.returncode == 143, err.decode()
    assert _copies(temporary) == []
    assert SECRET.encode() not in out + err
