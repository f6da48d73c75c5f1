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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, cast

import numpy as np
import torch
import torch.nn.functional as F

from finscale import defaults
from finscale.errors import DivergenceError, OutOfMemoryError
from finscale.model.patchtst import PatchTST, PatchTSTConfig
from finscale.train.device import resolve_device
from finscale.train.metrics import binary_metrics
from finscale.train.optim import configure_optimizer
from finscale.train.schedule import lr_at

log = logging.getLogger(__name__)

Metric = Literal["val_bce", "val_auc"]
EpochCallback = Callable[[int, dict[str, float]], None]
StepCallback = Callable[[int], None]


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimization, stopping, device and precision."""

    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100  # optimizer steps
    min_lr_ratio: float = 0.1  # cosine floor, as a fraction of learning_rate
    epochs: int = 50  # at most; early stopping usually ends sooner
    batch_size: int = 256  # windows per optimizer step
    micro_batch: int | None = None  # windows per forward pass; batch_size when None
    grad_clip: float | None = 1.0  # max global gradient norm
    pos_weight: float | None = None  # weight of positive windows in the training loss
    metric: Metric = "val_bce"  # early stopping and the reported value
    patience: int = defaults.PATIENCE  # epochs without improvement before stopping
    min_delta: float = defaults.MIN_DELTA  # smallest change that counts as an improvement
    seed: int = 0
    device: str = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 autocast (CUDA)
    compile: bool = False  # torch.compile the model
    eval_batch_size: int | None = None  # windows per evaluation pass; micro_batch when None

    def __post_init__(self) -> None:
        micro = self.micro_batch or self.batch_size
        if self.batch_size < 1 or micro < 1 or micro > self.batch_size:
            raise ValueError(
                f"need 1 <= micro_batch <= batch_size, got {micro} and {self.batch_size}"
            )
        for name in ("learning_rate", "epochs", "patience"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.weight_decay < 0 or self.warmup_steps < 0 or self.min_delta < 0:
            raise ValueError("weight_decay, warmup_steps and min_delta must not be negative")

    @property
    def accumulation_steps(self) -> int:
        return math.ceil(self.batch_size / (self.micro_batch or self.batch_size))


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Normalized features of every row, labels of every window, and the window starts of each
    split. Built with `finscale.data` (`make_windows`, a split, `fit_normalization`)."""

    features: np.ndarray  # (T, C) float32, normalized
    labels: np.ndarray  # (N,) float32, labels[s] belongs to the window starting at row s
    context_length: int
    train: np.ndarray  # window starts
    val: np.ndarray

    def __post_init__(self) -> None:
        if len(self.train) == 0 or len(self.val) == 0:
            raise ValueError("training needs training and validation windows")


@dataclass
class TrainResult:
    """The best epoch's metrics and how training went."""

    metric: Metric
    value: float  # the best epoch's metric (val_bce or val_auc)
    best_epoch: int
    epochs_run: int
    stop_reason: str  # "early_stopping" or "max_epochs"
    val: dict[str, float]  # every validation metric of the best epoch
    train_loss: float  # mean training loss of the best epoch
    history: list[dict[str, float]] = field(default_factory=list)  # one record per epoch
    # The best epoch's validation logits, one per window in the order of `TrainingData.val`.
    val_logits: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="float32"))
    optimizer_steps: int = 0
    wall_time_s: float = 0.0
    windows_per_s: float = 0.0


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
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    what = f"training {model_config.d_model}x{model_config.n_layers}"
    with _out_of_memory_as_error(what):
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
            torch.tensor(config.pos_weight, device=device)
            if config.pos_weight is not None
            else None
        )
        micro = config.micro_batch or config.batch_size
        steps_per_epoch = math.ceil(len(data.train) / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        shuffle = torch.Generator().manual_seed(config.seed)
        val_labels = data.labels[data.val]

        best_value = math.inf if config.metric == "val_bce" else -math.inf
        best_epoch = 0
        best_record: dict[str, float] = {}
        best_state: dict[str, torch.Tensor] = {}
        best_logits = np.zeros(0, dtype="float32")
        history: list[dict[str, float]] = []
        stale = 0
        step = 0
        stop_reason = "max_epochs"
        for epoch in range(1, config.epochs + 1):
            model.train()
            order = train_starts[torch.randperm(len(train_starts), generator=shuffle).to(device)]
            loss_sum = torch.zeros((), device=device)
            for batch in order.split(config.batch_size):
                lr = lr_at(
                    step,
                    base_lr=config.learning_rate,
                    warmup_steps=config.warmup_steps,
                    total_steps=total_steps,
                    min_lr_ratio=config.min_lr_ratio,
                )
                loss_sum += train_step(
                    forward,
                    optimizer,
                    features,
                    labels,
                    batch,
                    context_length=data.context_length,
                    micro_batch=micro,
                    lr=lr,
                    grad_clip=config.grad_clip,
                    pos_weight=pos_weight,
                    precision=config.precision,
                )
                step += 1
                if on_step is not None:
                    on_step(step)
            # One host sync per epoch: checking every step would stall the device every step,
            # and a NaN stays NaN until the epoch ends.
            train_loss = loss_sum.item() / len(train_starts)
            if not math.isfinite(train_loss):
                raise DivergenceError(
                    f"{what}: training loss became {train_loss} in epoch {epoch} "
                    f"(learning rate {lr:.3g})"
                )
            logits_val = predict(
                forward,
                features,
                val_starts,
                context_length=data.context_length,
                batch_size=config.eval_batch_size or micro,
                precision=config.precision,
            )
            val = binary_metrics(logits_val, val_labels)
            record = {"epoch": float(epoch), "train_loss": train_loss, "lr": lr}
            record.update({f"val_{k}": v for k, v in val.items()})
            history.append(record)
            log.debug(
                "epoch %d: train_loss %.4f val_bce %.4f val_auc %.4f lr %.2e",
                epoch, train_loss, val["bce"], val["auc"], lr,
            )  # fmt: skip
            value = record[config.metric]
            if _improved(value, best_value, config.metric, config.min_delta):
                best_value, stale, best_epoch, best_record = value, 0, epoch, record
                best_logits = logits_val
                # Copied to the host: the device keeps only the live weights.
                best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
            else:
                stale += 1
            if on_epoch is not None:
                on_epoch(epoch, dict(record))
            if stale >= config.patience:
                stop_reason = "early_stopping"
                break

    if not best_state:
        raise DivergenceError(f"{what}: {config.metric} was never defined (NaN in every epoch)")
    model.load_state_dict(best_state)
    elapsed = time.perf_counter() - started
    result = TrainResult(
        metric=config.metric,
        value=float(best_value),
        best_epoch=best_epoch,
        epochs_run=len(history),
        stop_reason=stop_reason,
        val={k.removeprefix("val_"): v for k, v in best_record.items() if k.startswith("val_")},
        train_loss=best_record["train_loss"],
        history=history,
        val_logits=best_logits,
        optimizer_steps=step,
        wall_time_s=elapsed,
        windows_per_s=len(history) * len(data.train) / elapsed,
    )
    return model, result
