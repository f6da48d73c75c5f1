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
- Starting a trial whose row was created or claimed elsewhere does what `Study.ask` does after
  that point: it drops the study's per-thread trial cache and builds the `optuna.Trial`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

T = TypeVar("T")

# The Optuna release this module was read against, and the Alembic revision of its RDB schema.
CHECKED_OPTUNA = "5.0.0"
CHECKED_SCHEMA = "v3.2.0.a"

# Optuna's system attribute on a stale trial's rerun: the numbers of the trials it reruns.
RETRY_HISTORY = "retry_history"

# The rows of a JSON array, as a table `e` with one column `value`, per SQL dialect.
_JSON_ELEMENTS = {
    "postgresql": "jsonb_array_elements_text(CAST(r.value_json AS jsonb)) AS e(value)",
    "sqlite": "json_each(r.value_json) AS e",
}

# One statement, so one snapshot of the study (PostgreSQL's READ COMMITTED takes a snapshot per
# statement): trials by state, and how many of them a rerun replaces. `superseded` is the set
# that `finscale.hpo.budget.superseded` computes from loaded trials: every number in a trial's
# `retry_history`, and the number in its `requeued_from` attribute (`count_trials` argument).
_COUNT_SQL = """
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
SELECT state, COUNT(*), SUM(CASE WHEN number IN (SELECT number FROM superseded) THEN 1 ELSE 0 END)
FROM study_trials
GROUP BY state
"""


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
    json_elements = _JSON_ELEMENTS.get(storage.engine.dialect.name)
    if json_elements is None:
        return None
    query = sqlalchemy.text(_COUNT_SQL.format(json_elements=json_elements))
    with storage.engine.connect() as connection:
        rows = connection.execute(
            query,
            {"study_id": study_id, "retry_history": RETRY_HISTORY, "requeued_from": requeued_from},
        ).all()
    return TrialCounts(
        by_state={TrialState[state]: int(n) for state, n, _ in rows},
        superseded_by_state={TrialState[state]: int(s) for state, _, s in rows},
    )


def create_trial(study: optuna.Study) -> int:
    """A new RUNNING trial row; its id. Created through the study's own storage, as `Study.ask`
    creates it: Optuna's trial cache (`_CachedStorage`) must know a trial before its parameters
    are set."""
    return int(study._storage.create_new_trial(study_id(study)))


def start_trial(study: optuna.Study, trial_id: int, *, claimed: bool) -> optuna.Trial:
    """The `optuna.Trial` of a RUNNING trial row this process created or claimed, built as
    `Study.ask` builds it: the study's cached trial list is dropped, so that the sampler sees the
    trials started since (constant liar), and the trial's enqueued `fixed_params` apply.

    A claimed trial (a queued one this process set RUNNING) is read into Optuna's trial cache
    first, as `Study.ask` reads it when it looks for queued trials.
    """
    if claimed:
        study._storage.get_all_trials(study_id(study), deepcopy=False, states=(TrialState.RUNNING,))
    study._thread_local.cached_all_trials = None
    return optuna.Trial(study, trial_id)
