"""The study storage on SQLite and PostgreSQL: idempotent set-up, fingerprints, an exact budget,
requeued and stale trials."""

from __future__ import annotations

import gc
import multiprocessing as mp
import random
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from finscale.errors import (
    StorageConfigError,
    StorageUnavailableError,
    StudyMismatchError,
    StudyNotFoundError,
)
from finscale.hpo import _optuna
from finscale.hpo.read import summarize_storage
from finscale.hpo.storage import display_url, normalize_url, open_for_reading, open_storage
from finscale.hpo.study import (
    ATTR_FINGERPRINT,
    ATTR_N_TRIALS,
    Fingerprint,
    create_or_load_study,
    study_fingerprint,
)
from finscale.hpo.trial_budget import (
    STALE_REASON,
    SYSTEM_REQUEUED_FROM,
    StaleTrials,
    TrialBudgetState,
    budget_state,
    counted,
    requeue,
    reserve_trial,
    superseded,
)
from finscale.settings import Settings
from finscale.spec import StudySpec, load_study
from tests.conftest import REPO

SPEC = load_study(REPO / "configs" / "experiments" / "validation.yaml")


def _storage(url: str, *, max_retries: int = 2) -> optuna.storages.RDBStorage:
    return open_storage(url, heartbeat_interval_s=1, heartbeat_grace_s=2, max_retries=max_retries)


def _fingerprint(spec: StudySpec = SPEC, sha: str = "ab" * 32) -> Fingerprint:
    return study_fingerprint(spec, grid_ids=["d32-l2-h2-f2", "d64-l1-h4-f2"], dataset_sha256=sha)


def _counted_over_loaded_trials(study: optuna.Study, n_trials: int) -> TrialBudgetState:
    """The budget counted the slow way: every trial loaded, `counted` applied."""
    trials = study.get_trials(deepcopy=False)
    return TrialBudgetState(
        n_trials=n_trials,
        finished=len(counted(trials)),
        running=sum(1 for t in trials if t.state == TrialState.RUNNING),
        waiting=sum(1 for t in trials if t.state == TrialState.WAITING),
    )


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
    assert budget_state(study, 7) == TrialBudgetState(n_trials=7, finished=7, running=0, waiting=0)
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


def _fail_as_stale(storage: optuna.storages.RDBStorage, study: optuna.Study) -> int:
    """A running trial failed as stale by a worker that died before it queued the rerun."""
    trial, _ = reserve_trial(study, storage, n_trials=99)
    assert trial is not None
    trial.suggest_float("x", 0.0, 1.0)
    tid = _optuna.trial_id(trial)
    storage.set_trial_user_attr(tid, "fail_reason", f"{STALE_REASON}: no heartbeat for 2s")
    storage.set_trial_state_values(tid, state=TrialState.FAIL)
    return trial.number


def test_a_stale_failure_left_without_its_rerun_is_found_by_one_query_and_rerun(
    storage_url: str,
) -> None:
    storage = _storage(storage_url, max_retries=1)
    study = optuna.create_study(study_name="half-failed", storage=storage)
    other, _ = reserve_trial(study, storage, n_trials=99)
    assert other is not None
    study.tell(other, state=TrialState.FAIL)  # a failure of another cause is never rerun
    number = _fail_as_stale(storage, study)

    def not_rerun() -> int:
        return _optuna.failures_not_rerun(
            storage,
            _optuna.study_id(study),
            reason_prefix=STALE_REASON,
            requeued_from=SYSTEM_REQUEUED_FROM,
        )

    assert not_rerun() == 1
    StaleTrials(storage, grace_s=60, failed_by="worker 2").fail(study)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.WAITING]
    assert trials[2].system_attrs["retry_history"] == [number]
    assert not_rerun() == 0
    rerun, _ = reserve_trial(study, storage, n_trials=99)
    assert rerun is not None and rerun.number == 2
    study.tell(rerun, 0.5)
    # A stale trial that its worker had handed back already has its copy: no second rerun.
    handed_back = _fail_as_stale(storage, study)
    assert handed_back == 3
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING, system_attrs={SYSTEM_REQUEUED_FROM: handed_back}
        )
    )
    assert not_rerun() == 0
    before = len(study.get_trials())
    StaleTrials(storage, grace_s=60, failed_by="worker 2")._queue_missing(
        study,
        storage.get_heartbeat_stale_trial_callback(),
    )
    assert len(study.get_trials()) == before


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


