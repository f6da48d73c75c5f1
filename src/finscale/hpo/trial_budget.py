"""The study's global trial budget: counting, reserving a trial slot, handing a trial back,
failing the trials of dead workers (`StaleTrials`).

The budget is exact. A worker may start a trial only while `finished + running < n_trials`,
checked and acted on in one transaction under the study's lock, so N workers never overshoot
it. `finished` counts COMPLETE, PRUNED and FAIL trials, except a failed trial that was handed
back to the queue (stale heartbeat, SIGTERM): its rerun counts in its place.

Why it stays exact with the lock held only for a few statements: a trial row becomes RUNNING
only in `reserve_trial`, in the transaction that counted and found room. Everything else that
workers do without the lock leaves `finished + running` as it is or lowers it: a tell turns a
running trial into a finished one; a hand-back queues its copy (which supersedes the running
original) and then fails the original; a stale trial is failed, then its rerun queued. The count
is a single SQL statement, so it sees one snapshot of the study, never half of one of these.

The lock is the study row's (PostgreSQL's `SELECT … FOR UPDATE`, the lock Optuna takes to
number a new trial); SQLite has no row locks, so there the study's file lock is held around the
transaction. A worker that polls a spent budget takes no lock at all: a count outside the lock
that shows no room only says no sooner.
"""

from __future__ import annotations

import copy
import logging
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from finscale.hpo import _optuna
from finscale.hpo._optuna import (
    TrialCounts,
    count_trials,
    rdb_storage,
    reserve_row,
    start_trial,
    study_id,
    trial_id,
)
from finscale.hpo.locks import reservation_lock, study_lock
from finscale.records import (
    SYSTEM_REQUEUED_FROM,
    SYSTEM_RETRY_HISTORY,
    TRIAL_FAIL_REASON,
    TRIAL_FORCED,
    TRIAL_REQUEUED_FROM,
    counted,
    fail_reason,
    superseded,
)

log = logging.getLogger(__name__)

# Start of the `fail_reason` of a trial failed because its worker stopped beating.
STALE_REASON = "stale heartbeat"


@dataclass(frozen=True)
class TrialBudgetState:
    """Where a study stands against its budget."""

    n_trials: int
    finished: int  # COMPLETE + PRUNED + FAIL, not counting failures handed back to the queue
    running: int
    waiting: int

    @property
    def can_start(self) -> bool:
        return self.finished + self.running < self.n_trials

    @property
    def done(self) -> bool:
        return self.finished >= self.n_trials and self.running == 0


def budget_state(study: optuna.Study, n_trials: int) -> TrialBudgetState:
    """Count the study's trials against its budget.

    The one count of the budget: reservations and the worker's final count use it. On
    PostgreSQL and SQLite it is one aggregate query in the database (no trial is loaded);
    elsewhere it counts the loaded trials. Either way it counts exactly the trials `counted`
    keeps, which `finscale status` and the report apply to the trials they load anyway; a test
    compares the two through every shape of rerun.
    """
    storage = rdb_storage(study)
    counts = None
    if storage is not None:
        counts = count_trials(storage, study_id(study), requeued_from=SYSTEM_REQUEUED_FROM)
    if counts is None:
        trials = study.get_trials(deepcopy=False)
        return TrialBudgetState(
            n_trials=n_trials,
            finished=len(counted(trials)),
            running=sum(1 for t in trials if t.state == TrialState.RUNNING),
            waiting=sum(1 for t in trials if t.state == TrialState.WAITING),
        )
    return _state(counts, n_trials)


def _state(counts: TrialCounts, n_trials: int) -> TrialBudgetState:
    finished = sum(
        n - counts.superseded_by_state[state]
        for state, n in counts.by_state.items()
        if state.is_finished()
    )
    return TrialBudgetState(
        n_trials=n_trials,
        finished=finished,
        running=counts.by_state.get(TrialState.RUNNING, 0),
        waiting=counts.by_state.get(TrialState.WAITING, 0),
    )


