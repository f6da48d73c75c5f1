"""Names read from the storage become file names that stay in their folder: a study named
`../../x` by anyone with write access to the database writes no file outside the report."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from finscale.filenames import file_stem
from finscale.hpo.read import read_studies
from finscale.report import write_report
from tests.unit.test_report import add_study

HOSTILE = ["../../x", "/etc/cron.d/x", "..", ".", "a/../../b", "x\x00y", "x\ny", "~root", "é" * 300]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_gives_a_plain_file_stem(name: str) -> None:
    stem = file_stem(name)
    assert stem and "/" not in stem and "\\" not in stem and ".." not in stem
    assert stem.isascii() and stem.isprintable() and len(stem) <= 120
    assert not stem.startswith(("-", "."))


def test_a_dns_name_is_kept_and_two_names_never_share_a_stem() -> None:
    assert file_stem("validation-50k-h1") == "validation-50k-h1"
    stems = {file_stem(n) for n in ["a/b", "a_b", "a b", "a?b", "a_b_"]}
    assert len(stems) == 5


def test_figures_of_hostile_study_names_stay_inside_the_report_folder(tmp_path: Path) -> None:
    # Given studies whose stored names climb out of any folder,
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = optuna.storages.RDBStorage(url)
    for name in ("../../x", "../escaped", "sub/dir/y"):
        add_study(storage, None, name, [0.3, 0.2])
    out = tmp_path / "deep" / "er" / "report"
    # when the report is written with its figures,
    write_report(read_studies(storage), out, storage=url)
    # then every file it wrote lies directly in its folder, and nothing appeared beside it.
    histories = sorted(p.name for p in out.glob("history-*.png"))
    assert len(histories) == 3, histories
    assert all(p.parent == out and p.is_file() for p in out.rglob("*"))
    outside = {p for p in tmp_path.rglob("*") if not p.is_relative_to(out)}
    assert outside == {tmp_path / "studies.db", tmp_path / "deep", tmp_path / "deep" / "er"}