def _add(study: optuna.Study, state: TrialState, **system_attrs: Any) -> int:
    value = 0.5 if state == TrialState.COMPLETE else None
    study.add_trial(optuna.create_trial(state=state, value=value, system_attrs=system_attrs))
    return study.get_trials(deepcopy=False)[-1].number


def _rerun_chains(study: optuna.Study) -> set[int]:
    """Every shape of rerun the storage can hold, written as Optuna's stale-trial callback and
    finscale's `requeue` write them. Returns the numbers of the trials a rerun replaces."""
    complete, pruned, fail = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL
    running, waiting = TrialState.RUNNING, TrialState.WAITING
    for state in (complete, pruned, fail, running, waiting):  # no reruns
        _add(study, state)
    replaced = set()
    # stale, rerun; the rerun stale too, rerun again; that one completed
    a = _add(study, fail)
    b = _add(study, fail, failed_trial=a, retry_history=[a])
    _add(study, complete, failed_trial=a, retry_history=[a, b])
    replaced |= {a, b}
    # stale, rerun; the rerun handed back (SIGTERM), its copy queued
    a = _add(study, fail)
    b = _add(study, fail, failed_trial=a, retry_history=[a])
    _add(study, waiting, failed_trial=a, retry_history=[a], **{SYSTEM_REQUEUED_FROM: b})
    replaced |= {a, b}
    # handed back; the copy went stale; its rerun runs
    a = _add(study, fail)
    b = _add(study, fail, **{SYSTEM_REQUEUED_FROM: a})
    _add(study, running, failed_trial=b, retry_history=[b], **{SYSTEM_REQUEUED_FROM: a})
    replaced |= {a, b}
    # stale, rerun; the rerun stale too with no retry left: its failure counts
    a = _add(study, fail)
    _add(study, fail, failed_trial=a, retry_history=[a])
    replaced |= {a}
    # a hand-back half done: the copy is queued, the original still runs
    a = _add(study, running)
    _add(study, waiting, **{SYSTEM_REQUEUED_FROM: a})
    replaced |= {a}
    # failed as stale by a peer while its own worker handed it back: two reruns, both count
    a = _add(study, fail)
    _add(study, complete, failed_trial=a, retry_history=[a])
    _add(study, complete, **{SYSTEM_REQUEUED_FROM: a})
    replaced |= {a}
    return replaced


def test_the_budget_count_in_sql_equals_the_count_over_loaded_trials(storage_url: str) -> None:
    # given every shape of rerun chain
    storage = _storage(storage_url)
    study = optuna.create_study(study_name="chains", storage=storage)
    replaced = _rerun_chains(study)
    trials = study.get_trials(deepcopy=False)
    # then `superseded` finds the trials the reruns replace
    assert superseded(trials) == replaced
    # and the SQL count agrees with the count over loaded trials, by state and in total
    expected = TrialBudgetState(n_trials=99, finished=7, running=3, waiting=3)
    assert _counted_over_loaded_trials(study, 99) == expected
    assert budget_state(study, 99) == expected
    counts = _optuna.count_trials(
        storage, _optuna.study_id(study), requeued_from=SYSTEM_REQUEUED_FROM
    )
    assert counts is not None
    states = {t.state for t in trials}
    assert counts.by_state == {s: sum(t.state == s for t in trials) for s in states}
    assert counts.superseded_by_state == {
        s: sum(t.state == s and t.number in replaced for t in trials) for s in states
    }


