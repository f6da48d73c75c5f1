"""Optuna storage, idempotent study set-up, and the study's global trial budget.

This module alone opens Optuna storage. Everything that must not race between workers (creating
a study, checking its fingerprint, enqueuing the forced trials, reserving a trial slot) runs
under a per-study lock: a Postgres advisory lock, or a file lock next to an SQLite file.

The budget is exact. A worker may start a trial only while `finished + running < n_trials`,
checked and acted on under the lock, so N workers never overshoot it. `finished` counts
COMPLETE, PRUNED and FAIL trials, except a failed trial that was handed back to the queue
(stale heartbeat, SIGTERM): its rerun counts in its place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import random
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from finscale.errors import SpecError, StorageUnavailableError, StudyMismatchError
from finscale.settings import Settings
from finscale.spec import StudySpec, fingerprint, fingerprint_fields

log = logging.getLogger(__name__)

ATTR_FINGERPRINT = "finscale.fingerprint"
ATTR_FIELDS = "finscale.fingerprint_fields"
ATTR_SPEC = "finscale.spec"
ATTR_N_TRIALS = "finscale.n_trials"
ATTR_EXTREMES = "finscale.forced_extremes"
SYSTEM_REQUEUED_FROM = "finscale:requeued_from"

T = TypeVar("T")

# Errors that mean "the database did not answer", as opposed to a bug or a refusal.
_TRANSIENT = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    optuna.exceptions.StorageInternalError,
)


def display_url(url: str) -> str:
    """The storage URL with any password masked, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<unparsable storage URL>"


