"""The decisions the commands delegate to the library, called as plain functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from finscale.data import already_built, build_datasets, load_inputs, read_manifest
from finscale.errors import SpecError
from finscale.hpo.pod import worker_index, worker_until
from finscale.spec import load_studies, select_studies, train_changes
from tests.conftest import REPO, SAMPLE_DIR


def test_a_worker_index_comes_from_the_option_then_the_job_then_zero() -> None:
    assert worker_index(4, {"JOB_COMPLETION_INDEX": "2"}) == 4
    assert worker_index(None, {"JOB_COMPLETION_INDEX": "2"}) == 2
    assert worker_index(None, {}) == 0
    with pytest.raises(SpecError, match="JOB_COMPLETION_INDEX='two'"):
        worker_index(None, {"JOB_COMPLETION_INDEX": "two"})


def test_the_closer_stays_until_the_study_is_done() -> None:
    assert worker_until("idle", index=0, closer=0) == "done"
    assert worker_until("idle", index=1, closer=0) == "idle"
    assert worker_until("idle", index=0, closer=None) == "idle"
    assert worker_until("done", index=1, closer=0) == "done"


def test_if_missing_builds_only_when_a_dataset_is_absent_or_damaged(tmp_path: Path) -> None:
    assert already_built(tmp_path, "sample", None, kinds=["a25"]) is None
    inputs = load_inputs("sample", kinds=["a25"], sample_dir=SAMPLE_DIR)
    build_datasets(inputs, data_dir=tmp_path)
    assert already_built(tmp_path, "sample", None, kinds=["a25"]) == ["GSPC.dataset.a25"]
    assert read_manifest(tmp_path).datasets() == ["GSPC.dataset.a25"]
    next((tmp_path / "processed").glob("GSPC.dataset.a25-*.parquet")).write_bytes(b"x")
    assert already_built(tmp_path, "sample", None, kinds=["a25"]) is None


def test_studies_are_selected_by_name_in_the_specs_order() -> None:
    studies = load_studies(REPO / "configs" / "experiments" / "sample-scaling.yaml")
    names = [s.name for s in studies]
    assert select_studies(studies, None) == studies
    assert [s.name for s in select_studies(studies, [names[-1], names[0]])] == [
        names[0],
        names[-1],
    ]
    with pytest.raises(SpecError, match="no study 'nope'; studies: "):
        select_studies(studies, ["nope"])


def test_trains_shorthands_win_over_its_assignments() -> None:
    changes = train_changes(
        ["data.dataset=X", "training.learning_rate=0.0003"], dataset="Y", horizon=5, epochs=2
    )
    assert changes == {
        "data": {"dataset": "Y"},
        "training": {"learning_rate": 0.0003, "epochs": 2},
        "horizon": 5,
    }
