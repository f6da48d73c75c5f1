"""The code identity a study stores: a digest of finscale's own source files that any change of
code changes and nothing else does, read from the file an image bakes when there is one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from finscale import identity


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "finscale"
    (root / "hpo").mkdir(parents=True)
    (root / "__init__.py").write_text('"""finscale."""\n')
    (root / "hpo" / "worker.py").write_text("def run_worker():\n    return 0\n")
    return root


def test_any_change_of_source_changes_the_digest_and_nothing_else_does(package: Path) -> None:
    first = identity.source_digest(package)
    assert len(first) == 64 and identity.source_digest(package) == first
    # caches, data files and a baked digest are not code
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "worker.cpython-311.pyc").write_bytes(b"\x00compiled")
    (package / "_sample").mkdir()
    (package / "_sample" / "GSPC.csv.gz").write_bytes(b"data")
    (package / identity.BAKED).write_text("f" * 64)
    assert identity.source_digest(package) == first
    # a changed line, a new module and a moved one are
    worker = package / "hpo" / "worker.py"
    worker.write_text("def run_worker():\n    return 1\n")
    changed = identity.source_digest(package)
    assert changed != first
    (package / "hpo" / "join.py").write_text("")
    added = identity.source_digest(package)
    assert added not in (first, changed)
    shutil.move(package / "hpo" / "join.py", package / "join.py")
    assert identity.source_digest(package) not in (first, changed, added)


def test_an_image_reads_the_digest_it_baked(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    baked = identity.bake(package)
    assert (package / identity.BAKED).read_text() == baked + "\n"
    assert baked == identity.source_digest(package)
    # the baked file is what a process reads, without hashing its sources
    monkeypatch.setattr(identity, "PACKAGE", package)
    monkeypatch.setattr(identity, "source_digest", lambda *_: pytest.fail("hashed again"))
    identity.code_sha256.cache_clear()
    try:
        assert identity.code_sha256() == baked
    finally:
        identity.code_sha256.cache_clear()


def test_a_source_tree_computes_its_digest_and_prints_it() -> None:
    assert not (identity.PACKAGE / identity.BAKED).exists()  # never baked in a checkout
    printed = subprocess.run(
        [sys.executable, "-m", "finscale.identity"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == identity.code_sha256() == identity.source_digest()
    assert identity.short(printed) == printed[:12] and identity.short(None) == "(none)"
