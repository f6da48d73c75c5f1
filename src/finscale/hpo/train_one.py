"""Train one configuration outside a search (`finscale train`): a spec's middle values, a stored
trial's architecture, parameters and seed, or values given on the command line.

A stored trial is rebuilt from what the storage holds alone (its `arch` parameter, its training
parameters, its `seed` and `torch_threads` attributes, `finscale.hpo.fit.rebuild_trial`) and
trained by `fit_trial` as the objective trains it, with the trial's thread count, so that on the
CPU the retrained value equals the stored one bit for bit. Code other than the study's is named
in a warning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from finscale.data import load_dataset
from finscale.errors import SpecError, StudyNotFoundError
from finscale.hpo import inputs
from finscale.hpo.fit import (
    StoredTrial,
    announce_threads,
    check_stored_spec,
    fit_trial,
    rebuild_trial,
    require_test_region,
)
from finscale.hpo.read import read_studies
from finscale.hpo.storage import display_url, open_for_reading
from finscale.hpo.study import warn_code
from finscale.identity import code_sha256
from finscale.model import Arch, parse_arch_id
from finscale.records import ATTR_CODE_SHA256, ATTR_DATASET_SHA256
from finscale.settings import Settings
from finscale.spec import PARAMS_BY_NAME, DataSpec, StudySpec
from finscale.train import TrainResult, resolve_device
from finscale.train.trainer import EpochCallback

log = logging.getLogger(__name__)

DEFAULT_DATASET = "GSPC.dataset.a25"


def default_spec() -> StudySpec:
    """The study `finscale train` uses without a spec: finscale's defaults on the sample."""
    return StudySpec(
        name="train",
        experiment="train",
        budget="1",
        horizon=1,
        data=DataSpec(dataset=DEFAULT_DATASET),
    )


def stored_trial(spec: StudySpec, settings: Settings, number: int) -> tuple[StoredTrial, str]:
    """The architecture, training parameters and seed stored for a trial of the spec's study,
    and the dataset version (sha256) its study is pinned to, after checking that the spec is
    the one the study was created with.

    Raises:
        StudyNotFoundError: no storage, study or trial of that number.
        StudyMismatchError: the spec searches something else than the study's.
        DataError: the dataset version the study used is missing.
        StorageUnavailableError: the storage did not answer.
    """
    storage = open_for_reading(settings)
    if storage is None:
        raise StudyNotFoundError(
            f"no study {spec.name!r}: {display_url(settings.storage_url)} does not exist"
        )
    (study,) = read_studies(storage, [spec.name], deadline_s=settings.storage_deadline_s)
    if not 0 <= number < len(study.trials):
        raise StudyNotFoundError(
            f"study {spec.name} has no trial {number} (it has {len(study.trials)})"
        )
    pinned = study.user_attrs.get(ATTR_DATASET_SHA256)
    dataset = load_dataset(settings.data_dir, spec.data.dataset, sha256=pinned or spec.data.sha256)
    check_stored_spec(
        spec,
        study.user_attrs,
        dataset_sha256=dataset.sha256,
        num_features=len(dataset.feature_columns),
        url=storage.url,
        doing="retrain",
    )
    warn_code(
        spec.name,
        study.user_attrs.get(ATTR_CODE_SHA256),
        code_sha256(),
        doing=f"retraining trial {number}",
    )
    return rebuild_trial(spec, study.trials[number]), dataset.sha256


@dataclass(frozen=True)
class TrainPlan:
    """One configuration to train: a study's data and settings, an architecture, parameters
    and a seed, and where they came from."""

    spec: StudySpec
    arch: str
    params: dict[str, float | int]
    seed: int
    source: str  # e.g. "trial 3 of validation-50k-h1", a spec path, "defaults"
    stored_value: float | None = None  # the trial's stored value, when replaying a trial
    dataset_sha256: str | None = None  # the dataset version to train on (default: the spec's)
    threads: int | None = None  # torch's CPU threads, a replayed trial's (None: the process's)
    replayed: bool = False  # a stored trial, retrained as it ran


