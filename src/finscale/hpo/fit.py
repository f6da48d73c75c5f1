"""Training one trial, written once: the search's objective, `finscale train` and the final
evaluation all train through `fit_trial`, and rebuild a stored trial through `rebuild_trial`, so
that a retrained trial reproduces the search's run by construction (bit for bit on the CPU).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from finscale.data import Prepared
from finscale.errors import DataError, SpecError, StudyNotFoundError
from finscale.hpo import inputs
from finscale.hpo.study import check_spec, study_fingerprint
from finscale.model import Arch, PatchTST
from finscale.model.memory import BatchPlan, plan_batch
from finscale.records import TRIAL_SEED, TRIAL_TORCH_THREADS
from finscale.spec import StudySpec
from finscale.train import (
    TrainResult,
    available_memory_bytes,
    binary_metrics,
    predict,
    train,
)
from finscale.train.device import available_cores, torch_threads
from finscale.train.trainer import EpochCallback, StepCallback

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)


class DoesNotFitError(SpecError):
    """Even one window per micro-batch of the architecture does not fit the device's memory."""

    def __init__(self, arch_id: str, reason: str) -> None:
        super().__init__(f"{arch_id} does not fit this device: {reason}")
        self.arch_id = arch_id
        self.reason = reason  # the memory plan's own words


def require_test_region(spec: StudySpec, prepared: Prepared, *, then: str) -> None:
    """Refuse to score on test a split that has none.

    Args:
        then: what to do once the split has one, e.g. "to evaluate on test".

    Raises:
        DataError: the split has no test region.
    """
    if len(prepared.splits.test) == 0:
        raise DataError(
            f"{spec.name}: the split has no test region; give one (split.test_start for a "
            f"chronological split, split.test_blocks for chunks) {then}"
        )


@dataclass(frozen=True)
class Fit:
    """One trained trial: the model (its best epoch's weights), its result and how it trained."""

    model: PatchTST
    result: TrainResult
    batch: BatchPlan  # the micro-batch and accumulation steps that fit the device
    precision: inputs.Precision
    test_logits: np.ndarray | None  # one per test window, with `predict_test`
    test: dict[str, float] | None  # `binary_metrics` of the test logits, with `predict_test`

    @property
    def param_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def arch(self) -> Arch:
        """The trained architecture with its exact parameter count."""
        c = self.model.config
        return Arch(
            d_model=c.d_model,
            n_layers=c.n_layers,
            n_heads=c.n_heads,
            d_ff=c.d_ff,
            param_count=self.param_count,
        )


def fit_trial(
    spec: StudySpec,
    prepared: Prepared,
    arch: Arch,
    params: Mapping[str, Any],
    *,
    seed: int,
    device: torch.device,
    memory_share: float = 1.0,
    refit_epochs: int | None = None,
    predict_test: bool = False,
    threads: int | None = None,
    on_plan: Callable[[BatchPlan], None] | None = None,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
) -> Fit:
    """Plan the micro-batch to fit the device, train the architecture with the trial's
    parameters and seed, and (with `predict_test`) predict the test windows.

    Args:
        spec: the study: data, model and training settings.
        prepared: the study's prepared windows (`inputs.load_study_data`).
        arch: the architecture's dimensions.
        params: every training parameter by name (`inputs.check_params`).
        seed: the training seed.
        device: where to train.
        memory_share: of the device's memory, when several workers share it.
        refit_epochs: train on the training and validation windows together for this many
            epochs (early stopping cannot help then: the validation windows are trained on).
        predict_test: predict and score the test windows with the trained model.
        threads: torch's CPU thread count while training and predicting (restored after);
            None: as the process has it. A stored trial's (`StoredTrial.threads`) reproduces it.
        on_plan: called with the memory plan before training (the objective stores it).
        on_epoch: called after each epoch (`finscale.train.train`).
        on_step: called after each optimizer step (`finscale.train.train`).

    Raises:
        DoesNotFitError: even one window per micro-batch does not fit the device.
        TrainingError: the run diverged or ran out of memory.
    """
    num_features = len(prepared.windows.columns)
    model = inputs.model_config(spec, arch, params, num_features=num_features)
    precision = inputs.resolve_precision(spec, device)
    try:
        batch = plan_batch(
            model,
            effective_batch=int(params["batch_size"]),
            memory_limit_bytes=available_memory_bytes(device, share=memory_share),
            precision=precision,
            device="cuda" if device.type == "cuda" else "cpu",
        )
    except MemoryError as e:
        raise DoesNotFitError(arch.id, str(e)) from None
    if on_plan is not None:
        on_plan(batch)
    params = dict(params)
    data = inputs.training_data(spec, prepared)
    if refit_epochs is not None:
        params["epochs"] = refit_epochs
        data = dataclasses.replace(data, train=np.sort(np.concatenate([data.train, data.val])))
    config = inputs.train_config(
        spec, params, micro_batch=batch.micro_batch, seed=seed, device=device, precision=precision
    )
    if refit_epochs is not None:
        config = dataclasses.replace(config, patience=refit_epochs + 1)  # never stops early
    logits = test = None
    with torch_threads(threads):
        trained, result = train(model, config, data, on_epoch=on_epoch, on_step=on_step)
        if predict_test:
            test_starts = prepared.splits.test
            where = next(trained.parameters()).device
            logits = predict(
                trained,
                torch.as_tensor(prepared.features, device=where),
                torch.as_tensor(test_starts, device=where),
                context_length=spec.model.context_length,
                precision=precision,
            )
            test = binary_metrics(logits, prepared.windows.labels[test_starts])
    return Fit(
        model=trained,
        result=result,
        batch=batch,
        precision=precision,
        test_logits=logits,
        test=test,
    )


