"""The optimizer: AdamW where 2-D weights decay and biases, norms and the position table do not."""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


def configure_optimizer(
    model: nn.Module, *, learning_rate: float, weight_decay: float, fused: bool = True
) -> torch.optim.AdamW:
    """AdamW with two parameter groups.

    Matrices (linear and attention weights) decay; vectors (biases, LayerNorm and RevIN scales)
    and the position table do not: shrinking them toward zero only fights the normalization.

    Args:
        model: the model whose parameters are optimized.
        learning_rate: the initial learning rate (the schedule sets it every step).
        weight_decay: decoupled weight decay of the matrices.
        fused: one fused kernel per step (CPU and CUDA): faster, and no per-parameter
            temporaries; turn off for devices without one.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.dim() >= 2 and not name.endswith("position"):
            decay.append(param)
        else:
            no_decay.append(param)
    n_decay, n_plain = sum(p.numel() for p in decay), sum(p.numel() for p in no_decay)
    log.debug(
        "AdamW: %d decayed parameters in %d tensors, %d plain in %d",
        n_decay,
        len(decay),
        n_plain,
        len(no_decay),
    )
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=learning_rate, fused=fused)
