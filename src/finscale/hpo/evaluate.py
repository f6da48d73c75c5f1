"""The final evaluation: each study's best trials, retrained with several seeds, scored on the
test split that the search never saw.

A search selects its best trial on the validation windows, so the best validation value is
biased upward by the selection (the best of 50 noisy draws). The honest numbers come from data
that took no part in the choice: the top-k trials by validation value are retrained with S
seeds each (seed 0 is the trial's own, so its validation value must come back exactly on the
CPU), the final model of a budget is the one of the k with the best mean validation value, and
its test metrics — mean and spread over seeds, per-window losses paired against the baselines —
are the report's headline.

Each run is stored as a study user attribute (`finscale.eval.<trial>.<seed index>`) with its
test logits, so the report needs only the storage, and an interrupted evaluation resumes where
it stopped. Each trial retrains with the CPU thread count it ran with (seed 0 then reproduces it
bit for bit on the CPU); code other than the study's is named in a warning.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from finscale.data import Prepared
from finscale.errors import StudyNotFoundError
from finscale.hpo import inputs
from finscale.hpo.fit import (
    StoredTrial,
    announce_threads,
    check_stored_spec,
    epochs_to_refit,
    fit_trial,
    rebuild_trial,
    require_test_region,
)
from finscale.hpo.storage import display_url, open_for_reading, with_retries
from finscale.hpo.study import ensure_study_records, warn_code
from finscale.identity import code_sha256
from finscale.model import parse_arch_id
from finscale.predictions import encode_logits
from finscale.records import (
    ATTR_CODE_SHA256,
    ATTR_DATASET_SHA256,
    TRIAL_BEST_EPOCH,
    EvalRun,
    eval_key,
)
from finscale.settings import Settings
from finscale.spec import StudySpec
from finscale.train import resolve_device

log = logging.getLogger(__name__)


def run_seed(trial_seed: int, seed_index: int) -> int:
    """Seed 0 is the trial's own (the search's run, reproduced); others are derived from it."""
    if seed_index == 0:
        return trial_seed
    key = f"eval:{trial_seed}:{seed_index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") & 0x7FFFFFFF


def top_trials(trials: list[FrozenTrial], *, direction: str, k: int) -> list[FrozenTrial]:
    """The k completed trials with the best values (ties: the earlier trial first)."""
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    sign = 1.0 if direction == "minimize" else -1.0
    return sorted(done, key=lambda t: (sign * float(t.value), t.number))[:k]  # type: ignore[arg-type]


@dataclass(frozen=True)
class StudyEvaluation:
    """What `evaluate_study` did for one study."""

    study: str
    runs: list[EvalRun]  # every run of the evaluated trials, stored ones included
    trained: int  # runs trained now (the others were already stored)


def evaluate_study(
    spec: StudySpec,
    settings: Settings,
    *,
    top_k: int = 3,
    seeds: int = 3,
    refit: bool = False,
    force: bool = False,
    on_run: Callable[[EvalRun, bool], None] | None = None,
) -> StudyEvaluation:
    """Retrain the study's top-k trials with `seeds` seeds each and score them on test.

    Args:
        spec: the study (its spec must be the one the study was created with).
        settings: storage, data directory and device.
        top_k: trials to retrain, best validation value first.
        seeds: seeds per trial; seed 0 is the trial's own.
        refit: train on training + validation windows for the trial's best epoch count.
        force: retrain runs already stored.
        on_run: called after each run with the run and whether it was trained now.

    Raises:
        StudyNotFoundError: the study is not in the storage, or has no completed trial.
        DataError: the dataset version the study used is missing, or the split has no test
            region.
        StorageUnavailableError: the storage did not answer.
    """
    if top_k < 1 or seeds < 1:
        raise ValueError(f"top_k and seeds must be at least 1, got {top_k} and {seeds}")
    study, retry, url = _open_study(spec, settings)
    attrs = dict(study.user_attrs)
    trials = retry("reading trials", lambda: study.get_trials(deepcopy=False))
    chosen = top_trials(trials, direction=study.direction.name.lower(), k=top_k)
    if not chosen:
        raise StudyNotFoundError(f"study {spec.name} has no completed trial to evaluate")
    prepared = _checked_data(spec, settings, study, retry, url=url)
    warn_code(spec.name, attrs.get(ATTR_CODE_SHA256), code_sha256(), doing="evaluating it")
    device = resolve_device(settings.device)
    runs: list[EvalRun] = []
    trained = 0
    for trial in chosen:
        found = rebuild_trial(spec, trial)
        announced = False
        for index in range(seeds):
            key = eval_key(trial.number, index)
            stored = attrs.get(key)
            if stored is not None and not force and bool(stored.get("refit")) == refit:
                run = EvalRun.from_json(stored, key=key)
                runs.append(run)
                if on_run:
                    on_run(run, False)
                continue
            if not announced:
                announce_threads(found.threads, what=f"trial {trial.number}", device=device)
                announced = True
            run = _train_run(
                spec,
                prepared,
                trial,
                found,
                index=index,
                refit=refit,
                device=device,
                memory_share=settings.memory_share,
            )
            _store(study, key, run.to_json(), retry)
            runs.append(run)
            trained += 1
            if on_run:
                on_run(run, True)
    return StudyEvaluation(study=spec.name, runs=runs, trained=trained)


Retry = Callable[[str, Callable[[], Any]], Any]


def _open_study(spec: StudySpec, settings: Settings) -> tuple[optuna.Study, Retry, str]:
    """The study, opened as a reader (nothing created: no study, nothing to evaluate; the runs
    it stores are study attributes, which need no more), its storage calls' retry and the
    storage's URL."""
    storage = open_for_reading(settings)
    if storage is None:
        raise StudyNotFoundError(
            f"no study {spec.name!r} to evaluate in {display_url(settings.storage_url)}: run its "
            "search first"
        )

    def retry(what: str, call: Callable[[], Any]) -> Any:
        return with_retries(
            call, what=what, url=storage.url, deadline_s=settings.storage_deadline_s
        )

    try:
        study = retry(
            "loading the study", lambda: optuna.load_study(study_name=spec.name, storage=storage)
        )
    except KeyError:
        raise StudyNotFoundError(
            f"no study {spec.name!r} to evaluate: run its search first"
        ) from None
    return study, retry, storage.url