def normalize_url(url: str) -> str:
    """`postgresql://…` means psycopg 3 (the driver finscale installs), not psycopg2."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def private_pgpassfile(environ: dict[str, str] | None = None) -> Path | None:
    """Make `PGPASSFILE` usable by libpq when it is group-readable.

    libpq ignores a password file that its group may read, but a Kubernetes Secret volume can
    only be read by a non-root worker through the pod's group (files belong to root). The file
    is copied once to a private temporary file (mode 0600, this user's) and `PGPASSFILE` points
    there. Nothing is done when the file is already private or absent.

    Returns:
        The private copy, if one was made.
    """
    env = os.environ if environ is None else environ
    given = env.get("PGPASSFILE")
    if not given:
        return None
    source = Path(given)
    try:
        mode = source.stat().st_mode
    except OSError:
        return None
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    fd, name = tempfile.mkstemp(prefix="finscale-pgpass-")
    with os.fdopen(fd, "wb") as copy:  # mkstemp creates it with mode 0600
        copy.write(source.read_bytes())
    env["PGPASSFILE"] = name
    log.debug("PGPASSFILE %s is group-readable; using a private copy", source)
    return Path(name)


def with_retries(call: Callable[[], T], *, what: str, attempts: int, url: str) -> T:
    """Run a storage call, retrying transient database errors.

    Waits 0.5, 1, 2, 4, 8 … seconds (plus up to 25 % jitter, so that workers started together
    do not retry in step): six attempts ride out a Postgres restart or fail-over (10-20 s)
    and still fail fast enough for a wrong URL to be noticed.

    Raises:
        StorageUnavailableError: every attempt failed; keeps the last error as its cause.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except _TRANSIENT as e:
            if attempt == attempts:
                raise StorageUnavailableError(
                    f"storage {display_url(url)} unreachable: {what} failed {attempts} times; "
                    f"last error: {_first_line(e)}"
                ) from e
            wait = 0.5 * 2 ** (attempt - 1) * (1 + random.uniform(0, 0.25))
            log.warning(
                "%s failed (%s); retry %d/%d in %.1fs",
                what,
                _first_line(e),
                attempt,
                attempts - 1,
                wait,
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def open_storage(
    url: str,
    *,
    heartbeat_interval_s: int,
    heartbeat_grace_s: int,
    max_retries: int,
    attempts: int = 6,
) -> RDBStorage:
    """An RDB storage with heartbeats and same-parameter retries of stale trials.

    Args:
        url: `postgresql+psycopg://user@host:5432/db` (the password comes from libpq's
            `PGPASSFILE`/`PGPASSWORD`) or `sqlite:///path`.
        heartbeat_interval_s: seconds between heartbeats of a running trial.
        heartbeat_grace_s: silence after which a running trial is failed as stale.
        max_retries: reruns of a stale trial with the same parameters.
        attempts: tries before giving up.

    Raises:
        SpecError: the URL is neither Postgres nor SQLite.
        StorageUnavailableError: the database did not answer.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        private_pgpassfile()
        # A small pool: the main loop, the heartbeat thread and the lock connection.
        engine_kwargs: dict[str, Any] = {
            "pool_pre_ping": True,
            "pool_size": 3,
            "max_overflow": 2,
            "pool_recycle": 300,
            "connect_args": {"connect_timeout": 10},
        }
    elif backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        raise SpecError(f"storage URL {display_url(url)}: expected postgresql:// or sqlite:///")

    def connect() -> RDBStorage:
        # Workers starting together on an empty database would all create Optuna's tables.
        with _exclusive(url, "schema"), warnings.catch_warnings():
            # Heartbeats and stale-trial reruns are experimental in Optuna; they are what we want.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval_s,
                grace_period=heartbeat_grace_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=max_retries
                ),
            )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return with_retries(
        connect,
        what="opening the storage",
        attempts=attempts,
        url=url,
    )


def open_for_reading(settings: Settings) -> RDBStorage | None:
    """The configured storage, for readers (status, report, replay): no reruns of stale
    trials. None when it is an SQLite file that does not exist: reading never creates one.

    Raises:
        StorageUnavailableError: the database did not answer.
    """
    parsed = make_url(settings.storage_url)
    file = parsed.database or ""
    is_file = parsed.get_backend_name() == "sqlite" and file not in ("", ":memory:")
    if is_file and not Path(file).exists():
        return None
    return open_storage(
        settings.storage_url,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        heartbeat_grace_s=settings.heartbeat_grace_s,
        max_retries=0,
        attempts=settings.storage_attempts,
    )


@contextlib.contextmanager
def _advisory_lock(engine: sqlalchemy.engine.Engine, name: str) -> Iterator[None]:
    """A Postgres session advisory lock on a connection of its own (the server releases it if
    the process dies)."""
    key = int.from_bytes(
        hashlib.sha256(f"finscale:{name}".encode()).digest()[:8], "big", signed=True
    )
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _exclusive(
    url: str, name: str, engine: sqlalchemy.engine.Engine | None = None
) -> Iterator[None]:
    """Only one process at a time runs the block for this database and name.

    Postgres: an advisory lock. SQLite: a lock on `<database>.lock`. In-memory SQLite: a
    process-wide lock.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        own = engine is None
        engine = engine or sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with _advisory_lock(engine, name):
                yield
        finally:
            if own:
                engine.dispose()
        return
    database = parsed.database or ""
    if not database or database == ":memory:":
        with _MEMORY_LOCK:
            yield
        return
    with _file_lock(f"{database}.lock"):
        yield


def study_lock(storage: RDBStorage, study_name: str) -> contextlib.AbstractContextManager[None]:
    """Hold the study's lock: only one worker at a time runs the block."""
    return _exclusive(storage.url, f"study:{study_name}", storage.engine)


_MEMORY_LOCK = threading.Lock()


def make_sampler(spec: StudySpec, *, seed: int | None) -> optuna.samplers.BaseSampler:
    """The spec's sampler, seeded with the worker's own seed."""
    if spec.sampler.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        n_startup_trials=spec.sampler.n_startup_trials,
        multivariate=spec.sampler.multivariate,
        constant_liar=True,  # running trials of other workers count as bad: no duplicates
        seed=seed,
    )


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The spec's pruner; it sees the validation metric after every epoch."""
    p = spec.pruner
    if p.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
    if p.type == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource,
            max_resource=int(spec.training.upper("epochs")),
            reduction_factor=p.reduction_factor,
        )
    return optuna.pruners.NopPruner()


def worker_seed(spec: StudySpec, *, index: int, started_trials: int) -> int | None:
    """A seed per worker: workers sharing the spec's seed would propose the same first values,
    and a restarted worker would replay the values of its previous life."""
    if spec.sampler.seed is None:
        return None
    key = f"{spec.sampler.seed}:{index}:{started_trials}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big")


@dataclass(frozen=True)
class Fingerprint:
    """What defines a study's search, flattened, and its digest."""

    fields: dict[str, str]
    digest: str


