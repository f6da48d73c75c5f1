"""Train one model on windows: a plain loop, no framework.

Arrays, a model config, a training config and two optional callables (after each epoch, after
each optimizer step) go in; a result record comes out. The whole dataset lives on the device as
two tensors (features and labels); a batch is gathered by index from its window start rows, so
no per-window Python object is ever made. Training stops early on the validation metric and the
best epoch's weights and metrics are what it returns.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from finscale.errors import DivergenceError, OutOfMemoryError
from finscale.model.patchtst import PatchTST, PatchTSTConfig
from finscale.train.config import (
    EpochCallback,
    Metric,
    StepCallback,
    TrainConfig,
    TrainingData,
    TrainResult,
)
from finscale.train.device import resolve_device
from finscale.train.metrics import binary_metrics
from finscale.train.optim import configure_optimizer
from finscale.train.schedule import lr_at

log = logging.getLogger(__name__)

# Re-exported: callers import the config types from here too.
__all__ = [
    "EpochCallback",
    "Metric",
    "StepCallback",
    "TrainConfig",
    "TrainResult",
    "TrainingData",
    "gather_windows",
    "predict",
    "train",
    "train_step",
]


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def gather_windows(
    features: torch.Tensor, starts: torch.Tensor, context_length: int
) -> torch.Tensor:
    """Contexts of the windows at `starts`: (B,) -> (B, L, C)."""
    rows = starts[:, None] + torch.arange(context_length, device=starts.device)[None, :]
    return features[rows]


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    features: torch.Tensor,
    starts: torch.Tensor,
    *,
    context_length: int,
    batch_size: int = 2048,
    precision: str = "fp32",
) -> np.ndarray:
    """Logits of the windows at `starts`, in eval mode (restored to the previous mode after)."""
    was_training = model.training
    model.eval()
    device = features.device
    out = []
    try:
        for chunk in starts.split(batch_size):
            with _autocast(device, precision):
                out.append(model(gather_windows(features, chunk, context_length)).float())
    finally:
        model.train(was_training)
    # One transfer at the end: a .cpu() per chunk would stall the device once per chunk.
    return torch.cat(out).cpu().numpy()


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    features: torch.Tensor,
    labels: torch.Tensor,
    batch: torch.Tensor,
    *,
    context_length: int,
    micro_batch: int,
    lr: float,
    grad_clip: float | None = None,
    pos_weight: torch.Tensor | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """One optimizer step on the windows starting at `batch`, accumulated over micro-batches.

    Returns:
        The summed (not averaged) loss of the batch, on the device: reading it is left to the
        caller, since every read waits for the device.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=features.device)
    for chunk in batch.split(micro_batch):
        x = gather_windows(features, chunk, context_length)  # (b, L, C)
        with _autocast(features.device, precision):
            logits = model(x)  # (b,)
        loss = F.binary_cross_entropy_with_logits(
            logits.float(), labels[chunk], pos_weight=pos_weight
        )
        # Weight each micro-batch by its share, so the accumulated gradient is the mean over
        # the whole batch even when the last micro-batch is short.
        (loss * (len(chunk) / len(batch))).backward()
        loss_sum += loss.detach() * len(chunk)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(
            [p for group in optimizer.param_groups for p in group["params"]], grad_clip
        )
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum


@contextlib.contextmanager
def _out_of_memory_as_error(what: str) -> Iterator[None]:
    """Turn the framework's out-of-memory failures (CUDA or host) into `OutOfMemoryError`."""
    try:
        yield
    except torch.OutOfMemoryError as e:
        raise OutOfMemoryError(f"{what}: out of device memory ({e})") from e
    except RuntimeError as e:
        if "can't allocate memory" in str(e) or "out of memory" in str(e):
            raise OutOfMemoryError(f"{what}: out of memory ({e})") from e
        raise


