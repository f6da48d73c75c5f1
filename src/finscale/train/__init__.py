"""Training one model on windows. Knows nothing of Optuna or Kubernetes."""

from finscale.train.metrics import binary_metrics
from finscale.train.optim import configure_optimizer
from finscale.train.schedule import lr_at
from finscale.train.trainer import (
    TrainConfig,
    TrainingData,
    TrainResult,
    predict,
    resolve_device,
    train,
)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingData",
    "binary_metrics",
    "configure_optimizer",
    "lr_at",
    "predict",
    "resolve_device",
    "train",
]
