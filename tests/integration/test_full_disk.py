"""A full disk, for real: a small tmpfs mounted in a mount namespace of the test's own (`unshare
--user --map-root-user --mount`, no privilege needed where user namespaces are allowed; skipped
where they are not). What cannot be written is named on standard error with its cause, at once,
with exit 2, and nothing is left half-made."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Env = Callable[..., dict[str, str]]

# Mounts a tmpfs of $1 at $2, fills it when $3 is "full", then runs the rest of the arguments.
_IN_TMPFS = (
    'mount -t tmpfs -o "size=$1" tmpfs "$2" || exit 99; '
    'if [ "$3" = full ]; then cat /dev/zero > "$2/filler" 2>/dev/null; fi; '
    'shift 3; exec "$@"'
)


def _namespaces_work(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _IN_TMPFS, "sh",
         "16k", str(tmp_path), "full", "true"],
        capture_output=True, check=False,
    )  # fmt: skip
    return probe.returncode == 0


def _finscale_in_tmpfs(
    mount: Path, size: str, *, full: bool, args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    command = [
        "unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _IN_TMPFS, "sh",
        size, str(mount), "full" if full else "empty", sys.executable, "-m", "finscale", *args,
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    point = tmp_path / "small-disk"
    point.mkdir()
    if not _namespaces_work(point):
        pytest.skip("cannot mount a tmpfs here (no unshare, or user namespaces are not allowed)")
    return point


def test_a_full_runs_folder_is_named_at_once_and_no_study_is_set_up(
    mount: Path, make_spec: Callable[..., Path], worker_env: Env, tmp_path: Path
) -> None:
    # Given a runs folder on a disk that is full,
    storage = tmp_path / "studies.db"
    env = worker_env(f"sqlite:///{storage}", FINSCALE_RUNS_DIR=str(mount / "runs"))
    # when a study is run,
    done = _finscale_in_tmpfs(mount, "64k", full=True, args=["run", str(make_spec())], env=env)
    # then it stops at once with exit 2 and one line naming the log and the cause,
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert (
        f"{mount}/runs/it-30k-h1/run-" in done.stderr
        and "/worker-0.log: cannot write a worker's log: No space left on device" in done.stderr
    ), done.stderr
    # before anything is set up: no study in the storage.
    assert not storage.exists()


def test_a_full_disk_under_the_sqlite_storage_is_refused_at_once(
    mount: Path, make_spec: Callable[..., Path], worker_env: Env
) -> None:
    # Given an SQLite storage on a disk too small for Optuna's tables and a long deadline,
    env = worker_env(f"sqlite:///{mount / 'studies.db'}", FINSCALE_STORAGE_DEADLINE_S="300")
    # when a study is run, the storage is refused at once (not retried for 300 s), saying why.
    done = _finscale_in_tmpfs(mount, "16k", full=False, args=["run", str(make_spec())], env=env)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert (
        f"storage sqlite:///{mount}/studies.db refused opening the storage: database or disk "
        "is full; the disk that holds it is full"
    ) in done.stderr, done.stderr
    assert "try 2" not in done.stderr  # no retry


@pytest.mark.slow
def test_a_report_onto_a_full_disk_names_its_folder(
    mount: Path, make_spec: Callable[..., Path], worker_env: Env, tmp_path: Path
) -> None:
    # Given a study with a finished trial, and a report folder on a disk with little room,
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    env = worker_env(url)
    ran = subprocess.run(
        [sys.executable, "-m", "finscale", "run", str(make_spec(n_trials=1)), "--workers", "1"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    # when the report is written there, it stops with the folder and the cause, exit 2.
    done = _finscale_in_tmpfs(
        mount, "16k", full=False, args=["report", "--out", str(mount / "report")], env=env
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"error: {mount}/report: No space left on device" in done.stderr, done.stderr
