"""What goes into training and what comes out: the training config, the data, the result."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from finscale import defaults

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
