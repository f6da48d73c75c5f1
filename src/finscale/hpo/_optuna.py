"""The one place finscale reaches into Optuna's private attributes and its table schema.

Checked against Optuna 5.0.0 (`CHECKED_OPTUNA`), whose RDB schema is the Alembic revision
`CHECKED_SCHEMA` (`RDBStorage.get_current_version()`). `tests/integration/test_storage.py` fails
when either changes, and compares the SQL count below with the count over loaded trials.

- An ask/tell loop with its own heartbeat thread needs the storage id of a trial, which
  `optuna.Trial` keeps in `_trial_id` and exposes through no public name (the public
  `Trial.number` is the study-local number, and the storage's calls take the id).
- Failing stale trials with a reason needs the stale trials' ids, which `RDBStorage` finds in
  `_get_stale_trial_ids`; and a trial that never beat (its worker died between `ask` and its
  first heartbeat) is never stale to Optuna, so it is looked up in Optuna's tables.
- Every storage call of a running trial runs through one guard; the suggestions all pass
  through `Trial._suggest` (see `GuardedTrial`).
- Counting a study's trials against its budget reads Optuna's `trials` and
  `trial_system_attributes` tables with one aggregate query, instead of loading every trial with
  its parameters and attributes.
- Reserving a trial counts the study's trials and creates or claims the trial row in one
  transaction under the study row's lock, which Optuna's `create_new_trial` takes too; it
  builds the row as that method does (`_get_prepared_new_trial`, in Optuna's scoped session).
- Starting a trial whose row was created or claimed there does what `Study.ask` does after
  that point: the row enters Optuna's trial cache, the study's per-thread trial list is
  dropped, and the `optuna.Trial` is built.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import optuna
import sqlalchemy
import sqlalchemy.orm
from optuna.distributions import BaseDistribution
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _StudyInfo
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from finscale.records import SYSTEM_RETRY_HISTORY, TRIAL_FAIL_REASON

T = TypeVar("T")

# The Optuna release this module was read against, and the Alembic revision of its RDB schema.
CHECKED_OPTUNA = "5.0.0"
CHECKED_SCHEMA = "v3.2.0.a"

# Optuna's system attribute on a stale trial's rerun: the numbers of the trials it reruns.
RETRY_HISTORY = SYSTEM_RETRY_HISTORY

# The rows of a JSON array, as a table `e` with one column `value`, per SQL dialect.
_JSON_ELEMENTS = {
    "postgresql": "jsonb_array_elements_text(CAST(r.value_json AS jsonb)) AS e(value)",
    "sqlite": "json_each(r.value_json) AS e",
}

# The numbers of a study's trials that a rerun replaced: every number in a trial's
# `retry_history`, and the number in its `requeued_from` attribute (a query argument): the set
# that `finscale.hpo.trial_budget.superseded` computes from loaded trials.
_SUPERSEDED_CTE = """
WITH study_trials AS (
    SELECT trial_id, number, state FROM trials WHERE study_id = :study_id
),
reruns AS (
    SELECT a.key, a.value_json
    FROM trial_system_attributes AS a JOIN study_trials AS t ON a.trial_id = t.trial_id
    WHERE a.key IN (:retry_history, :requeued_from)
),
superseded AS (
    SELECT CAST(r.value_json AS INTEGER) AS number FROM reruns AS r
    WHERE r.key = :requeued_from
    UNION
    SELECT CAST(e.value AS INTEGER) AS number FROM reruns AS r, {json_elements}
    WHERE r.key = :retry_history
)
"""

# One statement, so one snapshot of the study (PostgreSQL's READ COMMITTED takes a snapshot per
# statement): trials by state, and how many of them a rerun replaces.
_COUNT_SQL = (
    _SUPERSEDED_CTE
    + """
SELECT state, COUNT(*), SUM(CASE WHEN number IN (SELECT number FROM superseded) THEN 1 ELSE 0 END)
FROM study_trials
GROUP BY state
"""
)

# Failed trials whose user attribute `:reason_key` starts with `:reason_prefix` and that no
# rerun replaced yet.
_NOT_RERUN_SQL = (
    _SUPERSEDED_CTE
    + """