def study_fingerprint(spec: StudySpec, *, grid_ids: list[str], dataset_sha256: str) -> Fingerprint:
    """The spec's search definition, the architecture grid and the dataset version."""
    definition = spec.search_definition()
    definition["grid"] = grid_ids
    definition["dataset_sha256"] = dataset_sha256
    fields = fingerprint_fields(definition)
    return Fingerprint(fields=fields, digest=fingerprint(fields))


def _differences(stored: dict[str, str], current: dict[str, str]) -> list[str]:
    lines = []
    for key in sorted(set(stored) | set(current)):
        if stored.get(key) != current.get(key):
            before, now = stored.get(key, "(absent)"), current.get(key, "(absent)")
            lines.append(f"  {key}: study has {before}, spec has {now}")
    return lines


def create_or_load_study(
    spec: StudySpec,
    storage: RDBStorage,
    *,
    fingerprint: Fingerprint,
    extremes: dict[str, str],
    seed: int | None,
    attempts: int = 6,
) -> optuna.Study:
    """Create the study, or load it and check that it searches what the spec says.

    Under the study lock: a study is created once however many workers start together, its
    fingerprint is stored once, and the forced-extreme trials are enqueued once.

    Args:
        spec: the study spec.
        storage: from `open_storage`.
        fingerprint: from `study_fingerprint`.
        extremes: forced architectures to enqueue first, name → architecture id.
        seed: this worker's sampler seed.
        attempts: storage tries.

    Raises:
        StudyMismatchError: the stored fingerprint differs (the message lists the fields).
        StorageUnavailableError: the database did not answer.
    """

    def set_up() -> optuna.Study:
        with study_lock(storage, spec.name):
            study = optuna.create_study(
                study_name=spec.name,
                storage=storage,
                sampler=make_sampler(spec, seed=seed),
                pruner=make_pruner(spec),
                direction=spec.objective.direction,
                load_if_exists=True,
            )
            attrs = study.user_attrs
            stored = attrs.get(ATTR_FINGERPRINT)
            if stored is None:
                study.set_user_attr(ATTR_FINGERPRINT, fingerprint.digest)
                study.set_user_attr(ATTR_FIELDS, fingerprint.fields)
                study.set_user_attr(ATTR_SPEC, json.loads(spec.model_dump_json()))
                forced = list(extremes.items())[: spec.n_trials]
                for name, arch_id in forced:
                    study.enqueue_trial({"arch": arch_id}, user_attrs={"forced": name})
                study.set_user_attr(ATTR_EXTREMES, dict(forced))
                log.info("study %s created; %d forced trials enqueued", spec.name, len(forced))
            elif stored != fingerprint.digest:
                diff = _differences(attrs.get(ATTR_FIELDS, {}), fingerprint.fields)
                raise StudyMismatchError(
                    f"study {spec.name} in {display_url(storage.url)} was created with another "
                    "search definition; refusing to join it. Fields that differ:\n"
                    + "\n".join(diff)
                    + "\nUse a new study name (or experiment name), pin the dataset's sha256, or "
                    "restore the spec the study was created with."
                )
            if attrs.get(ATTR_N_TRIALS) != spec.n_trials:
                study.set_user_attr(ATTR_N_TRIALS, spec.n_trials)  # may be extended later
            return study

    return with_retries(
        set_up, what=f"setting up study {spec.name}", attempts=attempts, url=storage.url
    )


@dataclass(frozen=True)
class BudgetState:
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


