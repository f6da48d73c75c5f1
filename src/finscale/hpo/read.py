"""Read views of the storage for people and the report: summaries, whole studies, one trial.

Readers never write: they take a storage opened by `finscale.hpo.storage.open_for_reading`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from finscale import defaults
from finscale.errors import StudyNotFoundError
from finscale.hpo.storage import display_url, with_retries
from finscale.records import ATTR_N_TRIALS, StoredStudy, counted


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
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = None
    if complete:
        pick = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
        best = pick(complete, key=lambda t: float(t.value))  # type: ignore[arg-type]
    return StudySummary(
        name=study.study_name,
        n_trials=int(n_trials) if n_trials is not None else None,
        finished=len(counted(trials)),
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
        raise StudyNotFoundError(
            f"no study {missing[0]!r} in {display_url(storage.url)}; studies: {existing}"
        )
    return list(names or existing)


def summarize_storage(
    storage: RDBStorage,
    names: list[str] | None = None,
    *,
    deadline_s: float = defaults.STORAGE_DEADLINE_S,
) -> list[StudySummary]:
    """Summaries of the storage's studies (all, or those named), by name.

    Raises:
        StudyNotFoundError: a named study does not exist (the message lists those that do).
        StorageUnavailableError: the storage did not answer.
    """

    def read() -> list[StudySummary]:
        wanted = _names(storage, names)
        return [summarize(optuna.load_study(study_name=n, storage=storage)) for n in wanted]

    return with_retries(read, what="reading studies", url=storage.url, deadline_s=deadline_s)


def read_studies(
    storage: RDBStorage,
    names: list[str] | None = None,
    *,
    deadline_s: float = defaults.STORAGE_DEADLINE_S,
) -> list[StoredStudy]:
    """The storage's studies (all, or those named), by name, with every trial.

    Raises:
        StudyNotFoundError: a named study does not exist (the message lists those that do).
        StorageUnavailableError: the storage did not answer.
    """

    def read() -> list[StoredStudy]:
        out = []
        for name in _names(storage, names):
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

    return with_retries(read, what="reading studies", url=storage.url, deadline_s=deadline_s)
