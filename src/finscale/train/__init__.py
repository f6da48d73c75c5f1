"""Training one model on windows. Knows nothing of Optuna or Kubernetes.

The names below load lazily (torch only with the names that need it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finscale.lazy import lazy_exports

# Each public name and the module that defines it: the one list (`__all__` follows from it).
_WHERE = {
    "TrainConfig": "config",
    "TrainResult": "config",
    "TrainingData": "config",
    "available_memory_bytes": "device",
    "binary_metrics": "metrics",
    "configure_optimizer": "optim",
    "lr_at": "schedule",
    "predict": "trainer",
    "resolve_device": "device",
    "train": "trainer",
}

__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # the same names for type checkers
    from finscale.train.config import TrainConfig as TrainConfig
    from finscale.train.config import TrainingData as TrainingData
    from finscale.train.config import TrainResult as TrainResult
    from finscale.train.device import available_memory_bytes as available_memory_bytes
    from finscale.train.device import resolve_device as resolve_device
    from finscale.train.metrics import binary_metrics as binary_metrics
    from finscale.train.optim import configure_optimizer as configure_optimizer
    from finscale.train.schedule import lr_at as lr_at
    from finscale.train.trainer import predict as predict
    from finscale.train.trainer import train as train


__getattr__ = lazy_exports("finscale.train", _WHERE)