def reserve_trial(
    study: optuna.Study, storage: RDBStorage, *, n_trials: int
) -> tuple[optuna.Trial | None, TrialBudgetState]:
    """Start the next trial if the budget allows it (a queued one first).

    A count without any lock comes first: when it shows no room, the call returns at once (an
    idle worker's polls never queue behind the others' reservations). Otherwise the count is
    taken again, and the trial row created or claimed, in one transaction under the study's lock
    (see the module's docstring); the `optuna.Trial` is built, and the sampler runs, after it.

    The trial's first heartbeat is recorded at once: a trial that never beat is invisible to
    Optuna's stale-trial check (`StaleTrials` catches those left by a retried or interrupted
    call).

    Returns:
        The started trial, or None when the budget is spent or taken by running trials; and
        the budget state seen.
    """
    state = budget_state(study, n_trials)
    if not state.can_start:
        return None, state
    with reservation_lock(storage, study.study_name):
        reservation = reserve_row(
            storage,
            study_id(study),
            requeued_from=SYSTEM_REQUEUED_FROM,
            has_room=lambda counts: _state(counts, n_trials).can_start,
        )
    state = _state(reservation.counts, n_trials)
    if reservation.trial is None:
        return None, state
    if storage.get_heartbeat_interval() is not None:
        # Beat once now: should this worker die before its heartbeat thread starts, the trial
        # still goes stale and is rerun, instead of counting as running forever.
        storage.record_heartbeat(trial_id(reservation.trial))
    return start_trial(study, reservation.trial), state


class StaleTrials:
    """Fails the running trials of a study whose worker is gone, with a `fail_reason`, and
    queues their reruns with the same parameters (Optuna's stale-trial callback, bounded by the
    study's `max_retries`).

    A trial is stale when its last heartbeat is older than the grace period by the database's
    clock, or when it never beat and this object has seen it so for a whole grace period (its
    worker died between `ask` and the first beat, or a retried `ask` left it behind). Safe to
    retry: a stale failure whose rerun was not queued yet is found and completed next time.
    """

    def __init__(self, storage: RDBStorage, *, grace_s: float, failed_by: str) -> None:
        self._storage = storage
        self._grace_s = grace_s
        self._failed_by = failed_by
        self._unbeaten: dict[int, float] = {}  # trial id → when first seen without a beat

    def fail(self, study: optuna.Study) -> list[int]:
        """Fail the stale trials of `study` and queue their reruns.

        Returns:
            The numbers of the trials failed by this call.
        """
        storage, study_id = self._storage, _optuna.study_id(study)
        now = time.monotonic()
        unbeaten = _optuna.unbeaten_trial_ids(storage, study_id)
        self._unbeaten = {t: self._unbeaten.get(t, now) for t in unbeaten}
        stale = _optuna.stale_trial_ids(storage, study_id) + [
            t for t, since in self._unbeaten.items() if now - since > self._grace_s
        ]
        failed = []
        for tid in stale:
            reason = (
                f"{STALE_REASON}: no heartbeat for more than {self._grace_s:g}s (its worker "
                f"died or lost the storage); failed by {self._failed_by}"
            )
            try:
                storage.set_trial_user_attr(tid, TRIAL_FAIL_REASON, reason)
                if storage.set_trial_state_values(tid, state=TrialState.FAIL):
                    number = storage.get_trial(tid).number
                    failed.append(number)
                    log.warning("trial %d: %s", number, reason)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # its owner, or another worker, finished it first
        self._queue_reruns(study)
        return failed

    def _queue_reruns(self, study: optuna.Study) -> None:
        """Queue the missing reruns of stale failures, under the study lock: two workers must
        not both see a rerun missing and queue two. A worker calls this before every trial, so
        the trials are loaded, and the lock taken, only when one query finds a rerun missing."""
        callback = self._storage.get_heartbeat_stale_trial_callback()
        if callback is None:
            return
        missing = _optuna.failures_not_rerun(
            self._storage,
            _optuna.study_id(study),
            reason_prefix=STALE_REASON,
            requeued_from=SYSTEM_REQUEUED_FROM,
        )
        if not missing:
            return
        with study_lock(self._storage, study.study_name):
            self._queue_missing(study, callback)

    def _queue_missing(
        self, study: optuna.Study, callback: Callable[[optuna.Study, FrozenTrial], None]
    ) -> None:
        trials = study.get_trials(deepcopy=False)
        # A trial handed back and then found stale already has its copy in the queue.
        rerun = superseded(trials)
        for t in trials:
            reason = fail_reason(t)
            if t.state != TrialState.FAIL or not reason.startswith(STALE_REASON):
                continue
            if t.number in rerun:
                continue
            frozen = copy.deepcopy(t)
            # The rerun starts clean: not this trial's failure or its worker's measurements.
            frozen.user_attrs = {k: v for k, v in t.user_attrs.items() if k == TRIAL_FORCED}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                callback(study, frozen)