def test_the_storage_schema_is_the_one_the_sql_count_was_written_for(storage_url: str) -> None:
    """Fails on an Optuna upgrade that changes its tables: re-check `hpo/_optuna.py`'s SQL."""
    storage = _storage(storage_url)
    assert storage.get_current_version() == storage.get_head_version() == _optuna.CHECKED_SCHEMA
    assert optuna.__version__ == _optuna.CHECKED_OPTUNA, "re-check hpo/_optuna.py, then bump it"


def test_enqueued_parameters_apply_to_reserved_trials(storage_url: str) -> None:
    storage = _storage(storage_url)
    study = _set_up(storage_url)  # enqueues the narrowest and the widest architecture
    archs = ["d32-l2-h2-f2", "d64-l1-h4-f2", "d48-l1-h2-f2"]
    seen = []
    for _ in range(2):
        trial, _ = reserve_trial(study, storage, n_trials=3)
        assert trial is not None
        seen.append((trial.suggest_categorical("arch", archs), trial.user_attrs["forced"]))
    assert seen == [("d32-l2-h2-f2", "narrowest"), ("d64-l1-h4-f2", "widest")]
    assert budget_state(study, 3) == TrialBudgetState(n_trials=3, finished=0, running=2, waiting=0)


def test_a_reservation_warns_nothing(storage_url: str) -> None:
    storage = _storage(storage_url)  # heartbeats on: `Study.ask` would warn
    study = _set_up(storage_url)
    gc.collect()  # earlier tests' storages, closed now: their warnings are not this call's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):  # two queued trials claimed, one created
            trial, _ = reserve_trial(study, storage, n_trials=3)
            assert trial is not None
            trial.suggest_float("x", 0.0, 1.0)


class _RecordingSampler(optuna.samplers.TPESampler):
    """The workers' TPE (multivariate, constant liar), recording the running trials it is shown
    when it samples."""

    def __init__(self) -> None:
        super().__init__(multivariate=True, constant_liar=True, n_startup_trials=0, seed=0)
        self.running_seen: list[set[int]] = []

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        self.running_seen.append({t.number for t in running})
        return super().sample_relative(study, trial, search_space)


def test_the_sampler_sees_the_trials_other_workers_run(storage_url: str) -> None:
    # given two workers of one study, each with its own storage, study and sampler
    study = optuna.create_study(study_name="liar", storage=_storage(storage_url))
    for x in (0.1, 0.9):
        study.add_trial(
            optuna.create_trial(
                params={"x": x},
                distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
                value=x,
            )
        )
    workers = []
    for _ in range(2):
        storage = _storage(storage_url)
        sampler = _RecordingSampler()
        workers.append(
            (
                optuna.load_study(study_name="liar", storage=storage, sampler=sampler),
                storage,
                sampler,
            )
        )
    # when each reserves a trial and samples
    numbers = []
    for worker_study, storage, _ in workers:
        trial, _ = reserve_trial(worker_study, storage, n_trials=5)
        assert trial is not None
        trial.suggest_float("x", 0.0, 1.0)
        numbers.append(trial.number)
    # then the second sampler was shown the first worker's running trial
    assert [s.running_seen for _, _, s in workers] == [[{numbers[0]}], [set(numbers)]]


def test_a_reserved_trial_whose_worker_never_beats_goes_stale(storage_url: str) -> None:
    storage = _storage(storage_url, max_retries=1)
    study = optuna.create_study(study_name="silent", storage=storage)
    trial, _ = reserve_trial(study, storage, n_trials=2)
    assert trial is not None
    time.sleep(3)  # past the 2 s grace period: the worker died before its heartbeat thread began
    StaleTrials(storage, grace_s=2, failed_by="worker 1").fail(study)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.WAITING]
    assert budget_state(study, 2) == TrialBudgetState(n_trials=2, finished=0, running=0, waiting=1)


