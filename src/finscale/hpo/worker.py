"""A worker: joins a study and runs trials until the study's global budget is spent.

The same entry point runs as a local process (`finscale run`) and in a Kubernetes pod
(`finscale worker`). A worker exits

- 0 when the study has `n_trials` finished trials and none running (it waits while others
  run, so that one of them going stale is still rerun by someone);
- 2 on a bad spec, bad data, a study created with another search definition, a storage that
  refuses it (authentication, no such database), or a study whose every trial failed
  (`StudyFailedError` quotes the most common reason);
- 3 when the storage does not answer within `FINSCALE_STORAGE_DEADLINE_S`; a trial whose
  storage calls ran out of time is handed back first, as on SIGTERM, when the storage lets it;
- 143 on SIGTERM or SIGINT, after handing its running trial back to the queue.

Outages and heartbeats (docs/reliability.md): every storage call of a running trial is retried
until the deadline; the heartbeat thread only logs a missed beat. A worker fails a peer's trial
as stale only after its own storage has been steady for a whole grace period, so that owners
beat again first after an outage. An owner whose trial a peer failed anyway (a pause longer
than the grace) notices at its next storage call, or from its heartbeat thread, logs it and
leaves the trial to its rerun.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO, TypeVar

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from finscale.errors import (
    DeviceUnusableError,
    Interrupted,
    StorageUnavailableError,
    StudyFailedError,
    TrialFailedError,
)
from finscale.hpo import storage, trial_budget
from finscale.hpo._optuna import GuardedTrial, trial_id
from finscale.hpo.events import EventLog
from finscale.hpo.join import Joined, join_study, retry
from finscale.hpo.node import check_compile, check_device, device_fault, node_name
from finscale.hpo.stops import Heartbeat, Signals, Stops, TakenOver
from finscale.model import Arch
from finscale.records import (
    TRIAL_DEVICE_FAULTS,
    TRIAL_FAIL_REASON,
    TRIAL_VAL_LABELS,
    TRIAL_VAL_LOGITS,
    TRIAL_WORKER,
)
from finscale.settings import Settings
from finscale.spec import StudySpec

if TYPE_CHECKING:
    import torch

    from finscale.data import Prepared

log = logging.getLogger(__name__)

T = TypeVar("T")

Objective = Callable[[optuna.Trial], float]


class ObjectiveFactory(Protocol):
    """Builds a worker's objective; `ArchitecturalObjective` (training) unless a test swaps in a
    cheap one to run the engine (budget, reservation, hand-back) without training."""

    def __call__(
        self,
        spec: StudySpec,
        *,
        grid: list[Arch],
        prepared: Prepared,
        dataset_sha256: str,
        device: torch.device,
        events: EventLog,
        check_stop: Callable[[], None] | None = None,
        memory_share: float = 1.0,
    ) -> Objective: ...


@dataclass(frozen=True)
class WorkerReport:
    """What one worker did."""

    study: str
    trials_run: int
    final: trial_budget.TrialBudgetState
    outcome: Literal["done", "idle"] = "done"  # the study is done, or nothing was left to start


def run_worker(
    spec: StudySpec,
    settings: Settings,
    *,
    index: int = 0,
    events: TextIO | None = None,
    install_signal_handlers: bool = True,
    until: Literal["done", "idle"] = "done",
    make_objective: ObjectiveFactory | None = None,
) -> WorkerReport:
    """Run trials of `spec`'s study until its global budget is spent.

    With `until="done"` (local runs) the worker stays until no trial of the study runs, so
    that it reruns a peer's trial if that peer dies. With `until="idle"` (a Job's pods) it
    leaves as soon as nothing is left for it to start and no running trial is its own index's
    (`_left_behind`), freeing its device: a dead pod is replaced by the Job, and the
    replacement, of the same index, waits for its predecessor's trial to go stale and reruns
    it. So every index exits 0 once the budget is spent, and the last one sees the study end.

    Args:
        spec: the study.
        settings: storage, data directory, device, heartbeat and polling settings.
        index: this worker's index (a Job's completion index); seeds its sampler.
        events: where the JSON event lines go (standard output by default).
        install_signal_handlers: hand the running trial back on SIGTERM/SIGINT.
        until: "done" or "idle", see above.
        make_objective: builds the objective the trials run (`ArchitecturalObjective`, which
            trains, by default). It is built after the first reservation, so that torch loads
            while the worker already holds a trial; a failure hands that trial back.

    Raises:
        Interrupted: a signal arrived; the running trial is back in the queue.
        StorageUnavailableError: the storage did not answer by the deadline; a running trial
            was handed back first when the storage came back in time to take it.
        StudyFailedError: the budget is spent and every counted trial failed.
        SpecError, DataError, StudyMismatchError, StorageConfigError: see `join_study`.
    """
    if settings.device == "cuda":  # a GPU pod: its device checked before any trial is taken
        check_device(spec, settings)
    if spec.training.compile:
        check_compile(spec)
    joined = join_study(spec, settings, index=index)
    study, store = joined.study, joined.storage
    log_events = EventLog(study=spec.name, worker=index, stream=events)
    signals = Signals()
    stops = Stops(signals)
    objective: Objective | None = None
    if install_signal_handlers:
        signals.install()
    log.info(
        "worker %d joined study %s (%s): %d architectures",
        index, spec.name, storage.display_url(settings.storage_url), len(joined.grid),
    )  # fmt: skip
    stale = trial_budget.StaleTrials(
        store, grace_s=settings.heartbeat_grace_s, failed_by=f"worker {index}"
    )
    trials_run = 0
    while True:
        signals.check()
        # After an outage, owners need a grace period to beat again: until then a stale
        # heartbeat says nothing about its worker.
        if storage.REACHABILITY.steady_for_s() >= settings.heartbeat_grace_s:
            retry(settings, "failing stale trials", lambda: stale.fail(study))
        trial, state = retry(
            settings,
            "reserving a trial",
            lambda: trial_budget.reserve_trial(study, store, n_trials=spec.n_trials),
        )
        if trial is None:
            if state.done:
                break
            if until == "idle":
                behind = retry(
                    settings, "reading running trials", lambda: _left_behind(study, index)
                )
                if not behind:
                    log.info(
                        "worker %d: nothing left to start (%d finished, %d running); leaving",
                        index, state.finished, state.running,
                    )  # fmt: skip
                    return WorkerReport(
                        study=spec.name, trials_run=trials_run, final=state, outcome="idle"
                    )
                log.debug("worker %d: waiting for trials %s to end or go stale", index, behind)
                time.sleep(settings.poll_interval_s)
                continue
            log.debug(
                "budget taken: %d finished, %d running; waiting", state.finished, state.running
            )
            time.sleep(settings.poll_interval_s)
            continue
        # Which worker holds it, named at once: an idle pod waits for the trials of its own
        # index (`_left_behind`), and the report tells a one-worker search (repeatable) from one
        # whose proposals depended on how several interleaved.
        retry(settings, "naming the trial's worker", functools.partial(_name_worker, trial, index))
        if objective is None:
            # The trial beats while torch and the data load (seconds; longer on a busy node),
            # so that no peer takes it for a dead worker's.
            with Heartbeat(store, trial_id(trial), settings.heartbeat_interval_s):
                objective = _build_objective(
                    joined, trial, make_objective, stops, log_events, settings, index=index
                )
        trials_run += 1
        _run_trial(
            study, store, trial, objective, stops, log_events, settings,
            max_device_faults=spec.max_retries,
        )  # fmt: skip
    trials = retry(settings, "reading the trials", lambda: study.get_trials(deepcopy=False))
    final = retry(
        settings, "counting trials", lambda: trial_budget.budget_state(study, spec.n_trials)
    )
    log.info(
        "study %s: budget spent (%d finished); worker %d ran %d trials",
        spec.name, final.finished, index, trials_run,
    )  # fmt: skip
    failure = trial_budget.failure_summary(trials)
    if failure is not None:
        reason, count, total = failure
        raise StudyFailedError(
            f"study {spec.name}: its budget is spent and all {total} counted trials failed; "
            f"{count} of them with: {reason}. Fix the spec or the data, then run the study "
            "under a new name (or delete it)"
        )
    return WorkerReport(study=spec.name, trials_run=trials_run, final=final)


def _name_worker(trial: optuna.Trial, index: int) -> None:
    trial.set_user_attr(TRIAL_WORKER, index)


def _left_behind(study: optuna.Study, index: int) -> list[int]:
    """The running trials an idle worker sees to their end before it leaves: those of its own
    index, which a predecessor of its pod was running when it died (once stale, this worker
    reruns them), and those that name no worker yet (reserved a moment ago, or by a worker that
    died at once). A peer's trial is the peer's: if that peer dies, its index's next pod reruns
    it, so no pod has to wait for the whole study with an idle GPU."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t.number for t in running if t.user_attrs.get(TRIAL_WORKER) in (None, index)]


