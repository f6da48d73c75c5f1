"""Behaviour kept across releases: a storage written by finscale 0.1.0 is still read, its report
is what 0.1.0 wrote, and its trials and evaluation runs retrain to their stored values.

`tests/fixtures/golden/` holds the storage (`storage.db`, SQLite) of `spec.yaml` as the 0.1.0
release wrote it (`finscale run`, then `finscale evaluate --top-k 2 --seeds 2`), and the report
that release made of it. A change that alters the report on purpose regenerates the expected
files with `FINSCALE_UPDATE_GOLDEN=1 pytest tests/integration/test_golden.py` and says why in
its commit; the storage itself is never regenerated (it is what an old release left behind).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from finscale.settings import Settings
from tests.conftest import rounded

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
SPEC = GOLDEN / "spec.yaml"
EXPECTED = ("analysis.json", "summary.md", "trials.csv", "best.json")
UPDATE = os.environ.get("FINSCALE_UPDATE_GOLDEN") == "1"


@pytest.fixture
def storage_copy(tmp_path: Path) -> Path:
    """The 0.1.0 storage, copied (a test never changes the fixture)."""
    path = tmp_path / "storage.db"
    shutil.copyfile(GOLDEN / "storage.db", path)
    return path


def _settings(storage: Path, data_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        storage_url=f"sqlite:///{storage}",
        data_dir=data_dir,
        runs_dir=tmp_path / "runs",
        device="cpu",
    )


def _without_generated_line(text: str) -> str:
    """The summary's first lines name the storage's path and the hour: not the report's content."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("Storage `"))


def test_the_report_of_a_stored_experiment_is_unchanged(storage_copy: Path, tmp_path: Path) -> None:
    # given: the storage 0.1.0 wrote
    from finscale.hpo import open_for_reading, read_studies
    from finscale.report import write_report

    settings = _settings(storage_copy, tmp_path / "no-data", tmp_path)
    storage = open_for_reading(settings)
    assert storage is not None
    # when: today's code reports it, with the options 0.1.0's report ran with
    out = tmp_path / "report"
    write_report(read_studies(storage), out, storage="golden", experiment="golden", plots=True)
    # then: every figure, table and sentence is what 0.1.0 wrote
    for name in EXPECTED:
        produced = (out / name).read_text()
        if UPDATE:
            (GOLDEN / name).write_text(produced)
            continue
        expected = (GOLDEN / name).read_text()
        if name == "summary.md":
            produced, expected = (
                _without_generated_line(produced),
                _without_generated_line(expected),
            )
        if name.endswith(".json"):
            # Floats to 12 significant digits: the last two move with the math library's
            # summation order (threads, CPU features); the summary prints far fewer.
            assert rounded(json.loads(produced)) == rounded(json.loads(expected)), name
        else:
            assert produced == expected, f"{name} differs from tests/fixtures/golden/{name}"


@pytest.mark.slow
def test_a_stored_trial_retrains_to_its_stored_value(
    storage_copy: Path, data_dir: Path, tmp_path: Path
) -> None:
    # given: a trial the 0.1.0 release trained, and the spec it ran
    from finscale.hpo import plan_training, retrain
    from finscale.spec import load_study

    settings = _settings(storage_copy, data_dir, tmp_path)
    spec = load_study(SPEC, "golden-50k-h1")
    # when: today's code retrains it from what the storage holds
    plan = plan_training(spec, settings=settings, trial=5)
    run = retrain(plan, settings=settings)
    # then: the same value. Bit for bit on the machine that trained it (test_replay holds that);
    # here to 1e-6 relative, because this storage was trained on another CPU, whose vector
    # kernels sum in another order (measured: 9e-9 relative). A change to the model, the data or
    # the trainer moves the value by far more.
    assert plan.stored_value is not None
    assert run.result.value == pytest.approx(plan.stored_value, rel=1e-6, abs=0)


@pytest.mark.slow
def test_a_stored_evaluation_run_retrains_to_its_stored_test_predictions(
    storage_copy: Path, data_dir: Path, tmp_path: Path
) -> None:
    # given: the evaluation 0.1.0 stored (trial 0 of the 10K study, its own seed first)
    import sqlite3

    from finscale.hpo import evaluate_study
    from finscale.predictions import decode_logits
    from finscale.spec import load_study

    with sqlite3.connect(storage_copy) as db:
        (stored,) = db.execute(
            "SELECT a.value_json FROM study_user_attributes a JOIN studies s USING (study_id) "
            "WHERE s.study_name = 'golden-10k-h1' AND a.key = 'finscale.eval.0.0'"
        ).fetchone()
    before = json.loads(stored)
    settings = _settings(storage_copy, data_dir, tmp_path)
    spec = load_study(SPEC, "golden-10k-h1")
    # when: today's code runs that evaluation again
    result = evaluate_study(spec, settings, top_k=1, seeds=1, force=True)
    (run,) = result.runs
    # then: the same trial, the same seed, the same test predictions and metrics
    assert (run.trial, run.seed_index, run.seed) == (before["trial"], 0, before["seed"])
    # to 1e-6 relative: the storage was trained on another CPU (see the test above)
    assert decode_logits(run.test_logits) == pytest.approx(
        decode_logits(before["test_logits"]), rel=1e-6, abs=1e-9
    )
    after = run.to_json()["test"]
    assert after.keys() == before["test"].keys()
    for key, value in before["test"].items():
        assert after[key] == (value if value is None else pytest.approx(value, rel=1e-6)), key
