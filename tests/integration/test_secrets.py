"""A password given as a query parameter of the storage URL (`…/db?password=…`) authenticates
and then appears in no output of a whole run: not in `run`'s lines, the workers' logs (their
"joined study" line), `status`, or the report."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SECRET = "pw-s3cr3t-query-42"


def _finscale(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finscale", *args],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_a_query_password_appears_in_no_output_of_a_run(
    postgres_url: str,
    make_spec: Callable[..., Path],
    worker_env: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    # Given a storage URL carrying its password as a query parameter (trust authentication
    # ignores it; a server asking for one would take it),
    url = f"{postgres_url}?password={SECRET}"
    env = worker_env(url)
    spec = make_spec(n_trials=1, training={"epochs": 1})
    # when a study runs, its status is shown and its report written,
    results = [
        _finscale("run", str(spec), "--workers", "1", env=env),
        _finscale("status", env=env),
        _finscale("report", "--out", str(tmp_path / "report"), "--no-plots", env=env),
    ]
    # then each succeeds, showing the URL with the password masked and nowhere in the clear:
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
        assert SECRET not in result.stdout + result.stderr
    assert "password=***" in results[0].stdout
    logs = list((tmp_path / "runs").rglob("*.log"))
    joined = "".join(p.read_text() for p in logs)
    assert "joined study" in joined and "password=***" in joined
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "password=***" in summary
    written = [*logs, *(tmp_path / "report").rglob("*")]
    for path in written:
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
