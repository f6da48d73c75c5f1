"""Train one configuration outside a search: a spec's middle values, a stored trial's
parameters, or explicit ones (`finscale train`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
import torch

from finscale.hpo import study as studies
from finscale.hpo.objective import model_config, resolve_precision, train_config
from finscale.hpo.worker import load_study_data
from finscale.model import Arch, PatchTST, parse_arch_id
from finscale.model.memory import plan_batch
from finscale.settings import Settings
from finscale.spec import StudySpec
from finscale.train import (
    TrainingData,
    TrainResult,
    available_memory_bytes,
    binary_metrics,
    predict,
    resolve_device,
    train,
)
from finscale.train.trainer import EpochCallback


def spec_params(spec: StudySpec) -> dict[str, Any]:
    """Every training parameter at its fixed or middle value."""
    whole = {"warmup_steps", "epochs", "batch_size"}
    return {
        name: int(spec.training.typical(name)) if name in whole else spec.training.typical(name)
        for name in (
            "learning_rate",
            "weight_decay",
            "warmup_steps",
            "dropout",
            "epochs",
            "batch_size",
        )
    }


def trial_params(spec: StudySpec, settings: Settings, number: int) -> tuple[str, dict[str, Any]]:
    """The architecture id and training parameters stored for a trial of the spec's study.

    Raises:
        KeyError: no such study or trial.
        StorageUnavailableError: the storage did not answer.
    """
    storage = studies.open_for_reading(settings)
    if storage is None:
        raise KeyError(
            f"no study {spec.name!r}: {studies.display_url(settings.storage_url)} does not exist"
        )
    study = optuna.load_study(study_name=spec.name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise KeyError(f"study {spec.name} has no trial {number} (it has {len(trials)})")
    params = dict(trials[number].params)
    return str(params.pop("arch")), params


@dataclass(frozen=True)
class Retrained:
    """One training run of a configuration, on the study's data."""

    arch: Arch
    params: dict[str, Any]
    result: TrainResult
    windows: dict[str, int]
    test: dict[str, float] | None


def retrain(
    spec: StudySpec,
    arch_id: str,
    params: dict[str, Any],
    *,
    settings: Settings,
    seed: int = 0,
    on_epoch: EpochCallback | None = None,
    evaluate_test: bool = False,
) -> Retrained:
    """Train `arch_id` with `params` on the study's data, planning the micro-batch to fit.

    Raises:
        DataError: the study's data is missing or its split too small.
        ValueError: a bad architecture id.
        MemoryError: the architecture does not fit the device.
        TrainingError: the run diverged or ran out of memory.
    """
    data = load_study_data(spec, settings.data_dir)
    prepared = data.prepared
    dims = parse_arch_id(arch_id)
    device = resolve_device(settings.device)
    precision = resolve_precision(spec, device)
    model = model_config(spec, dims, params, num_features=len(prepared.windows.columns))
    arch = Arch(**dims.dims(), param_count=PatchTST(model).num_parameters())
    plan = plan_batch(
        model,
        effective_batch=int(params["batch_size"]),
        memory_limit_bytes=available_memory_bytes(device),
        precision=precision,
        device="cuda" if device.type == "cuda" else "cpu",
    )
    config = train_config(
        spec, params, micro_batch=plan.micro_batch, seed=seed, device=device, precision=precision
    )
    training = TrainingData(
        features=prepared.features,
        labels=prepared.windows.labels,
        context_length=spec.model.context_length,
        train=prepared.splits.train,
        val=prepared.splits.val,
    )
    trained, result = train(model, config, training, on_epoch=on_epoch)
    test = None
    if evaluate_test and len(prepared.splits.test):
        where = next(trained.parameters()).device
        logits = predict(
            trained,
            torch.as_tensor(prepared.features, device=where),
            torch.as_tensor(prepared.splits.test, device=where),
            context_length=spec.model.context_length,
            precision=precision,
        )
        test = binary_metrics(logits, prepared.windows.labels[prepared.splits.test])
    return Retrained(
        arch=arch, params=params, result=result, windows=prepared.splits.counts(), test=test
    )
