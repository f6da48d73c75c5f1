"""Joining a study: the spec, dataset and grid checked, the storage opened, the study created
or loaded and pinned to its dataset version, its records stored once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from finscale.data.manifest import find_dataset
from finscale.errors import DataError
from finscale.hpo import storage
from finscale.hpo.inputs import StudyData, feature_count, load_study_data, study_grid
from finscale.hpo.study import (
    Code,
    create_or_load_study,
    ensure_study_records,
    pinned_dataset,
    study_fingerprint,
    worker_seed,
)
from finscale.identity import code_sha256
from finscale.model import Arch, extreme_archs
from finscale.records import ATTR_BASELINES, ATTR_DATASET_SHA256, ATTR_WINDOWS
from finscale.settings import Settings
from finscale.spec import StudySpec

if TYPE_CHECKING:
    from finscale.data import Prepared

log = logging.getLogger(__name__)

T = TypeVar("T")

# What `ensure_study_records` stores beside the trials; a worker joining a study that holds them
# all loads its dataset's rows only after its first reservation.
_RECORDS = frozenset({ATTR_DATASET_SHA256, ATTR_WINDOWS, ATTR_BASELINES})


def retry(settings: Settings, what: str, call: Callable[[], T]) -> T:
    return storage.with_retries(
        call, what=what, url=settings.storage_url, deadline_s=settings.storage_deadline_s
    )


@dataclass
class Joined:
    """A study a worker has joined, with everything its trials need. The dataset's rows load at
    first use of `prepared`: after the first reservation when the study already held its
    records, so that a worker joining it holds a trial before pandas and the rows load."""

    spec: StudySpec
    storage: RDBStorage
    study: optuna.Study
    grid: list[Arch]
    dataset_sha256: str
    data_dir: Path
    data: StudyData | None = None

    def study_data(self) -> StudyData:
        """The study's dataset and windows, split and normalized (loaded once).

        Raises:
            DataError: the pinned dataset version is missing, altered, or too small to split.
        """
        if self.data is None:
            self.data = load_study_data(self.spec, self.data_dir, sha256=self.dataset_sha256)
        return self.data

    @property
    def prepared(self) -> Prepared:
        return self.study_data().prepared


def join_study(spec: StudySpec, settings: Settings, *, index: int = 0) -> Joined:
    """Open the storage and create or load the study.

    The spec, the dataset's manifest entry and the grid are checked before the storage is
    opened, and a new study's data (rows, splits) before the study is created, so that a bad
    input leaves nothing behind. A study is pinned to the dataset version it was created with:
    a worker joining it later loads that version, whatever was built since, and loads its rows
    only when it needs them (`Joined.prepared`) unless the study's records are still missing.
    A new study stores the identity of the code that created it (`finscale.identity`); a study
    created by other code is refused unless the settings allow it.

    Raises:
        SpecError, DataError: a bad spec or dataset, or the pinned dataset version is gone
            (exit 2).
        StudyMismatchError: the study exists with another search definition (exit 2).
        CodeMismatchError: the study was created by other finscale code and
            `settings.allow_code_change` is off (exit 2).
        StorageConfigError: the storage refused (authentication, no such database; exit 2).
        StorageUnavailableError: the storage did not answer by the deadline (exit 3).
    """
    latest = find_dataset(settings.data_dir, spec.data.dataset, sha256=spec.data.sha256)
    grid = study_grid(spec, num_features=feature_count(latest))
    store = storage.open_storage(
        settings.storage_url,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        heartbeat_grace_s=settings.heartbeat_grace_s,
        max_retries=spec.max_retries,
        deadline_s=settings.storage_deadline_s,
    )
    pinned = retry(settings, "reading the study", lambda: pinned_dataset(store, spec.name))
    data: StudyData | None = None
    sha256 = latest.sha256
    if pinned is None:  # a new study: its data is checked before the study is created
        data = load_study_data(spec, settings.data_dir, sha256=sha256)
    elif pinned != sha256:
        sha256 = _pinned_version(spec, settings, pinned, latest=sha256)
    fingerprint = study_fingerprint(spec, grid_ids=[a.id for a in grid], dataset_sha256=sha256)
    extremes = (
        {name: a.id for name, a in extreme_archs(grid).items()}
        if spec.architecture.forced_extremes
        else {}
    )
    started = retry(settings, "counting trials", lambda: _trial_count(store, spec.name))
    study = create_or_load_study(
        spec,
        store,
        fingerprint=fingerprint,
        extremes=extremes,
        seed=worker_seed(spec, index=index, started_trials=started),
        code=Code(code_sha256(), allow_change=settings.allow_code_change),
        deadline_s=settings.storage_deadline_s,
    )
    joined = Joined(spec, store, study, grid, sha256, settings.data_dir, data)
    stored = retry(settings, "reading the study", lambda: set(study.user_attrs))
    if not stored >= _RECORDS:  # a new study, or its creator stopped before storing them
        records = joined.study_data()
        retry(
            settings,
            "storing the study's windows",
            lambda: ensure_study_records(study, spec, records),
        )
    return joined


def _pinned_version(spec: StudySpec, settings: Settings, pinned: str, *, latest: str) -> str:
    """The dataset version the study was created with, found in the manifest.

    Raises:
        DataError: the data directory no longer holds it (names both versions).
    """
    try:
        find_dataset(settings.data_dir, spec.data.dataset, sha256=pinned)
    except DataError as e:
        raise DataError(
            f"study {spec.name} was created with {spec.data.dataset} {pinned}, which "
            f"{settings.data_dir} no longer holds (it has {latest}): {e}. Restore "
            "that version, or start a new study (a new experiment name) on the new data"
        ) from e
    log.info(
        "study %s is pinned to %s %s; the latest build is %s",
        spec.name, spec.data.dataset, pinned[:12], latest[:12],
    )  # fmt: skip
    return pinned


def _trial_count(storage: RDBStorage, name: str) -> int:
    """Trials of the study that have started: the forced extremes waiting in its queue since
    its creation do not count, or the first worker of a fresh study would draw a random seed."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    started = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return storage.get_n_trials(study_id, state=started)