def plan_training(
    spec: StudySpec,
    *,
    settings: Settings,
    changes: Mapping[str, Any] | None = None,
    trial: int | None = None,
    arch: str | None = None,
    seed: int | None = None,
    source: str = "defaults",
) -> TrainPlan:
    """Resolve what `finscale train` trains.

    Training parameters come from, by rising precedence: the spec's fixed or middle values,
    the stored trial's values (with `trial`), and `changes["training"]`. The seed is the stored
    trial's seed with `trial`, else `seed`, else 0; a stored trial's thread count is kept.

    Args:
        spec: the study whose data and settings to use.
        settings: where the storage and data are.
        changes: nested changes to the spec (`{"split": {"val_start": …}}`), validated again.
        trial: a stored trial of the spec's study to rebuild.
        arch: an architecture id (overrides the trial's).
        seed: the seed (overrides the trial's).
        source: how to name the spec in messages.

    Raises:
        SpecError: a bad change, architecture or parameter; no architecture given.
        StudyNotFoundError: no such stored trial.
    """
    changed = spec.with_changes(dict(changes)) if changes else spec
    explicit = {k: v for k, v in (changes or {}).get("training", {}).items() if k in PARAMS_BY_NAME}
    params: dict[str, Any] = inputs.typical_params(changed)
    stored_value = dataset_sha256 = threads = None
    if trial is not None:
        # The spec as given must be the study's; the changes are this retraining's own.
        found, dataset_sha256 = stored_trial(spec, settings, trial)
        params.update(found.params)
        arch = arch or found.arch
        seed = found.seed if seed is None else seed
        source, stored_value = f"trial {trial} of {changed.name}", found.value
        threads = found.threads
    params.update(explicit)
    if arch is None:
        raise SpecError("give an architecture (--arch ID) or a stored trial (--trial N)")
    try:
        parse_arch_id(arch)
    except ValueError as e:
        raise SpecError(f"--arch: {e}") from None
    return TrainPlan(
        spec=changed,
        arch=arch,
        params=inputs.check_params(params, where=source),
        seed=0 if seed is None else seed,
        source=source,
        stored_value=stored_value,
        dataset_sha256=dataset_sha256,
        threads=threads,
        replayed=trial is not None,
    )


@dataclass(frozen=True)
class Retrained:
    """One training run of a configuration, on the study's data."""

    arch: Arch
    params: dict[str, float | int]
    seed: int
    result: TrainResult
    windows: dict[str, int]
    base_rate: dict[str, float]  # positive rate of each split's labels (`train.reference`)
    test: dict[str, float] | None


def retrain(
    plan: TrainPlan,
    *,
    settings: Settings,
    on_epoch: EpochCallback | None = None,
    evaluate_test: bool = False,
) -> Retrained:
    """Train the plan's architecture on its study's data, planning the micro-batch to fit.

    Raises:
        DataError: the study's data is missing, its split too small, or (with `evaluate_test`)
            the split has no test region.
        DoesNotFitError: the architecture does not fit the device.
        TrainingError: the run diverged or ran out of memory.
    """
    spec = plan.spec
    data = inputs.load_study_data(spec, settings.data_dir, sha256=plan.dataset_sha256)
    prepared = data.prepared
    splits = prepared.splits
    if evaluate_test:
        require_test_region(spec, prepared, then="to evaluate on test")
    device = resolve_device(settings.device)
    if plan.replayed:
        announce_threads(plan.threads, what=plan.source, device=device)
    fit = fit_trial(
        spec,
        prepared,
        parse_arch_id(plan.arch),
        plan.params,
        seed=plan.seed,
        device=device,
        memory_share=settings.memory_share,
        predict_test=evaluate_test,
        threads=plan.threads,
        on_epoch=on_epoch,
    )
    labels = prepared.windows.labels
    rates = {
        name: float(np.mean(labels[starts])) if len(starts) else math.nan
        for name, starts in (("train", splits.train), ("val", splits.val), ("test", splits.test))
    }
    return Retrained(
        arch=fit.arch,
        params=plan.params,
        seed=plan.seed,
        result=fit.result,
        windows=splits.counts(),
        base_rate=rates,
        test=fit.test,
    )
