"""The study storage on SQLite and PostgreSQL: idempotent set-up, fingerprints, an exact budget,
requeued and stale trials."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from finscale.errors import (
    StorageConfigError,
    StorageUnavailableError,
    StudyMismatchError,
    StudyNotFoundError,
)
from finscale.hpo.budget import (
    STALE_REASON,
    BudgetState,
    StaleTrials,
    budget_state,
    requeue,
    reserve_trial,
    superseded,
)
from finscale.hpo.read import summarize_storage
from finscale.hpo.storage import display_url, normalize_url, open_for_reading, open_storage
from finscale.hpo.study import (
    ATTR_FINGERPRINT,
    ATTR_N_TRIALS,
    Fingerprint,
    create_or_load_study,
    study_fingerprint,
)
from finscale.settings import Settings
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
    stale = StaleTrials(storage, grace_s=2, failed_by="worker 7")
    trial, _ = reserve_trial(study, storage, n_trials=5)
    assert trial is not None
    trial.suggest_float("x", 0.0, 1.0)
    time.sleep(3)  # past the 2 s grace period, no heartbeat since the reservation's
    assert stale.fail(study) == [0]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[0].user_attrs["fail_reason"].startswith(f"{STALE_REASON}: no heartbeat for more")
    assert "failed by worker 7" in trials[0].user_attrs["fail_reason"]
    assert "fail_reason" not in trials[1].user_attrs  # the rerun starts clean
    assert trials[1].params == trials[0].params
    assert superseded(trials) == {0}
    assert budget_state(study, 5).finished == 0
    assert stale.fail(study) == []  # idempotent: no second rerun
    assert len(study.get_trials()) == 2
    # The rerun goes stale too: max_retries=1 is spent, so its failure is final and counts.
    rerun, _ = reserve_trial(study, storage, n_trials=5)
    assert rerun is not None
    time.sleep(3)
    stale.fail(study)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL]
    assert budget_state(study, 5).finished == 1


def test_a_trial_that_never_beat_is_failed_and_rerun_after_a_grace_period(
    storage_url: str,
) -> None:
    # A worker died between `ask` and its first heartbeat (or a retried `ask` left a trial
    # behind): Optuna never calls such a trial stale, and the budget would wait on it forever.
    storage = _storage(storage_url, max_retries=1)
    study = optuna.create_study(study_name="unbeaten", storage=storage)
    study.enqueue_trial({"x": 0.25})
    orphan = study.ask()
    orphan.suggest_float("x", 0.0, 1.0)
    stale = StaleTrials(storage, grace_s=2, failed_by="worker 0")
    assert stale.fail(study) == []  # first seen now
    time.sleep(2.5)
    assert stale.fail(study) == [orphan.number]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    rerun, _ = reserve_trial(study, storage, n_trials=1)
    assert rerun is not None and rerun.suggest_float("x", 0.0, 1.0) == 0.25


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


def test_an_unreachable_database_is_retried_until_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(
        StorageUnavailableError,
        match=r"storage postgresql\+psycopg://nobody:\*\*\*@127\.0\.0\.1:9/x unreachable: "
        r"opening the storage failed for 3s \(\d+ tries; deadline 3s, "
        r"FINSCALE_STORAGE_DEADLINE_S\); last error: connection failed: .*Connection refused",
    ):
        open_storage(
            "postgresql://nobody:pw@127.0.0.1:9/x",
            heartbeat_interval_s=1,
            heartbeat_grace_s=2,
            max_retries=0,
            deadline_s=3,
        )
    assert 3 <= time.monotonic() - started < 5


def test_a_missing_database_is_refused_at_once_with_the_servers_words(
    postgres_url: str,
) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    started = time.monotonic()
    with pytest.raises(
        StorageConfigError,
        match=r"storage postgresql\+psycopg://.*/no_such_database refused opening the storage: "
        r'connection failed: .*database "no_such_database" does not exist',
    ):
        open_storage(
            missing, heartbeat_interval_s=1, heartbeat_grace_s=2, max_retries=0, deadline_s=60
        )
    assert time.monotonic() - started < 5  # not retried for the 60 s deadline


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u@host:port/x", r"does not parse"),
        ("postgresql+psycopg2://u@db/x", r"unsupported driver 'psycopg2'"),
        ("postgresql+asyncpg://u@db/x", r"unsupported driver 'asyncpg'"),
        ("mysql://u@db/x", r"unsupported backend 'mysql'"),
    ],
)
def test_a_bad_storage_url_is_refused_before_any_connection(url: str, message: str) -> None:
    with pytest.raises(StorageConfigError, match=message):
        open_storage(url, heartbeat_interval_s=1, heartbeat_grace_s=2, max_retries=0)


def test_readers_create_nothing(postgres_url: str, tmp_path: Path) -> None:
    # An empty PostgreSQL database: no Optuna tables appear.
    assert open_for_reading(Settings(storage_url=postgres_url)) is None
    engine = sqlalchemy.create_engine(normalize_url(postgres_url))
    try:
        assert sqlalchemy.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    # A missing SQLite file (and its folder) stays missing; an empty one gets no tables.
    missing = tmp_path / "nowhere" / "studies.db"
    assert open_for_reading(Settings(storage_url=f"sqlite:///{missing}")) is None
    assert not missing.parent.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    assert open_for_reading(Settings(storage_url=f"sqlite:///{empty}")) is None
    assert empty.stat().st_size == 0
    assert not Path(f"{empty}.lock").exists()


def test_urls_are_shown_without_their_password(tmp_path: Path) -> None:
    assert display_url("postgresql://u:secret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert normalize_url("postgresql://u@db/x") == "postgresql+psycopg://u@db/x"
    assert normalize_url(f"sqlite:///{tmp_path}/a.db") == f"sqlite:///{tmp_path}/a.db"


def test_status_report_and_train_on_an_empty_database_create_no_table(
    postgres_url: str,
    tmp_path: Path,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.conftest import run_cli

    env.setenv("FINSCALE_STORAGE_URL", postgres_url)
    code, out, _ = run_cli(["status"], capsys)
    assert code == 0 and "no studies in" in out
    code, _, err = run_cli(["report", "--out", str(tmp_path / "report")], capsys)
    assert code == 2 and "no studies in" in err
    code, _, err = run_cli(["train", "--trial", "0"], capsys)
    assert code == 2 and "no study 'train'" in err
    engine = sqlalchemy.create_engine(normalize_url(postgres_url))
    try:
        assert sqlalchemy.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