# Numbers in a failure reason (an architecture, a learning rate, an epoch) do not make it
# another cause.
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][-+]?\d+)?")


def failure_summary(trials: Sequence[FrozenTrial]) -> tuple[str, int, int] | None:
    """When no counted trial completed and every one failed: the most common cause (reasons
    alike but for their numbers are one cause; the first of them is quoted), how many trials
    it ended, and how many failed in all. None otherwise."""
    finished = counted(trials)
    if not finished or any(t.state != TrialState.FAIL for t in finished):
        return None
    reasons = [fail_reason(t, "no reason recorded") for t in finished]
    causes = Counter(_NUMBER.sub("#", r) for r in reasons)
    cause, count = causes.most_common(1)[0]
    example = next(r for r in reasons if _NUMBER.sub("#", r) == cause)
    return example, count, len(finished)


def requeue(
    study: optuna.Study,
    storage: RDBStorage,
    trial: optuna.Trial,
    *,
    reason: str,
    carry: dict[str, Any] | None = None,
) -> int | None:
    """Hand a running trial back: a waiting copy with the same parameters is queued first, then
    the original is failed, so the budget never counts it in between. Safe to retry.

    `carry`: user attributes the copy starts with (a count of the devices that failed it).

    Returns:
        The number of the queued copy; None when the trial had already been finished by a peer
        (stale heartbeat), whose own rerun, if any, takes its place.
    """
    frozen = storage.get_trial(trial_id(trial))
    if frozen.state.is_finished():  # handed back already (a retried call), or failed by a peer
        copy = _copy_of(study, frozen.number)
        return copy if copy is not None else _rerun_of(study, frozen.number)
    copy_number = _copy_of(study, frozen.number)
    if copy_number is None:  # a retry after a lost answer finds the copy already queued
        system_attrs = {**frozen.system_attrs, SYSTEM_REQUEUED_FROM: frozen.number}
        kept = {k: v for k, v in frozen.user_attrs.items() if k == TRIAL_FORCED}
        study.add_trial(
            optuna.create_trial(
                state=TrialState.WAITING,
                params=frozen.params,
                distributions=frozen.distributions,
                user_attrs={**kept, **(carry or {}), TRIAL_REQUEUED_FROM: frozen.number},
                system_attrs=system_attrs,
            )
        )
        copy_number = _copy_of(study, frozen.number)
        assert copy_number is not None
    trial.set_user_attr(TRIAL_FAIL_REASON, f"{reason}; requeued as trial {copy_number}")
    study.tell(trial, state=TrialState.FAIL)
    return copy_number


def _rerun_of(study: optuna.Study, number: int) -> int | None:
    """The rerun Optuna's stale-trial callback queued for trial `number`, if any."""
    return next(
        (
            t.number
            for t in study.get_trials(deepcopy=False)
            if number in t.system_attrs.get(SYSTEM_RETRY_HISTORY, [])
        ),
        None,
    )


def _copy_of(study: optuna.Study, number: int) -> int | None:
    return next(
        (
            t.number
            for t in study.get_trials(deepcopy=False)
            if t.system_attrs.get(SYSTEM_REQUEUED_FROM) == number
        ),
        None,
    )
