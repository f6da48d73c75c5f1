"""The architectural objective: pick an architecture of the budget's grid, sample the training
parameters, plan the memory, train, and report the best epoch's validation metric.

The architecture is the trial parameter `arch` (an id such as `d64-l48-h2-f4`), so the stored
parameters alone rebuild the model; forced extremes are enqueued trials with `arch` fixed, which
the sampler learns from like any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import optuna
import torch

from finscale.data import Prepared
from finscale.errors import TrainingError, TrialFailedError
from finscale.hpo import inputs
from finscale.hpo.events import EventLog
from finscale.hpo.fit import DoesNotFitError, fit_trial
from finscale.identity import code_sha256
from finscale.model import Arch
from finscale.model.memory import BatchPlan
from finscale.predictions import encode_logits
from finscale.records import (
    TRIAL_ACCUMULATION_STEPS,
    TRIAL_CODE_SHA256,
    TRIAL_ESTIMATED_MEMORY_MIB,
    TRIAL_MICRO_BATCH,
    TRIAL_PARAM_COUNT,
    TRIAL_SEED,
    TRIAL_TORCH_THREADS,
    TrialRecord,
)
from finscale.spec import (
    PARAMS_BY_NAME,
    Distribution,
    IntRange,
    LogUniform,
    StudySpec,
    TrainingParam,
    Uniform,
)

log = logging.getLogger(__name__)


def suggest(trial: optuna.Trial, param: TrainingParam, value: Distribution) -> float | int:
    """Sample one training parameter from its spec distribution."""
    if isinstance(value, LogUniform):
        return trial.suggest_float(param.name, value.low, value.high, log=True)
    if isinstance(value, Uniform):
        return trial.suggest_float(param.name, value.low, value.high)
    if isinstance(value, IntRange):
        return trial.suggest_int(param.name, value.low, value.high, step=value.step)
    return param.cast(trial.suggest_categorical(param.name, list(value.choices)))


class ArchitecturalObjective:
    """Callable on a trial; one instance per worker, the dataset prepared once."""

    def __init__(
        self,
        spec: StudySpec,
        *,
        grid: list[Arch],
        prepared: Prepared,
        dataset_sha256: str,
        device: torch.device,
        events: EventLog,
        check_stop: Callable[[], None] | None = None,
        memory_share: float = 1.0,
    ) -> None:
        self.spec = spec
        self.grid = {a.id: a for a in grid}
        self.prepared = prepared
        self.dataset_sha256 = dataset_sha256
        self.device = device
        self.events = events
        # Raises when the worker was asked to stop; called between optimizer steps, so that a
        # signal never interrupts a storage write or a finalizer.
        self.check_stop = check_stop or (lambda: None)
        self.memory_share = memory_share  # of the device, when several workers share it

    def params(self, trial: optuna.Trial) -> tuple[Arch, dict[str, Any]]:
        """The trial's architecture and training parameters (sampled or fixed)."""
        arch = self.grid[str(trial.suggest_categorical("arch", list(self.grid)))]
        training = self.spec.training
        values = {
            name: suggest(trial, PARAMS_BY_NAME[name], value)
            for name, value in training.searched().items()
        }
        values.update(training.fixed())
        return arch, values

    def __call__(self, trial: optuna.Trial) -> float:
        started = time.perf_counter()
        arch, p = self.params(trial)
        spec = self.spec
        for key, dim in {**arch.dims(), TRIAL_PARAM_COUNT: arch.param_count}.items():
            trial.set_user_attr(key, dim)
        self.events.emit("trial_start", trial=trial.number, arch=arch.id, params=dict(trial.params))
        seed = inputs.trial_seed(spec, trial.number)
        trial.set_user_attr(TRIAL_SEED, seed)
        # What reproduces it besides its parameters and seed: the code, and on the CPU the
        # thread count (`finscale train --trial` and `evaluate` train with the same).
        trial.set_user_attr(TRIAL_CODE_SHA256, code_sha256())
        trial.set_user_attr(TRIAL_TORCH_THREADS, torch.get_num_threads())

        def on_plan(plan: BatchPlan) -> None:
            trial.set_user_attr(TRIAL_MICRO_BATCH, plan.micro_batch)
            trial.set_user_attr(TRIAL_ACCUMULATION_STEPS, plan.accumulation_steps)
            trial.set_user_attr(TRIAL_ESTIMATED_MEMORY_MIB, round(plan.estimate.total / 2**20, 1))

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            value = metrics[spec.objective.metric]
            trial.report(value, epoch)
            self.events.emit("epoch", trial=trial.number, epoch=epoch, metrics=metrics)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{spec.objective.metric} {value:.4f} at epoch {epoch}")

        try:
            fit = fit_trial(
                spec,
                self.prepared,
                arch,
                p,
                seed=seed,
                device=self.device,
                memory_share=self.memory_share,
                on_plan=on_plan,
                on_epoch=on_epoch,
                on_step=lambda _: self.check_stop(),
            )
        except DoesNotFitError as e:
            raise TrialFailedError(f"does not fit: {e.reason}") from e
        except TrainingError as e:
            raise TrialFailedError(str(e)) from e
        result = fit.result
        counts = self.prepared.splits.counts()
        record = TrialRecord(
            epochs_run=result.epochs_run,
            best_epoch=result.best_epoch,
            stop_reason=result.stop_reason,
            train_loss=result.train_loss,
            val=dict(result.val),
            dataset=spec.data.dataset,
            dataset_sha256=self.dataset_sha256,
            device=str(self.device),
            precision=fit.precision,
            windows_train=counts["train"],
            windows_val=counts["val"],
            wall_time_s=time.perf_counter() - started,
            windows_per_s=result.windows_per_s,
            # The best epoch's validation predictions, for the report's paired tests.
            val_logits=encode_logits(result.val_logits),
        )
        for key, attr in record.to_json().items():
            trial.set_user_attr(key, attr)
        return result.value
