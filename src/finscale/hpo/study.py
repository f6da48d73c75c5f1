"""Setting up a study: its sampler and pruner, its fingerprint, and idempotent creation.

Creating a study, checking its fingerprint and enqueuing the forced trials run under the study
lock (`finscale.hpo.locks.study_lock`): a study is created once however many workers start
together.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.storages import RDBStorage

from finscale import defaults
from finscale.errors import CodeMismatchError, StudyMismatchError
from finscale.hpo.locks import study_lock
from finscale.hpo.storage import display_url, with_retries
from finscale.identity import short
from finscale.records import (
    ATTR_BASELINES,
    ATTR_CODE_SHA256,
    ATTR_DATASET_SHA256,
    ATTR_EXTREMES,
    ATTR_FIELDS,
    ATTR_FINGERPRINT,
    ATTR_N_TRIALS,
    ATTR_SPEC,
    ATTR_WINDOWS,
    TRIAL_FORCED,
    Baseline,
    SplitWindows,
    WindowsRecord,
    baselines_to_json,
    dataset_pin,
)
from finscale.spec import StudySpec, fingerprint, fingerprint_fields

if TYPE_CHECKING:
    from finscale.hpo.inputs import StudyData

log = logging.getLogger(__name__)


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
    """A sampler seed per worker start, from the spec's seed and the study's name (studies of
    one experiment must not share a random stream) and the worker's index (workers of one
    study must not propose the same values).

    The workers of a fresh study get reproducible seeds. A worker that joins a study holding
    trials also draws a process nonce: a restarted worker would otherwise replay the values of
    its previous life.
    """
    if spec.sampler.seed is None:
        return None
    nonce = secrets.randbits(32) if started_trials else 0
    key = f"{spec.sampler.seed}:{spec.name}:{index}:{started_trials}:{nonce}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big")


@dataclass(frozen=True)
class Code:
    """The code identity of this process (`finscale.identity.code_sha256`) and whether it may
    join a study another code created (`--allow-code-change`, `FINSCALE_ALLOW_CODE_CHANGE`)."""

    sha256: str
    allow_change: bool = False


def check_code(name: str, stored: Any, code: Code, *, url: str) -> None:
    """Refuse to join a study created by other code, unless allowed (then warn); warn about a
    study stored without a code identity (created by an older finscale).

    Raises:
        CodeMismatchError: the stored digest differs and changes are not allowed (exit 2).
    """
    if stored is None:
        log.warning(
            "study %s was stored without the identity of the code that created it (an older "
            "finscale); joining it with code %s, unchecked", name, short(code.sha256),
        )  # fmt: skip
        return
    if stored == code.sha256:
        return
    if code.allow_change:
        log.warning(
            "study %s was created by finscale code %s; this worker runs %s (allowed: its trials "
            "are compared with trials of other code)", name, short(str(stored)), short(code.sha256),
        )  # fmt: skip
        return
    raise CodeMismatchError(
        f"study {name} in {display_url(url)} was created by finscale code {stored}; this worker "
        f"runs {code.sha256}: refusing to join it, since its trials would be compared with "
        "trials of other code. Run the image (or checkout) that created it, start a new study "
        "(a new experiment name), or allow it with --allow-code-change "
        "(FINSCALE_ALLOW_CODE_CHANGE=1)"
    )


def warn_code(name: str, stored: Any, code_sha256: str, *, doing: str) -> None:
    """Warn when a stored study was created by other code than this process's (`doing`:
    what this process does with it, e.g. "retraining trial 3")."""
    if stored is not None and stored != code_sha256:
        log.warning(
            "study %s was created by finscale code %s; %s with code %s: results may differ "
            "from the search's", name, short(str(stored)), doing, short(code_sha256),
        )  # fmt: skip


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
    code: Code | None = None,
    deadline_s: float = defaults.STORAGE_DEADLINE_S,
) -> optuna.Study:
    """Create the study, or load it and check that it searches what the spec says and was
    created by this code.

    Under the study lock: a study is created once however many workers start together, its
    fingerprint is stored once, and the forced-extreme trials are enqueued once.

    Args:
        spec: the study spec.
        storage: from `open_storage`.
        fingerprint: from `study_fingerprint`.
        extremes: forced architectures to enqueue first, name → architecture id.
        seed: this worker's sampler seed.
        code: this process's code identity, stored on a new study and checked against a
            stored one (`check_code`); None: neither.
        deadline_s: how long to retry a storage that does not answer.

    Raises:
        StudyMismatchError: the stored fingerprint differs (the message lists the fields).
        CodeMismatchError: the study was created by other code, and that is not allowed.
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
                if code is not None:
                    study.set_user_attr(ATTR_CODE_SHA256, code.sha256)
                forced = list(extremes.items())[: spec.n_trials]
                for name, arch_id in forced:
                    study.enqueue_trial({"arch": arch_id}, user_attrs={TRIAL_FORCED: name})
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
            elif code is not None:
                check_code(spec.name, attrs.get(ATTR_CODE_SHA256), code, url=storage.url)
            if attrs.get(ATTR_N_TRIALS) != spec.n_trials:
                study.set_user_attr(ATTR_N_TRIALS, spec.n_trials)  # may be extended later
            return study

    return with_retries(
        set_up, what=f"setting up study {spec.name}", url=storage.url, deadline_s=deadline_s
    )


