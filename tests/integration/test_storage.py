"""The study storage on SQLite and PostgreSQL: idempotent set-up, fingerprints, an exact budget,
requeued and stale trials."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from finscale.errors import StorageUnavailableError, StudyMismatchError, StudyNotFoundError
from finscale.hpo.budget import (
    BudgetState,
    budget_state,
    fail_stale_trials,
    requeue,
    reserve_trial,
    superseded,
)
from finscale.hpo.read import summarize_storage
from finscale.hpo.storage import display_url, normalize_url, open_storage
from finscale.hpo.study import (
    ATTR_FINGERPRINT,
    ATTR_N_TRIALS,
    Fingerprint,
    create_or_load_study,
    study_fingerprint,
)
from finscale.spec import StudySpec, load_study
from tests.conftest import REPO

SPEC = load_study(REPO / "configs" / "experiments" / "validation.yaml")


def _storage(url: str, *, max_retries: int = 2) -> optuna.storages.RDBStorage:
    return open_storage(url, heartbeat_interval_s=1, heartbeat_grace_s=2, max_retries=max_retries)


def _fingerprint(spec: StudySpec = SPEC, sha: str = "ab" * 32) -> Fingerprint:
    return study_fingerprint(spec, grid_ids=["d32-l2-h2-f2", "d64-l1-h4-f2"], dataset_sha256=sha)


def _set_up(url: str, spec: StudySpec = SPEC, **kwargs: object) -> optuna.Study:
    fp = kwargs.pop("fingerprint", _fingerprint(spec))
    extremes = kwargs.pop("extremes", {"narrowest": "d32-l2-h2-f2", "widest": "d64-l1-h4-f2"})
    return create_or_load_study(
        spec,
        _storage(url),
        fingerprint=fp,
        extremes=extremes,
        seed=0,  # type: ignore[arg-type]
    )


def test_set_up_is_idempotent_and_enqueues_once(storage_url: str) -> None:
    first = _set_up(storage_url)
    second = _set_up(storage_url)
    assert first.study_name == second.study_name == SPEC.name
    trials = second.get_trials()
    assert [t.state for t in trials] == [TrialState.WAITING] * 2
    assert [t.user_attrs["forced"] for t in trials] == ["narrowest", "widest"]
    assert second.user_attrs[ATTR_FINGERPRINT] == _fingerprint().digest
    assert second.user_attrs[ATTR_N_TRIALS] == 3


def test_a_changed_search_is_refused_with_the_fields_that_differ(storage_url: str) -> None:
    _set_up(storage_url)
    changed = SPEC.model_copy(update={"data": SPEC.data.model_copy(update={"threshold": 0.02})})
    with pytest.raises(StudyMismatchError) as info:
        _set_up(storage_url, changed)
    message = str(info.value)
    assert "was created with another search definition; refusing to join it" in message
    assert "data.threshold: study has 0.01, spec has 0.02" in message
    with pytest.raises(
        StudyMismatchError, match=r"dataset_sha256: study has \"abab.*\", spec has \"cdcd"
    ):
        _set_up(storage_url, fingerprint=_fingerprint(sha="cd" * 32))


def test_extending_the_budget_keeps_the_study(storage_url: str) -> None:
    _set_up(storage_url)
    extended = _set_up(storage_url, SPEC.model_copy(update={"n_trials": 10, "workers": 4}))
    assert extended.user_attrs[ATTR_N_TRIALS] == 10


def test_concurrent_reservations_never_overshoot_the_budget(storage_url: str) -> None:
    spec = SPEC.model_copy(update={"n_trials": 7})
    _set_up(storage_url, spec)
    started: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            storage = _storage(storage_url)
            study = optuna.load_study(study_name=spec.name, storage=storage)
            while True:
                trial, state = reserve_trial(study, storage, n_trials=spec.n_trials)
                if trial is None:
                    if state.done:
                        return
                    time.sleep(0.01)
                    continue
                started.append(trial.number)
                trial.suggest_float("x", 0.0, 1.0)
                study.tell(trial, 0.5)
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    study = optuna.load_study(study_name=spec.name, storage=_storage(storage_url))
    assert len(started) == 7
    assert budget_state(study, 7) == BudgetState(n_trials=7, finished=7, running=0, waiting=0)
    assert sorted(t.number for t in study.get_trials()) == list(range(7))


def test_a_requeued_trial_keeps_its_parameters_and_the_budget(storage_url: str) -> None:
    storage = _storage(storage_url)
    _set_up(
        storage_url,
        SPEC.model_copy(
            update={"architecture": SPEC.architecture.model_copy(update={"forced_extremes": False})}
        ),
        extremes={},
    )
    study = optuna.load_study(study_name=SPEC.name, storage=storage)
    trial, _ = reserve_trial(study, storage, n_trials=3)
    assert trial is not None
    x = trial.suggest_float("x", 0.0, 1.0)
    copy_number = requeue(study, storage, trial, reason="interrupted: SIGTERM received")
    original, copy = study.get_trials()[trial.number], study.get_trials()[copy_number]
    assert original.state == TrialState.FAIL
    assert (
        original.user_attrs["fail_reason"]
        == f"interrupted: SIGTERM received; requeued as trial {copy_number}"
    )
    assert copy.state == TrialState.WAITING
    assert copy.params == {"x": x}
    assert budget_state(study, 3).finished == 0  # the failed original does not count
    again, _ = reserve_trial(study, storage, n_trials=3)
    assert again is not None and again.number == copy_number
    assert again.suggest_float("x", 0.0, 1.0) == x


def test_a_stale_trial_is_rerun_with_the_same_parameters(storage_url: str) -> None:
    storage = _storage(storage_url, max_retries=1)
    study = optuna.create_study(study_name="stale", storage=storage)
    trial, _ = reserve_trial(study, storage, n_trials=5)
    assert trial is not None
    trial.suggest_float("x", 0.0, 1.0)
    storage.record_heartbeat(trial._trial_id)
    time.sleep(3)  # past the 2 s grace period, no heartbeat
    fail_stale_trials(study)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == trials[0].params
    assert superseded(trials) == {0}
    assert budget_state(study, 5).finished == 0
    # The rerun goes stale too: max_retries=1 is spent, so its failure is final and counts.
    rerun, _ = reserve_trial(study, storage, n_trials=5)
    assert rerun is not None
    storage.record_heartbeat(rerun._trial_id)
    time.sleep(3)
    fail_stale_trials(study)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL]
    assert budget_state(study, 5).finished == 1


def test_summaries_show_states_budget_and_best(storage_url: str) -> None:
    storage = _storage(storage_url)
    study = _set_up(storage_url)
    for value in (0.5, 0.3):
        trial, _ = reserve_trial(study, storage, n_trials=3)
        assert trial is not None
        trial.suggest_categorical("arch", ["d32-l2-h2-f2", "d64-l1-h4-f2"])
        study.tell(trial, value)
    (summary,) = summarize_storage(storage)
    assert summary.name == SPEC.name
    assert (summary.n_trials, summary.finished) == (3, 2)
    assert summary.states == {"COMPLETE": 2}
    assert (summary.best_value, summary.best_arch) == (0.3, "d64-l1-h4-f2")
    with pytest.raises(StudyNotFoundError, match="no study 'nope'"):
        summarize_storage(storage, ["nope"])


def test_an_unreachable_database_fails_after_bounded_retries() -> None:
    started = time.monotonic()
    with pytest.raises(
        StorageUnavailableError,
        match=r"storage postgresql\+psycopg://nobody:\*\*\*@127\.0\.0\.1:9/x unreachable: opening the storage failed 2 times",
    ):
        open_storage(
            "postgresql://nobody:pw@127.0.0.1:9/x",
            heartbeat_interval_s=1,
            heartbeat_grace_s=2,
            max_retries=0,
            attempts=2,
        )
    assert 0.5 <= time.monotonic() - started < 30


def test_urls_are_shown_without_their_password(tmp_path: Path) -> None:
    assert display_url("postgresql://u:secret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert normalize_url("postgresql://u@db/x") == "postgresql+psycopg://u@db/x"
    assert normalize_url(f"sqlite:///{tmp_path}/a.db") == f"sqlite:///{tmp_path}/a.db"