def _improved(value: float, best: float, metric: Metric, min_delta: float) -> bool:
    if math.isnan(value):
        return False
    if math.isinf(best):
        return True
    return value < best - min_delta if metric == "val_bce" else value > best + min_delta


@dataclass(eq=False)
class _Setup:
    """Everything one training run holds on the device, built in a fixed order (the seed is
    set first, so the model's initial weights and the shuffle are the same on every run)."""

    device: torch.device
    model: PatchTST
    forward: torch.nn.Module  # the model, or its compiled form
    optimizer: torch.optim.Optimizer
    features: torch.Tensor  # (T, C)
    labels: torch.Tensor  # (N,)
    train_starts: torch.Tensor
    val_starts: torch.Tensor
    pos_weight: torch.Tensor | None
    micro_batch: int
    total_steps: int
    shuffle: torch.Generator


def _set_up(model_config: PatchTSTConfig, config: TrainConfig, data: TrainingData) -> _Setup:
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = PatchTST(model_config).to(device)
    features = torch.as_tensor(data.features, dtype=torch.float32, device=device)
    labels = torch.as_tensor(data.labels, dtype=torch.float32, device=device)
    train_starts = torch.as_tensor(data.train, dtype=torch.long, device=device)
    val_starts = torch.as_tensor(data.val, dtype=torch.long, device=device)
    forward = cast(torch.nn.Module, torch.compile(model)) if config.compile else model
    optimizer = configure_optimizer(
        model,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        fused=device.type in ("cpu", "cuda"),
    )
    pos_weight = (
        torch.tensor(config.pos_weight, device=device) if config.pos_weight is not None else None
    )
    steps_per_epoch = math.ceil(len(data.train) / config.batch_size)
    return _Setup(
        device=device,
        model=model,
        forward=forward,
        optimizer=optimizer,
        features=features,
        labels=labels,
        train_starts=train_starts,
        val_starts=val_starts,
        pos_weight=pos_weight,
        micro_batch=config.micro_batch or config.batch_size,
        total_steps=steps_per_epoch * config.epochs,
        shuffle=torch.Generator().manual_seed(config.seed),
    )


def _train_epoch(
    run: _Setup,
    config: TrainConfig,
    context_length: int,
    step: int,
    on_step: StepCallback | None,
) -> tuple[torch.Tensor, int, float]:
    """One pass over the training windows in a fresh shuffled order.

    Returns:
        The summed training loss (on the device, unread), the optimizer steps taken so far and
        the last learning rate.
    """
    run.model.train()
    order = run.train_starts[
        torch.randperm(len(run.train_starts), generator=run.shuffle).to(run.device)
    ]
    loss_sum = torch.zeros((), device=run.device)
    lr = config.learning_rate
    for batch in order.split(config.batch_size):
        lr = lr_at(
            step,
            base_lr=config.learning_rate,
            warmup_steps=config.warmup_steps,
            total_steps=run.total_steps,
            min_lr_ratio=config.min_lr_ratio,
        )
        loss_sum += train_step(
            run.forward,
            run.optimizer,
            run.features,
            run.labels,
            batch,
            context_length=context_length,
            micro_batch=run.micro_batch,
            lr=lr,
            grad_clip=config.grad_clip,
            pos_weight=run.pos_weight,
            precision=config.precision,
        )
        step += 1
        if on_step is not None:
            on_step(step)
    return loss_sum, step, lr


def _validate(
    run: _Setup, config: TrainConfig, data: TrainingData
) -> tuple[np.ndarray, dict[str, float]]:
    """The validation windows' logits and their metrics."""
    logits = predict(
        run.forward,
        run.features,
        run.val_starts,
        context_length=data.context_length,
        batch_size=config.eval_batch_size or run.micro_batch,
        precision=config.precision,
    )
    return logits, binary_metrics(logits, data.labels[data.val])


