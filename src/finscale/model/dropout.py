"""Dropout whose host (CPU) version draws 4 masks per 64-bit random number.

`F.dropout` on the CPU draws one float per element (an MT19937 Bernoulli), which cost a quarter
to a half of a training step of the small models. Here one 64-bit draw gives four 16-bit
uniform numbers, and the mask is kept as one byte per element instead of a float. The drop
probability is rounded to a multiple of 1/65536 (0.1 becomes 0.100006…); the scale uses the
rounded value, so the expectation of the output is exactly the input. On CUDA, `F.dropout`
(one fused Philox kernel) is already fast and is used as it is.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16


class _HostDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:
        cut = round(p * _LEVELS)
        n = x.numel()
        draws = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64)
        uniform16 = draws.view(torch.int16)[:n].view(x.shape)  # uniform in [-32768, 32767]
        keep = (uniform16 >= cut - _LEVELS // 2).view(torch.uint8)  # P(keep) = 1 - cut/65536
        scale = _LEVELS / (_LEVELS - cut)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        # Converted explicitly: float x bool (or uint8) in one op takes a slow mixed-type path.
        return x * keep.to(x.dtype).mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (keep,) = ctx.saved_tensors
        return grad * keep.to(grad.dtype).mul_(ctx.scale), None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero each element with probability `p` and scale the rest by 1/(1-p), when training."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    out: torch.Tensor = _HostDropout.apply(x, p)
    return out


class Dropout(nn.Module):
    """`nn.Dropout` with the fast host path of `dropout`."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