def epochs_to_refit(best_epoch: int | None, params: Mapping[str, Any]) -> int:
    """A refit's epochs: as many as the search's best epoch (all of them when not stored)."""
    return max(1, best_epoch or int(params["epochs"]))


@dataclass(frozen=True)
class StoredTrial:
    """What the storage holds to rebuild a trial."""

    number: int
    arch: str  # the architecture id, e.g. "d64-l48-h2-f4"
    params: dict[str, float | int]  # every training parameter, checked
    seed: int
    value: float | None
    threads: int | None = None  # torch's CPU threads while it trained (None: not stored)


def rebuild_trial(spec: StudySpec, trial: FrozenTrial) -> StoredTrial:
    """A stored trial's architecture, training parameters, seed and thread count, from the
    storage alone: its `arch` parameter, its sampled parameters with the spec's fixed ones, its
    `seed` and `torch_threads` attributes.

    Raises:
        SpecError: a stored parameter unknown or out of the allowed range.
        StudyNotFoundError: the trial has no architecture parameter.
    """
    params = dict(trial.params)
    arch = params.pop("arch", None)
    if not isinstance(arch, str):
        raise StudyNotFoundError(
            f"trial {trial.number} of {spec.name} has no architecture parameter"
        )
    where = f"trial {trial.number} of {spec.name}"
    return StoredTrial(
        number=trial.number,
        arch=arch,
        params=inputs.check_params({**spec.training.fixed(), **params}, where=where),
        # Trials stored before the seed attribute trained with their number as the seed.
        seed=int(trial.user_attrs.get(TRIAL_SEED, trial.number)),
        value=trial.value,
        threads=_threads(trial.user_attrs.get(TRIAL_TORCH_THREADS)),
    )


def _threads(stored: Any) -> int | None:
    return int(stored) if isinstance(stored, int | float) and stored >= 1 else None


def announce_threads(threads: int | None, *, what: str, device: torch.device) -> None:
    """Say with how many CPU threads a stored trial (`what`, e.g. "trial 3 of s") is
    retrained, and warn when this machine has fewer cores than it ran with (slower, not
    different) or when the trial stored no count (its result may differ in the last bits)."""
    if device.type != "cpu":
        return
    if threads is None:
        log.warning(
            "%s stored no thread count; training with this process's %d torch threads: on the "
            "CPU the result matches the search's bit for bit only at the count it ran with",
            what, torch.get_num_threads(),
        )  # fmt: skip
        return
    log.info(
        "training with %d torch threads, as %s did, so that on the CPU it reproduces bit for bit",
        threads, what,
    )  # fmt: skip
    cores = available_cores()
    if cores < threads:
        log.warning(
            "%s ran with %d threads; this machine gives this process %d cores: the same "
            "result, more slowly", what, threads, cores,
        )  # fmt: skip


def check_stored_spec(
    spec: StudySpec,
    attrs: Mapping[str, Any],
    *,
    dataset_sha256: str,
    num_features: int,
    url: str,
    doing: str,
) -> None:
    """Refuse to `doing` (retrain, evaluate) a stored study with a spec that searches something
    else than the one it was created with: same grid, same dataset version, same definition.

    Raises:
        StudyMismatchError: the fingerprints differ (the message lists the fields).
        SpecError: the spec's budget has no architecture.
    """
    grid = inputs.study_grid(spec, num_features=num_features)
    fingerprint = study_fingerprint(
        spec, grid_ids=[a.id for a in grid], dataset_sha256=dataset_sha256
    )
    check_spec(spec, dict(attrs), fingerprint, url=url, doing=doing)


__all__ = [
    "DoesNotFitError",
    "Fit",
    "StoredTrial",
    "announce_threads",
    "check_stored_spec",
    "epochs_to_refit",
    "fit_trial",
    "rebuild_trial",
    "require_test_region",
]
