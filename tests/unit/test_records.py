"""The storage contract (`finscale.records`): each record's JSON form round-trips, a storage
written by the 0.1.0 release parses, and a damaged record names its key."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from finscale.predictions import encode_logits
from finscale.records import (
    ATTR_BASELINES,
    ATTR_DATASET_SHA256,
    ATTR_EVAL_PREFIX,
    ATTR_FIELDS,
    ATTR_WINDOWS,
    SYSTEM_FAILED_TRIAL,
    SYSTEM_REQUEUED_FROM,
    SYSTEM_RETRY_HISTORY,
    TRIAL_FAIL_REASON,
    Baseline,
    EvalRun,
    RecordError,
    SplitWindows,
    TrialRecord,
    WindowsRecord,
    baselines_from_json,
    baselines_to_json,
    counted,
    dataset_pin,
    eval_key,
    eval_runs,
    fail_reason,
    requeued_from,
)

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "storage.db"


def _golden_attrs() -> list[dict[str, object]]:
    """Each study's user attributes in the 0.1.0 fixture, read without Optuna."""
    with sqlite3.connect(GOLDEN) as db:
        rows = db.execute("SELECT study_id, key, value_json FROM study_user_attributes").fetchall()
    studies: dict[int, dict[str, object]] = {}
    for study, key, value in rows:
        studies.setdefault(study, {})[key] = json.loads(value)
    return list(studies.values())


def _windows() -> WindowsRecord:
    val = SplitWindows(
        labels=np.array([0, 1, 1, 0, 1], dtype="float32"),
        starts=np.array([10, 11, 12, 20, 21]),
        first_date="2015-01-02",
        last_date="2015-02-03",
    )
    return WindowsRecord(horizon=1, train_n=100, train_positive_rate=0.25, val=val, test=None)


def test_windows_round_trip() -> None:
    record = _windows().to_json()
    assert record["val"]["runs"] == [[10, 12], [20, 21]]
    assert record["test"] == {"n": 0}
    again = WindowsRecord.from_json(json.loads(json.dumps(record)))
    assert again.to_json() == record
    assert again.val is not None and again.test is None
    np.testing.assert_array_equal(again.val.starts, [10, 11, 12, 20, 21])
    assert again.val.positive_rate == pytest.approx(0.6)


def test_baselines_round_trip() -> None:
    fitted = {
        "base_rate": Baseline("base_rate", np.full(4, -1.5), np.full(3, -1.5), {"rate": 0.18}),
        "no_test": Baseline("no_test", np.array([0.5, -0.25]), np.zeros(0), {}),
    }
    record = json.loads(json.dumps(baselines_to_json(fitted)))
    assert record["no_test"]["test"] is None
    parsed = baselines_from_json(record)
    assert parsed["no_test"].test is None
    np.testing.assert_array_equal(parsed["base_rate"].val, np.full(4, -1.5, dtype="float32"))
    assert baselines_to_json(parsed) == record
    assert baselines_from_json(None) == {}


def test_an_evaluation_run_round_trips_with_nan_as_null() -> None:
    run = EvalRun(
        trial=3,
        seed_index=1,
        seed=99,
        arch="d16-l1-h2-f2",
        param_count=6785,
        refit=True,
        best_epoch=2,
        epochs_run=2,
        val={"bce": math.nan},
        test={"bce": 0.4, "auc": 0.55},
        test_logits=encode_logits(np.array([0.1, -0.2])),
        wall_time_s=1.234,
    )
    record = json.loads(json.dumps(run.to_json()))
    assert record["val"] == {"bce": None} and record["wall_time_s"] == 1.23
    again = EvalRun.from_json(record, key=eval_key(3, 1))
    assert math.isnan(again.val["bce"]) and again.test == run.test
    assert again.to_json() == record
    assert eval_key(3, 1) == f"{ATTR_EVAL_PREFIX}3.1"
    assert eval_runs({eval_key(3, 1): record, eval_key(0, 0): {**record, "trial": 0}})[0].trial == 0