def test_a_poll_never_waits_for_a_reservation_in_progress(postgres_url: str) -> None:
    # given a study whose budget of 1 is spent, and a reservation of another worker that holds
    # the study's lock (it waits inside, between its count and its decision)
    storage = _storage(postgres_url)
    study = optuna.create_study(study_name="busy", storage=storage)
    study.add_trial(optuna.create_trial(value=0.5))
    inside, release = threading.Event(), threading.Event()

    def deciding(counts: _optuna.TrialCounts) -> bool:
        inside.set()
        release.wait(60)
        return False

    holder = threading.Thread(
        target=_optuna.reserve_row,
        args=(_storage(postgres_url), _optuna.study_id(study)),
        kwargs={"requeued_from": SYSTEM_REQUEUED_FROM, "has_room": deciding},
    )
    holder.start()
    assert inside.wait(30)
    results: dict[str, Any] = {}

    def reserve(key: str, n_trials: int) -> None:
        worker_storage = _storage(postgres_url)
        worker_study = optuna.load_study(study_name="busy", storage=worker_storage)
        results[key] = reserve_trial(worker_study, worker_storage, n_trials=n_trials)

    try:
        # when a worker that would start a trial and an idle worker both call in
        starting = threading.Thread(target=reserve, args=("starting", 3))
        polling = threading.Thread(target=reserve, args=("polling", 1))
        starting.start()
        polling.start()
        polling.join(30)
        # then the poll is answered while the lock is still held; the reservation waits for it
        assert not polling.is_alive() and results["polling"][0] is None
        assert results["polling"][1].done
        assert starting.is_alive() and "starting" not in results
    finally:
        release.set()
        holder.join(30)
    starting.join(30)
    trial, state = results["starting"]
    assert trial is not None and trial.number == 1 and state.finished == 1


def _racing_worker(url: str, name: str, n_trials: int, seed: int, go: Any, out: Any) -> None:
    """Reserve and end trials as fast as possible: complete, pruned, failed, or handed back.
    After every reservation, count the slow way that the budget holds."""
    rng = random.Random(seed)
    storage = _storage(url)
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    out.put("ready")
    go.wait()  # all processes start reserving together
    worst, ran = 0, 0
    while True:
        trial, state = reserve_trial(study, storage, n_trials=n_trials)
        if trial is None:
            if state.done:
                break
            time.sleep(0.005)
            continue
        ran += 1
        seen = _counted_over_loaded_trials(study, n_trials)
        worst = max(worst, seen.finished + seen.running)
        x = trial.suggest_float("x", 0.0, 1.0)
        draw = rng.random()
        if draw < 0.2:
            requeue(study, storage, trial, reason="interrupted: test")
        elif draw < 0.3:
            study.tell(trial, state=TrialState.FAIL)
        elif draw < 0.4:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, x)
    out.put((worst, ran))


def test_worker_processes_racing_for_the_budget_never_overshoot_it(storage_url: str) -> None:
    # given 8 processes on one study of 30 trials, handing back a fifth of what they start
    n_trials, processes = 30, 8
    study = optuna.create_study(study_name="race", storage=_storage(storage_url))
    context = mp.get_context("spawn")
    go, out = context.Event(), context.Queue()
    procs = [
        context.Process(target=_racing_worker, args=(storage_url, "race", n_trials, i, go, out))
        for i in range(processes)
    ]
    # when they start together and run until the budget is spent
    for p in procs:
        p.start()
    try:
        assert [out.get(timeout=300) for _ in procs] == ["ready"] * processes
        go.set()
        results = [out.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(timeout=60)
    finally:  # a budget that never ends must fail the test, not hang the run
        for p in procs:
            p.kill()
    # then no process ever saw more than the budget finished or running, and it is spent exactly
    assert all(p.exitcode == 0 for p in procs)
    assert max(worst for worst, _ in results) <= n_trials
    expected = TrialBudgetState(n_trials=n_trials, finished=n_trials, running=0, waiting=0)
    assert _counted_over_loaded_trials(study, n_trials) == expected
    assert budget_state(study, n_trials) == expected
    handed_back = sum(ran for _, ran in results) - n_trials
    assert len(study.get_trials()) == n_trials + handed_back


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