def _build_objective(
    joined: Joined,
    reserved: optuna.Trial,
    make_objective: ObjectiveFactory | None,
    stops: Stops,
    events: EventLog,
    settings: Settings,
    *,
    index: int,
) -> Objective:
    """The worker's objective, built once it holds its first trial: the dataset's rows, torch
    and the model load here, not before the first reservation.

    Raises:
        Whatever building raised (a dataset gone or altered, a bad device setting, a signal),
        after handing `reserved` back to the queue.
    """
    try:
        from finscale.train.device import resolve_device  # torch

        device = resolve_device(settings.device)
        if make_objective is None:
            from finscale.hpo.objective import ArchitecturalObjective  # torch and the model

            make_objective = ArchitecturalObjective
        objective = make_objective(
            joined.spec,
            grid=joined.grid,
            prepared=joined.prepared,
            dataset_sha256=joined.dataset_sha256,
            device=device,
            events=events,
            check_stop=stops.check,
            memory_share=settings.memory_share,
        )
        stops.check()
    except BaseException as e:
        guarded = GuardedTrial(reserved, _TrialGuard(settings, reserved.number))
        why = f"interrupted: {e}" if isinstance(e, Interrupted) else f"worker start failed: {e}"
        _hand_back(joined.study, joined.storage, guarded, why, events, settings)
        raise
    log.info("worker %d: windows %s, device %s", index, joined.prepared.splits.counts(), device)
    return objective


