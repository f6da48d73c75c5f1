"""libpq ignores a group-readable password file; a Secret volume gives exactly that to a
non-root worker, so finscale hands libpq a private copy."""

from __future__ import annotations

from pathlib import Path

from finscale.hpo.storage import private_pgpassfile


def test_a_group_readable_file_is_copied_privately(tmp_path: Path) -> None:
    secret = tmp_path / "pgpass"
    secret.write_text("*:*:*:finscale:pw\n")
    secret.chmod(0o440)
    env = {"PGPASSFILE": str(secret)}
    copy = private_pgpassfile(env)
    assert copy is not None
    assert env["PGPASSFILE"] == str(copy)
    assert copy.stat().st_mode & 0o777 == 0o600
    assert copy.read_text() == "*:*:*:finscale:pw\n"
    copy.unlink()


def test_a_private_or_absent_file_is_left_alone(tmp_path: Path) -> None:
    private = tmp_path / "pgpass"
    private.write_text("x")
    private.chmod(0o600)
    env = {"PGPASSFILE": str(private)}
    assert private_pgpassfile(env) is None
    assert env["PGPASSFILE"] == str(private)
    assert private_pgpassfile({}) is None
    assert private_pgpassfile({"PGPASSFILE": str(tmp_path / "missing")}) is None