def superseded(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of failed trials whose rerun took their place."""
    numbers: set[int] = set()
    for t in trials:
        numbers.update(t.system_attrs.get("retry_history", []))
        if SYSTEM_REQUEUED_FROM in t.system_attrs:
            numbers.add(int(t.system_attrs[SYSTEM_REQUEUED_FROM]))
    return numbers


def budget_state(study: optuna.Study, n_trials: int) -> BudgetState:
    """Count the study's trials against its budget."""
    trials = study.get_trials(deepcopy=False)
    replaced = superseded(trials)
    finished = sum(1 for t in trials if t.state.is_finished() and t.number not in replaced)
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
    return BudgetState(n_trials=n_trials, finished=finished, running=running, waiting=waiting)


def reserve_trial(
    study: optuna.Study, storage: RDBStorage, *, n_trials: int
) -> tuple[optuna.Trial | None, BudgetState]:
    """Start the next trial if the budget allows it (a queued one first), under the lock.

    Returns:
        The started trial, or None when the budget is spent or taken by running trials; and
        the budget state seen.
    """
    with study_lock(storage, study.study_name):
        state = budget_state(study, n_trials)
        if not state.can_start:
            return None, state
        with warnings.catch_warnings():  # this worker beats the trial's heart itself
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
            return study.ask(), state


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the running trials whose heartbeat stopped, and queue their reruns (Optuna's
    stale-trial machinery; the storage's callback bounds the reruns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def requeue(study: optuna.Study, trial: optuna.Trial, *, reason: str) -> int:
    """Hand a running trial back: a waiting copy with the same parameters is queued first, then
    the original is failed, so the budget never counts it in between.

    Returns:
        The number of the queued copy.
    """
    frozen = study._storage.get_trial(trial._trial_id)
    system_attrs = {**frozen.system_attrs, SYSTEM_REQUEUED_FROM: frozen.number}
    kept = {k: v for k, v in frozen.user_attrs.items() if k in ("forced",)}
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING,
            params=frozen.params,
            distributions=frozen.distributions,
            user_attrs={**kept, "requeued_from": frozen.number},
            system_attrs=system_attrs,
        )
    )
    copy_number = next(
        t.number
        for t in study.get_trials(deepcopy=False)
        if t.system_attrs.get(SYSTEM_REQUEUED_FROM) == frozen.number
    )
    trial.set_user_attr("fail_reason", f"{reason}; requeued as trial {copy_number}")
    study.tell(trial, state=TrialState.FAIL)
    return copy_number


@dataclass(frozen=True)
class StudySummary:
    """A study's trials by state and its best trial, as `finscale status` shows them."""

    name: str
    n_trials: int | None  # the budget, when the study was set up by finscale
    finished: int  # counted against the budget
    states: dict[str, int]  # trials by state
    best_value: float | None
    best_trial: int | None
    best_arch: str | None
    best_params: dict[str, Any]


def summarize(study: optuna.Study) -> StudySummary:
    """Counts by state, budget progress and the best trial of a study."""
    trials = study.get_trials(deepcopy=False)
    states = {s.name: sum(1 for t in trials if t.state == s) for s in TrialState}
    n_trials = study.user_attrs.get(ATTR_N_TRIALS)
    replaced = superseded(trials)
    finished = sum(1 for t in trials if t.state.is_finished() and t.number not in replaced)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = None
    if complete:
        pick = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
        best = pick(complete, key=lambda t: float(t.value))  # type: ignore[arg-type]
    return StudySummary(
        name=study.study_name,
        n_trials=int(n_trials) if n_trials is not None else None,
        finished=finished,
        states={k: v for k, v in states.items() if v},
        best_value=None if best is None else best.value,
        best_trial=None if best is None else best.number,
        best_arch=None if best is None else best.params.get("arch"),
        best_params={} if best is None else dict(best.params),
    )


def _names(storage: RDBStorage, names: list[str] | None) -> list[str]:
    existing = sorted(
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    )
    missing = [n for n in names or [] if n not in existing]
    if missing:
        raise KeyError(
            f"no study {missing[0]!r} in {display_url(storage.url)}; studies: {existing}"
        )
    return list(names or existing)


def summarize_storage(storage: RDBStorage, names: list[str] | None = None) -> list[StudySummary]:
    """Summaries of the storage's studies (all, or those named), by name.

    Raises:
        KeyError: a named study does not exist (the message lists those that do).
    """
    wanted = _names(storage, names)
    return [summarize(optuna.load_study(study_name=n, storage=storage)) for n in wanted]


@dataclass(frozen=True)
class StoredStudy:
    """A study as the storage holds it, for readers such as the report."""

    name: str
    direction: str  # "minimize" or "maximize"
    user_attrs: dict[str, Any]  # the spec, budget and fingerprint when set up by finscale
    trials: list[FrozenTrial]


def read_studies(storage: RDBStorage, names: list[str] | None = None) -> list[StoredStudy]:
    """The storage's studies (all, or those named), by name, with every trial.

    Raises:
        KeyError: a named study does not exist (the message lists those that do).
    """
    wanted = _names(storage, names)
    out = []
    for name in wanted:
        study = optuna.load_study(study_name=name, storage=storage)
        out.append(
            StoredStudy(
                name=name,
                direction=study.direction.name.lower(),
                user_attrs=dict(study.user_attrs),
                trials=study.get_trials(deepcopy=False),
            )
        )
    return out