class _TrialGuard:
    """The guard of a running trial's storage calls: retried through an outage; a call refused
    because the trial is finished means a peer took it over."""

    def __init__(self, settings: Settings, number: int) -> None:
        self._settings = settings
        self._number = number

    def __call__(self, what: str, call: Callable[[], T]) -> T:
        try:
            return retry(self._settings, f"trial {self._number}: {what}", call)
        except optuna.exceptions.UpdateFinishedTrialError as e:
            raise TakenOver(f"a peer finished it ({e})") from e


def _run_trial(
    study: optuna.Study,
    store: RDBStorage,
    asked: optuna.Trial,
    objective: Objective,
    stops: Stops,
    events: EventLog,
    settings: Settings,
    *,
    max_device_faults: int,
) -> None:
    """Run one trial with heartbeats and tell the study how it ended.

    Raises:
        Interrupted: a signal arrived; the trial was handed back.
        DeviceUnusableError: the device failed under the trial (`device_fault`); the trial was
            handed back, unless devices failed it `max_device_faults` times already.
        StorageUnavailableError: a storage call ran out of time; the trial was handed back if
            the storage let it (else a peer fails it as stale later and reruns it).
    """
    started = time.perf_counter()
    trial = GuardedTrial(asked, _TrialGuard(settings, asked.number))
    value: float | None = None
    state, reason = TrialState.COMPLETE, None
    beating = Heartbeat(store, trial_id(trial), settings.heartbeat_interval_s)
    stops.heartbeat = beating
    try:
        try:
            with beating:
                stops.check()
                value = objective(trial)
        finally:
            stops.heartbeat = None
    except optuna.TrialPruned as e:
        state, reason = TrialState.PRUNED, str(e)
    except TrialFailedError as e:
        state, reason = TrialState.FAIL, str(e)
    except TakenOver as e:
        _left(trial, e, events)
        return
    except Interrupted as e:
        _hand_back(study, store, trial, f"interrupted: {e}", events, settings)
        raise
    except StorageUnavailableError as e:
        _hand_back(study, store, trial, f"storage unavailable: {e}", events, settings)
        raise
    except Exception as e:
        fault = device_fault(e)
        if fault is not None:  # the node's, not the trial's: hand it back, leave the node
            done = _device_failed(
                study, store, trial, fault, events, settings, limit=max_device_faults
            )
            raise DeviceUnusableError(
                f"node {node_name()}: the device failed during trial {trial.number}: {fault}. "
                f"{done}; exit 4 lets the Job retry this pod, where the scheduler may place it "
                "on another node"
            ) from e
        # A bug, not a property of the trial: record it, and let the worker fail loudly.
        why = f"error: {e!r}"
        with contextlib.suppress(TakenOver):
            retry(
                settings,
                "recording a failure",
                lambda: _tell(study, store, trial, TrialState.FAIL, None, why),
            )
        events.emit("trial_end", trial=trial.number, state="FAIL", reason=why)
        raise
    try:
        retry(
            settings, "recording a trial", lambda: _tell(study, store, trial, state, value, reason)
        )
    except TakenOver as e:
        _left(trial, e, events)
        return
    except StorageUnavailableError as e:
        _hand_back(study, store, trial, f"storage unavailable: {e}", events, settings)
        raise
    events.emit(
        "trial_end",
        trial=trial.number,
        state=state.name,
        value=value,
        reason=reason,
        wall_time_s=round(time.perf_counter() - started, 2),
        user_attrs=_readable(trial.user_attrs) if state == TrialState.COMPLETE else None,
    )


