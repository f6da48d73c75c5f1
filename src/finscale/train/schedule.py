"""The learning-rate schedule: a pure function of the optimizer step."""

from __future__ import annotations

import math


def lr_at(
    step: int,
    *,
    base_lr: float,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.1,
) -> float:
    """Learning rate of optimizer step `step` (0-based).

    1. Warm-up: rises linearly from base_lr / warmup_steps to base_lr over `warmup_steps` steps.
    2. Decay: follows a half cosine from base_lr down to base_lr * min_lr_ratio at `total_steps`.
    3. Floor: stays at base_lr * min_lr_ratio after `total_steps` (early stopping never gets
       there; a longer run than planned does).
    """
    floor = base_lr * min_lr_ratio
    if step < warmup_steps:  # 1
        return base_lr * (step + 1) / warmup_steps
    if step >= total_steps:  # 3
        return floor
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 2
    return floor + 0.5 * (base_lr - floor) * (1.0 + math.cos(math.pi * progress))