def _checked_data(
    spec: StudySpec, settings: Settings, study: optuna.Study, retry: Retry, *, url: str
) -> Prepared:
    """The study's pinned dataset, split as the study was, once the stored spec and the test
    region are checked; the study's windows stored if they were not."""
    attrs = dict(study.user_attrs)
    data = inputs.load_study_data(spec, settings.data_dir, sha256=attrs.get(ATTR_DATASET_SHA256))
    check_stored_spec(
        spec,
        attrs,
        dataset_sha256=data.dataset.sha256,
        num_features=data.num_features,
        url=url,
        doing="evaluate",
    )
    prepared = data.prepared
    require_test_region(spec, prepared, then="and run a new study")
    retry("storing the windows", lambda: ensure_study_records(study, spec, data))
    return prepared


def _train_run(
    spec: StudySpec,
    prepared: Prepared,
    trial: FrozenTrial,
    found: StoredTrial,
    *,
    index: int,
    refit: bool,
    device: torch.device,
    memory_share: float,
) -> EvalRun:
    """Retrain a stored trial with its `index`-th seed and score it on test."""
    seed = run_seed(found.seed, index)
    started = time.perf_counter()
    fit = fit_trial(
        spec,
        prepared,
        parse_arch_id(found.arch),
        found.params,
        seed=seed,
        device=device,
        memory_share=memory_share,
        refit_epochs=(
            epochs_to_refit(trial.user_attrs.get(TRIAL_BEST_EPOCH), found.params) if refit else None
        ),
        predict_test=True,
        threads=found.threads,
    )
    assert fit.test is not None and fit.test_logits is not None  # predict_test
    result = fit.result
    return EvalRun(
        trial=trial.number,
        seed_index=index,
        seed=seed,
        arch=found.arch,
        param_count=fit.param_count,
        refit=refit,
        best_epoch=result.best_epoch,
        epochs_run=result.epochs_run,
        # After a refit the validation windows were trained on: not measured.
        val=dict.fromkeys(result.val, math.nan) if refit else dict(result.val),
        test=fit.test,
        test_logits=encode_logits(fit.test_logits),
        wall_time_s=time.perf_counter() - started,
    )


def _store(
    study: optuna.Study,
    key: str,
    record: dict[str, Any],
    retry: Callable[[str, Callable[[], Any]], Any],
) -> None:
    retry("storing an evaluation run", lambda: study.set_user_attr(key, record))