SELECT COUNT(*)
FROM study_trials AS t JOIN trial_user_attributes AS u ON u.trial_id = t.trial_id
WHERE t.state = 'FAIL' AND u.key = :reason_key AND u.value_json LIKE :reason_like ESCAPE '\\'
AND t.number NOT IN (SELECT number FROM superseded)
"""
)


@dataclass(frozen=True)
class TrialCounts:
    """A study's trials by state, and by state those that a rerun took the place of."""

    by_state: dict[TrialState, int]
    superseded_by_state: dict[TrialState, int]


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage id of a trial (what `RDBStorage.get_trial` and heartbeats take)."""
    return int(trial._trial_id)


def study_id(study: optuna.Study) -> int:
    """The storage id of a study."""
    return int(study._study_id)


def stale_trial_ids(storage: RDBStorage, study: int) -> list[int]:
    """Running trials of the study whose last heartbeat is older than the grace period, by the
    database's clock (Optuna's own test)."""
    return list(storage._get_stale_trial_ids(study))


def unbeaten_trial_ids(storage: RDBStorage, study: int) -> list[int]:
    """Running trials of the study that have no heartbeat at all."""
    trials, beats = models.TrialModel, models.TrialHeartbeatModel
    query = (
        sqlalchemy.select(trials.trial_id)
        .outerjoin(beats, beats.trial_id == trials.trial_id)
        .where(trials.study_id == study, trials.state == TrialState.RUNNING)
        .where(beats.trial_heartbeat_id.is_(None))
    )
    with storage.engine.connect() as connection:
        return [int(row[0]) for row in connection.execute(query)]


class Guard(Protocol):
    """Runs one storage call of a running trial: `guard("reporting epoch 3", call)`."""

    def __call__(self, what: str, call: Callable[[], T]) -> T: ...


class GuardedTrial(optuna.Trial):
    """A running trial whose storage calls (report, should_prune, set_user_attr and the
    suggestions) all run through a guard: retries through an outage, a takeover noticed.

    The objective takes it as the `optuna.Trial` it is. It is the trial `study.ask()` returned,
    state and caches included (`Trial.__init__` would read the trial from the storage again).
    Suggestions are guarded at `Trial._suggest`, the one private method they all call.
    """

    def __init__(self, trial: optuna.Trial, guard: Guard) -> None:
        # No super().__init__: it would read the trial from the storage again, unguarded.
        self.__dict__.update(trial.__dict__)
        self._guard = guard

    def report(self, value: float, step: int) -> None:
        self._guard(f"reporting step {step}", lambda: optuna.Trial.report(self, value, step))

    def should_prune(self) -> bool:
        return self._guard("asking the pruner", lambda: optuna.Trial.should_prune(self))

    def set_user_attr(self, key: str, value: Any) -> None:
        self._guard(f"setting {key}", lambda: optuna.Trial.set_user_attr(self, key, value))

    def _suggest(self, name: str, distribution: BaseDistribution) -> Any:
        return self._guard(
            f"suggesting {name}", lambda: optuna.Trial._suggest(self, name, distribution)
        )


def rdb_storage(study: optuna.Study) -> RDBStorage | None:
    """The RDB storage under a study (`Study` wraps it in a `_CachedStorage`), if it has one."""
    storage = study._storage
    if isinstance(storage, optuna.storages._CachedStorage):
        storage = storage._backend
    return storage if isinstance(storage, RDBStorage) else None


def _superseded_args(study_id: int, requeued_from: str) -> dict[str, object]:
    """The arguments of `_SUPERSEDED_CTE`."""
    return {"study_id": study_id, "retry_history": RETRY_HISTORY, "requeued_from": requeued_from}


def count_trials(storage: RDBStorage, study_id: int, *, requeued_from: str) -> TrialCounts | None:
    """Count a study's trials by state in the database, with the superseded ones apart.

    Args:
        storage: the study's storage.
        study_id: the study's storage id.
        requeued_from: the system attribute in which finscale's hand-backs name the trial they
            rerun (Optuna's stale-trial reruns name theirs in `retry_history`).

    Returns:
        The counts; None on a database other than PostgreSQL or SQLite (count loaded trials).
    """
    if storage.engine.dialect.name not in _JSON_ELEMENTS:
        return None
    with storage.engine.connect() as connection:
        return _count(
            connection, storage.engine.dialect.name, study_id, requeued_from=requeued_from
        )


def _count(
    connection: sqlalchemy.Connection | sqlalchemy.orm.Session,
    dialect: str,
    study_id: int,
    *,
    requeued_from: str,
) -> TrialCounts:
    rows = connection.execute(
        sqlalchemy.text(_COUNT_SQL.format(json_elements=_JSON_ELEMENTS[dialect])),
        _superseded_args(study_id, requeued_from),
    ).all()
    return TrialCounts(
        by_state={TrialState[state]: int(n) for state, n, _ in rows},
        superseded_by_state={TrialState[state]: int(s) for state, _, s in rows},
    )


def failures_not_rerun(
    storage: RDBStorage, study_id: int, *, reason_prefix: str, requeued_from: str
) -> int:
    """How many of the study's failed trials have a `fail_reason` that starts with
    `reason_prefix` and no rerun yet (one query; no trial is loaded)."""
    dialect = storage.engine.dialect.name
    query = sqlalchemy.text(_NOT_RERUN_SQL.format(json_elements=_JSON_ELEMENTS[dialect]))
    # The attribute is stored as JSON: a string value starts with its quote.
    pattern = json.dumps(reason_prefix)[:-1].replace("%", r"\%").replace("_", r"\_") + "%"
    with storage.engine.connect() as connection:
        return int(
            connection.execute(
                query,
                {
                    **_superseded_args(study_id, requeued_from),
                    "reason_key": TRIAL_FAIL_REASON,
                    "reason_like": pattern,
                },
            ).scalar_one()
        )


@dataclass(frozen=True)
class Reservation:
    """What `reserve_row` saw and did: the counts under the lock, and the trial row it set
    RUNNING (None when there was no room), claimed from the queue or created."""

    counts: TrialCounts
    trial: FrozenTrial | None = None


def reserve_row(
    storage: RDBStorage,
    study_id: int,
    *,
    requeued_from: str,
    has_room: Callable[[TrialCounts], bool],
) -> Reservation:
    """Count the study's trials and, if `has_room(counts)`, set one trial row RUNNING (the
    first queued one, else a new one), in one transaction that holds the study's row lock.

    The lock is the one Optuna takes to number a new trial (`SELECT … FOR UPDATE` on the
    `studies` row), so every trial row created by any worker, Optuna's own calls included, waits
    for it, and two reservations never both act on one count. One transaction and one commit:
    the lock is held for a few statements, not for several round trips and commits. SQLite
    takes no row locks; its callers hold a lock of their own around this call.

    Returns:
        The counts seen, and the trial row as far as it is known here (id, number, start), as
        `create_new_trial` returns it to Optuna's cache.
    """
    trials = models.TrialModel
    with _create_scoped_session(storage.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        counts = _count(session, storage.engine.dialect.name, study_id, requeued_from=requeued_from)
        if not has_room(counts):
            return Reservation(counts)
        row = None
        if counts.by_state.get(TrialState.WAITING):
            # Queued first, run first, as `Study.ask` takes them.
            row = (
                session.query(trials)
                .filter(trials.study_id == study_id, trials.state == TrialState.WAITING)
                .order_by(trials.number)
                .with_for_update()
                .first()
            )
            if row is not None:
                row.state = TrialState.RUNNING
                row.datetime_start = datetime.now()  # as `set_trial_state_values` sets it
        if row is None:
            row = storage._get_prepared_new_trial(study_id, None, session)
        started = FrozenTrial(
            number=int(row.number),
            state=TrialState.RUNNING,
            value=None,
            values=None,
            datetime_start=row.datetime_start,
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=int(row.trial_id),
        )
        return Reservation(counts, started)


def start_trial(study: optuna.Study, started: FrozenTrial) -> optuna.Trial:
    """The `optuna.Trial` of a RUNNING trial row that `reserve_row` created or claimed, built
    as `Study.ask` builds it.

    The row enters Optuna's trial cache (`_CachedStorage`) as `create_new_trial` enters it: the
    cache must know a trial's number before its parameters are set, and it reads an unfinished
    trial again before any list of trials it returns (a claimed row is unfinished, or newer than
    any finished one, when it was last read), so the bare row is never what a sampler sees. The
    study's per-thread trial list is dropped, so that the sampler sees the trials started since
    (constant liar); `Trial.__init__` reads the whole row, and a queued trial's `fixed_params`
    apply.
    """
    cache = study._storage
    if isinstance(cache, optuna.storages._CachedStorage):
        sid = study_id(study)
        with cache._lock:
            if sid not in cache._studies:
                cache._studies[sid] = _StudyInfo()
            cache._add_trials_to_cache(sid, [started])
    study._thread_local.cached_all_trials = None
    return optuna.Trial(study, trial_id(started))