def pinned_dataset(storage: RDBStorage, name: str) -> str | None:
    """The dataset version (sha256) a stored study is pinned to; None for a new study.

    Studies created before the pin was stored carry it in their fingerprint fields.
    """
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return dataset_pin(storage.get_study_user_attrs(study_id))


def windows_record(data: StudyData) -> WindowsRecord:
    """What the report needs of the study's windows, stored once: per split the labels and the
    window start rows, and the training positive rate."""
    prepared = data.prepared
    labels = prepared.windows.labels
    dates = prepared.windows.dates

    def split(starts: np.ndarray) -> SplitWindows | None:
        if len(starts) == 0:
            return None
        return SplitWindows(
            labels=labels[starts],
            starts=starts,
            first_date=str(dates[starts[0]]),
            last_date=str(dates[starts[-1]]),
        )

    splits = prepared.splits
    return WindowsRecord(
        horizon=int(prepared.windows.horizon),
        train_n=len(splits.train),
        train_positive_rate=float(labels[splits.train].mean()),
        val=split(splits.val),
        test=split(splits.test),
    )


def baselines_record(spec: StudySpec, data: StudyData) -> dict[str, Baseline]:
    """The baselines' logits on the study's own validation and test windows, fitted on its
    training windows (`finscale.train.baselines`), with what each fit chose."""
    from finscale.train.baselines import fit_baselines  # scikit-learn only where needed

    prepared = data.prepared
    splits = prepared.splits
    fitted = fit_baselines(
        prepared.features,
        prepared.windows.labels,
        context_length=spec.model.context_length,
        horizon=spec.horizon,
        train=splits.train,
        val=splits.val,
        test=splits.test,
        seed=0,
    )
    return {
        name: Baseline(name=name, val=b.val, test=b.test, details=b.details)
        for name, b in fitted.items()
    }


def ensure_study_records(study: optuna.Study, spec: StudySpec, data: StudyData) -> None:
    """Store what the report needs beside the trials, when missing: the dataset pin, the
    windows (labels and starts) and the baselines' predictions on them. Idempotent: the values
    follow from the spec and the pinned dataset (the baselines are seeded)."""
    attrs = study.user_attrs
    if ATTR_DATASET_SHA256 not in attrs:
        study.set_user_attr(ATTR_DATASET_SHA256, data.dataset.sha256)
    if ATTR_WINDOWS not in attrs:
        study.set_user_attr(ATTR_WINDOWS, windows_record(data).to_json())
    if ATTR_BASELINES not in attrs:
        baselines: dict[str, Baseline]
        try:
            baselines = baselines_record(spec, data)
        except (ValueError, ArithmeticError) as e:
            # Data the baselines cannot fit (features of absurd size) is the trials' problem
            # too, and they report it; the study goes on without baselines.
            log.warning("study %s: no baselines: %s", spec.name, str(e).splitlines()[0])
            baselines = {}
        study.set_user_attr(ATTR_BASELINES, baselines_to_json(baselines))


def check_spec(
    spec: StudySpec, attrs: dict[str, Any], fingerprint: Fingerprint, *, url: str, doing: str
) -> None:
    """Refuse to `doing` (retrain, evaluate) a stored study with a spec that searches
    something else than the spec it was created with.

    Raises:
        StudyMismatchError: the stored fingerprint differs (the message lists the fields).
    """
    stored = attrs.get(ATTR_FINGERPRINT)
    if stored is None or stored == fingerprint.digest:
        return
    diff = _differences(attrs.get(ATTR_FIELDS, {}), fingerprint.fields)
    raise StudyMismatchError(
        f"study {spec.name} in {display_url(url)} was created with another search definition; "
        f"refusing to {doing} it with this spec. Fields that differ:\n"
        + "\n".join(diff)
        + "\nUse the spec the study was created with."
    )
