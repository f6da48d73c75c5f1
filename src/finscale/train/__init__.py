"""Training one model on windows. Knows nothing of Optuna or Kubernetes."""

from finscale.train.config import TrainConfig, TrainingData, TrainResult
from finscale.train.device import available_memory_bytes, resolve_device
from finscale.train.metrics import binary_metrics
from finscale.train.optim import configure_optimizer
from finscale.train.schedule import lr_at
from finscale.train.trainer import predict, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingData",
    "available_memory_bytes",
    "binary_metrics",
    "configure_optimizer",
    "lr_at",
    "predict",
    "resolve_device",
    "train",
]
