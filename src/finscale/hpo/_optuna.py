"""The one place finscale reaches into Optuna's private attributes.

Checked against Optuna 5.0.0:

- An ask/tell loop with its own heartbeat thread needs the storage id of a trial, which
  `optuna.Trial` keeps in `_trial_id` and exposes through no public name (the public
  `Trial.number` is the study-local number, and the storage's calls take the id).
- Failing stale trials with a reason needs the stale trials' ids, which `RDBStorage` finds in
  `_get_stale_trial_ids`; and a trial that never beat (its worker died between `ask` and its
  first heartbeat) is never stale to Optuna, so it is looked up in Optuna's tables.
- Every storage call of a running trial runs through one guard; the suggestions all pass
  through `Trial._suggest` (see `GuardedTrial`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import TrialState

T = TypeVar("T")


def trial_id(trial: optuna.Trial) -> int:
    """The storage id of a running trial (what `RDBStorage.get_trial` and heartbeats take)."""
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