def test_a_trial_record_round_trips() -> None:
    record = TrialRecord(
        epochs_run=5,
        best_epoch=3,
        stop_reason="patience",
        train_loss=0.41,
        val={"bce": 0.39, "auc": 0.56},
        dataset="GSPC.dataset.a25",
        dataset_sha256="ab" * 32,
        device="cpu",
        precision="fp32",
        windows_train=3766,
        windows_val=444,
        wall_time_s=12.345,
        windows_per_s=1234.56,
        val_logits=encode_logits(np.zeros(3)),
    )
    attrs = record.to_json()
    assert attrs["val_bce"] == 0.39 and attrs["wall_time_s"] == 12.35
    assert TrialRecord.from_json(attrs).to_json() == attrs


def test_a_storage_written_by_the_first_release_parses() -> None:
    studies = _golden_attrs()
    assert len(studies) == 2
    for attrs in studies:
        windows = WindowsRecord.from_json(attrs[ATTR_WINDOWS])
        assert windows.val is not None and windows.test is not None
        assert len(windows.val.labels) == len(windows.val.starts)
        assert windows.to_json() == attrs[ATTR_WINDOWS]  # written the same way today
        baselines = baselines_from_json(attrs[ATTR_BASELINES])
        assert baselines and all(len(b.val) == len(windows.val.starts) for b in baselines.values())
        assert baselines_to_json(baselines) == attrs[ATTR_BASELINES]
        runs = eval_runs(attrs)
        assert runs and [r.to_json() for r in runs] == [
            attrs[eval_key(r.trial, r.seed_index)] for r in runs
        ]
        assert dataset_pin(attrs) == attrs[ATTR_DATASET_SHA256]


def test_the_trials_of_the_first_release_parse() -> None:
    with sqlite3.connect(GOLDEN) as db:
        rows = db.execute(
            "SELECT t.trial_id, u.key, u.value_json FROM trials AS t "
            "JOIN trial_user_attributes AS u ON u.trial_id = t.trial_id WHERE t.state = 'COMPLETE'"
        ).fetchall()
    trials: dict[int, dict[str, object]] = {}
    for trial, key, value in rows:
        trials.setdefault(trial, {})[key] = json.loads(value)
    assert trials
    for attrs in trials.values():
        record = TrialRecord.from_json(attrs)
        assert {k: attrs[k] for k in record.to_json()} == record.to_json()


def test_an_older_pin_is_read_from_the_fingerprint() -> None:
    assert dataset_pin({ATTR_FIELDS: {"dataset_sha256": json.dumps("cd" * 32)}}) == "cd" * 32
    assert dataset_pin({}) is None


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("not an object", "finscale.eval.1.0: expected a JSON object, got str"),
        ({"trial": 1, "seed_index": 0}, "finscale.eval.1.0: field 'seed' is missing"),
        (
            {"trial": "one", "seed_index": 0, "seed": 1, "arch": "a", "param_count": 1},
            "finscale.eval.1.0: invalid literal",
        ),
    ],
)
def test_a_damaged_evaluation_run_names_its_key(record: object, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        EvalRun.from_json(record, key=eval_key(1, 0))


def test_damaged_windows_and_baselines_name_their_key() -> None:
    with pytest.raises(RecordError, match=r"finscale.windows: field 'runs' is missing"):
        WindowsRecord.from_json({"val": {"n": 3, "labels": "bits:3:AA=="}})
    with pytest.raises(RecordError, match=r"finscale.baselines.logistic: field 'val' is missing"):
        baselines_from_json({"logistic": {"test": None}})


def test_reruns_replace_what_they_rerun() -> None:
    arch = {"arch": CategoricalDistribution(["a"])}
    failed = create_trial(
        state=TrialState.FAIL,
        params={"arch": "a"},
        distributions=arch,
        user_attrs={TRIAL_FAIL_REASON: "stale heartbeat"},
    )
    failed.number = 0
    rerun = create_trial(
        value=0.5,
        params={"arch": "a"},
        distributions=arch,
        system_attrs={SYSTEM_REQUEUED_FROM: 0},
    )
    rerun.number = 1
    retried = create_trial(
        value=0.6,
        params={"arch": "a"},
        distributions=arch,
        system_attrs={SYSTEM_RETRY_HISTORY: [7], SYSTEM_FAILED_TRIAL: 7},
    )
    retried.number = 2
    assert [t.number for t in counted([failed, rerun, retried])] == [1, 2]
    assert (requeued_from(rerun), requeued_from(retried), requeued_from(failed)) == (0, 7, None)
    assert fail_reason(failed) == "stale heartbeat" and fail_reason(rerun, "none") == "none"