def _device_failed(
    study: optuna.Study,
    store: RDBStorage,
    trial: optuna.Trial,
    fault: str,
    events: EventLog,
    settings: Settings,
    *,
    limit: int,
) -> str:
    """Hand back a trial whose device failed under it, its copy counting the devices that
    failed it; once `limit` devices have, it counts as failed instead (the trial itself may
    be what breaks them), so that no trial goes round the nodes for ever. Returns what was
    done, for the worker's message."""
    faults = int(trial.user_attrs.get(TRIAL_DEVICE_FAULTS, 0)) + 1
    why = f"device fault on node {node_name()}: {fault}"
    if faults <= limit:
        carry = {TRIAL_DEVICE_FAULTS: faults}
        _hand_back(study, store, trial, why, events, settings, carry=carry)
        return f"Trial {trial.number} was handed back (device fault {faults} of at most {limit})"
    reason = f"{why}; {faults} devices failed under it (max_retries {limit}): counted as failed"
    with contextlib.suppress(TakenOver):
        retry(
            settings,
            "recording a failure",
            lambda: _tell(study, store, trial, TrialState.FAIL, None, reason),
        )
    events.emit("trial_end", trial=trial.number, state="FAIL", reason=reason)
    return f"Trial {trial.number} failed on {faults} devices and counts as failed"


def _readable(attrs: dict[str, Any]) -> dict[str, Any]:
    """A trial's attributes for its log line: without the encoded validation logits and
    labels (kilobytes per trial, for the report; the storage keeps them)."""
    return {k: v for k, v in attrs.items() if k not in (TRIAL_VAL_LOGITS, TRIAL_VAL_LABELS)}


def _left(trial: optuna.Trial, why: TakenOver, events: EventLog) -> None:
    log.warning("trial %d was taken over: %s; leaving it to its rerun", trial.number, why)
    events.emit("trial_end", trial=trial.number, state="TAKEN_OVER", reason=str(why))


def _hand_back(
    study: optuna.Study,
    store: RDBStorage,
    trial: optuna.Trial,
    why: str,
    events: EventLog,
    settings: Settings,
    *,
    carry: dict[str, Any] | None = None,
) -> None:
    """Queue the trial again with the same parameters and fail the original (as on SIGTERM).
    When the storage does not let it, the trial stays RUNNING with a silent heartbeat: a peer
    (or this worker restarted) fails it as stale and reruns it."""
    try:
        number = retry(
            settings,
            "handing the trial back",
            lambda: trial_budget.requeue(study, store, trial, reason=why, carry=carry),
        )
    except optuna.exceptions.UpdateFinishedTrialError as e:
        _left(trial, TakenOver(f"a peer finished it ({e})"), events)
        return
    except TakenOver as e:
        _left(trial, e, events)
        return
    except StorageUnavailableError:
        log.error(
            "trial %d could not be handed back; it will be failed as stale %ds after its last "
            "heartbeat and rerun with the same parameters",
            trial.number, settings.heartbeat_grace_s,
        )  # fmt: skip
        events.emit("trial_end", trial=trial.number, state="RUNNING", reason=why)
        return
    events.emit("trial_end", trial=trial.number, state="FAIL", reason=why, requeued_as=number)


def _tell(
    study: optuna.Study,
    store: RDBStorage,
    trial: optuna.Trial,
    state: TrialState,
    value: float | None,
    reason: str | None,
) -> None:
    """Tell once, even when retried: a retry after a lost answer finds the trial finished.

    Raises:
        TakenOver: the trial was finished by a peer, not by an earlier try of this call.
    """
    frozen = store.get_trial(trial_id(trial))
    if frozen.state.is_finished():
        if frozen.state == state and frozen.user_attrs.get(TRIAL_FAIL_REASON) == reason:
            return  # an earlier try got through
        raise TakenOver(f"it is already {frozen.state.name}")
    try:
        if reason is not None and state == TrialState.FAIL:
            optuna.Trial.set_user_attr(trial, TRIAL_FAIL_REASON, reason)
        if state == TrialState.COMPLETE:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
    except optuna.exceptions.UpdateFinishedTrialError as e:
        raise TakenOver(f"a peer finished it ({e})") from e
