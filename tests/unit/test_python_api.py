"""The notebook API: docs/python.md runs as written, and what it reads is what the report
writes (the golden storage: its analysis.json and trials.csv)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, rounded

GOLDEN = REPO / "tests" / "fixtures" / "golden"
PAGE = REPO / "docs" / "python.md"


@pytest.fixture
def golden(env: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A copy of the golden storage (one experiment, evaluated), as FINSCALE_STORAGE_URL."""
    path = tmp_path / "storage.db"
    shutil.copyfile(GOLDEN / "storage.db", path)
    env.setenv("FINSCALE_STORAGE_URL", f"sqlite:///{path}")
    return path


def test_the_python_page_runs_as_written(golden: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 5
    before = golden.read_bytes()
    namespace: dict[str, object] = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, str(PAGE), "exec"), namespace)
    text = printed.getvalue()
    assert "golden ['golden-10k-h1', 'golden-50k-h1']" in text
    assert re.search(r"^(inconclusive|no detectable effect|bigger is \w+) ", text, flags=re.M)
    assert "# finscale report" in text
    assert golden.read_bytes() == before  # reading wrote nothing


def test_the_api_reads_what_the_report_writes(golden: Path) -> None:
    import finscale

    exp = finscale.load_experiment("golden")
    # the analysis, to the digits the golden test compares
    expected = json.loads((GOLDEN / "analysis.json").read_text())
    assert rounded(exp.analysis()) == rounded(expected)
    # the trials, as trials.csv
    csv = pd.read_csv(GOLDEN / "trials.csv")
    assert list(exp.trials.columns) == list(csv.columns)
    assert exp.trials["value"].tolist() == pytest.approx(csv["value"].tolist(), nan_ok=True)
    # one row per stored evaluation run: 2 studies × top 2 × 2 seeds
    runs = exp.evaluations
    assert len(runs) == 8 and runs["test_bce"].notna().all()
    assert set(runs["study"]) == {"golden-10k-h1", "golden-50k-h1"}


def test_a_storage_of_several_experiments_needs_a_name(golden: Path) -> None:
    import optuna

    import finscale
    from finscale.records import ATTR_SPEC
    from finscale.report import SeveralExperimentsError

    other = optuna.create_study(study_name="other-1k-h1", storage=f"sqlite:///{golden}")
    other.set_user_attr(ATTR_SPEC, {"experiment": "other", "budget": "1K", "horizon": 1})
    assert finscale.experiments() == {
        "golden": ["golden-10k-h1", "golden-50k-h1"],
        "other": ["other-1k-h1"],
    }
    with pytest.raises(SeveralExperimentsError):
        finscale.load_experiment()
    assert finscale.load_experiment("golden").name == "golden"