@dataclass(eq=False)
class _Best:
    """The best epoch so far: its metric, record, validation logits and weights (on the host)."""

    metric: Metric
    min_delta: float
    value: float = math.nan
    epoch: int = 0
    record: dict[str, float] = field(default_factory=dict)
    logits: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="float32"))
    state: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.value = math.inf if self.metric == "val_bce" else -math.inf

    def offer(self, record: dict[str, float], logits: np.ndarray, model: torch.nn.Module) -> bool:
        """Keep the epoch if it improves on the best; returns whether it did."""
        value = record[self.metric]
        if not _improved(value, self.value, self.metric, self.min_delta):
            return False
        self.value, self.epoch, self.record, self.logits = (
            value,
            int(record["epoch"]),
            record,
            logits,
        )
        # Copied to the host: the device keeps only the live weights.
        self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return True


def train(
    model_config: PatchTSTConfig,
    config: TrainConfig,
    data: TrainingData,
    *,
    on_epoch: EpochCallback | None = None,
    on_step: StepCallback | None = None,
) -> tuple[PatchTST, TrainResult]:
    """Train a fresh model and return it with the best epoch's weights, and its result.

    Args:
        model_config: the architecture and its dropout.
        config: optimization, stopping, device and precision.
        data: features, labels and the training and validation window starts.
        on_epoch: called after each epoch with its number (from 1) and metrics (`train_loss`,
            `lr`, `val_bce`, `val_auc`, …); it may raise to stop training (a pruner does).
        on_step: called after every optimizer step with the number of steps taken; it may raise
            to stop training at once (a worker does when it is asked to stop). Cheap: no sync.

    Raises:
        DivergenceError: the training loss became NaN or infinite.
        OutOfMemoryError: the device or host ran out of memory.
    """
    started = time.perf_counter()
    what = f"training {model_config.d_model}x{model_config.n_layers}"
    history: list[dict[str, float]] = []
    step = 0
    stop_reason = "max_epochs"
    best = _Best(config.metric, config.min_delta)
    with _out_of_memory_as_error(what):
        run = _set_up(model_config, config, data)
        stale = 0
        for epoch in range(1, config.epochs + 1):
            loss_sum, step, lr = _train_epoch(run, config, data.context_length, step, on_step)
            # One host sync per epoch: checking every step would stall the device every step,
            # and a NaN stays NaN until the epoch ends.
            train_loss = loss_sum.item() / len(run.train_starts)
            if not math.isfinite(train_loss):
                raise DivergenceError(
                    f"{what}: training loss became {train_loss} in epoch {epoch} "
                    f"(learning rate {lr:.3g})"
                )
            logits, val = _validate(run, config, data)
            record = {"epoch": float(epoch), "train_loss": train_loss, "lr": lr}
            record.update({f"val_{k}": v for k, v in val.items()})
            history.append(record)
            log.debug(
                "epoch %d: train_loss %.4f val_bce %.4f val_auc %.4f lr %.2e",
                epoch, train_loss, val["bce"], val["auc"], lr,
            )  # fmt: skip
            stale = 0 if best.offer(record, logits, run.model) else stale + 1
            if on_epoch is not None:
                on_epoch(epoch, dict(record))
            if stale >= config.patience:
                stop_reason = "early_stopping"
                break

    if not best.state:
        raise DivergenceError(f"{what}: {config.metric} was never defined (NaN in every epoch)")
    run.model.load_state_dict(best.state)
    elapsed = time.perf_counter() - started
    result = TrainResult(
        metric=config.metric,
        value=float(best.value),
        best_epoch=best.epoch,
        epochs_run=len(history),
        stop_reason=stop_reason,
        val={k.removeprefix("val_"): v for k, v in best.record.items() if k.startswith("val_")},
        train_loss=best.record["train_loss"],
        history=history,
        val_logits=best.logits,
        optimizer_steps=step,
        wall_time_s=elapsed,
        windows_per_s=len(history) * len(data.train) / elapsed,
    )
    return run.model, result
