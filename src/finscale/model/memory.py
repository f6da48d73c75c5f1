"""How much memory training an architecture takes, and the micro-batch that fits a limit.

The estimate adds up what training keeps alive at its peak (the end of a forward pass, when
every activation saved for the backward pass is held):

- weights, gradients and AdamW's two moments (fp32: 4 + 4 + 8 bytes per parameter), plus the
  bf16 copies autocast keeps of the matrices during a forward pass;
- the activations autograd saves, counted tensor by tensor for `PatchTST`'s layers (see
  `_saved_floats_per_token`; a test checks the count against autograd's own saved tensors);
- workspace: the gathered input batch, the gradient of the largest activation in flight during
  the backward pass and, when training on the CPU, the host copy of the best weights (the fused
  AdamW step needs no temporaries);
- allocator slack on the activations (`ALLOCATOR_SLACK`).

It does not count what the process holds before training starts (the interpreter, libraries,
the dataset) nor the one-off set-up of the first backward pass (about 80 MiB on the host): a
planner subtracts those from the limit first.

Attention takes the path of `attention_path`: a fused kernel saves only its output and
log-sum-exp; the matmul path (short sequences in fp32 on the CPU) also keeps the attention
probabilities, and so does the math path that attention dropout takes on the CPU. Dropout
keeps a one-byte mask on both devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from finscale.model.grid import param_count
from finscale.model.patchtst import PatchTSTConfig, attention_path

Precision = Literal["fp32", "bf16"]
DeviceKind = Literal["cpu", "cuda"]

# What the allocator holds beyond the saved activations, as a fraction of them. On the host,
# glibc keeps some of the forward pass's freed temporaries in its heap (measured: 15-25 % more
# resident memory than the saved tensors; see benchmarks/bench_memory.py). CUDA's caching
# allocator reuses them; its peak allocated exceeds the saved tensors by about one layer's
# temporaries.
ALLOCATOR_SLACK: dict[str, float] = {"cpu": 0.25, "cuda": 0.10}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes, by what holds them."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    workspace: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.workspace


def _saved_bytes_per_token(
    config: PatchTSTConfig, device: DeviceKind, precision: Precision
) -> float:
    """Bytes one encoder layer saves per token for its backward pass.

    With D = d_model, F = d_ff, H = heads, P = patches, per token:
      residual stream: LN1 and LN2 inputs and their mean and rstd    → 2·D + 4 values, fp32
      linear-layer inputs: LN1 out, packed q/k/v (3), attention out,
        LN2 out, feed-forward up-projection out and down-projection in → 6·D + 2·F values
        (bf16 under bf16 autocast, else fp32)
      attention: the fused kernel's log-sum-exp                      → H values, fp32
        (the matmul path keeps the attention probabilities instead: H·P values; with
        attention dropout on the CPU the math path runs and keeps the probabilities, their
        dropout mask and the dropped probabilities: 3·H·P values)
      dropout masks after attention, inside and after the feed-forward → 2·D + F bytes
    """
    d, f, h, p = config.d_model, config.d_ff, config.n_heads, config.num_patches
    linear_bytes = 2 if precision == "bf16" else 4
    if device == "cpu" and config.attention_dropout > 0:
        attention = 3 * h * p
    elif attention_path(device=device, length=p, autocast=precision == "bf16") == "matmul":
        attention = h * p
    else:
        attention = h
    masks = 2 * d + f if config.dropout > 0 else 0
    return 4 * (2 * d + 4) + linear_bytes * (6 * d + 2 * f) + 4 * attention + masks


def saved_activation_bytes(
    config: PatchTSTConfig,
    *,
    micro_batch: int,
    precision: Precision = "fp32",
    device: DeviceKind = "cpu",
) -> int:
    """Bytes of the tensors autograd saves for the backward pass of one micro-batch."""
    tokens = micro_batch * config.num_patches
    d, c = config.d_model, config.num_features
    per_layer = tokens * _saved_bytes_per_token(config, device, precision)
    # Outside the layers: the patches fed to the embedding, the embedding's and the head's
    # dropout masks, the final LayerNorm's input and stats, and the head's input.
    masks = (d if config.dropout > 0 else 0) + (d if config.head_dropout > 0 else 0)
    outside = tokens * (4 * (config.patch_length * c + 2 * d + 2) + masks)
    # RevIN keeps the centred window.
    revin = 4 * micro_batch * config.context_length * c if config.revin else 0
    return int(config.n_layers * per_layer + outside + revin)


def estimate_training_memory(
    config: PatchTSTConfig,
    *,
    micro_batch: int,
    precision: Precision = "fp32",
    device: DeviceKind = "cpu",
) -> MemoryEstimate:
    """Peak memory of training `config` with `micro_batch` windows per forward pass.

    Args:
        config: the model.
        micro_batch: windows per forward and backward pass.
        precision: `fp32`, or `bf16` autocast (fp32 master weights).
        device: `cpu` (the estimate then also counts the host copy of the best weights) or
            `cuda`.
    """
    params = param_count(
        d_model=config.d_model,
        n_layers=config.n_layers,
        d_ff=config.d_ff,
        num_features=config.num_features,
        context_length=config.context_length,
        patch_length=config.patch_length,
        stride=config.stride,
        revin=config.revin,
    )
    saved = saved_activation_bytes(
        config, micro_batch=micro_batch, precision=precision, device=device
    )
    activations = int(saved * (1 + ALLOCATOR_SLACK[device]))
    tokens = micro_batch * config.num_patches
    d, c = config.d_model, config.num_features

    weights = 4 * params
    gradients = 4 * params
    optimizer = 8 * params
    cast_copies = 2 * params if precision == "bf16" else 0
    batch_input = 4 * micro_batch * config.context_length * c
    # During backward the gradient of one layer's largest activation is alive at a time.
    in_flight = 4 * tokens * max(3 * d, config.d_ff) * 2
    best_copy = 4 * params if device == "cpu" else 0
    workspace = cast_copies + batch_input + in_flight + best_copy
    return MemoryEstimate(
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        activations=activations,
        workspace=workspace,
    )


@dataclass(frozen=True)
class BatchPlan:
    """Micro-batch and accumulation that reach the effective batch within a memory limit."""

    micro_batch: int
    accumulation_steps: int
    estimate: MemoryEstimate

    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.accumulation_steps


def plan_batch(
    config: PatchTSTConfig,
    *,
    effective_batch: int,
    memory_limit_bytes: int,
    precision: Precision = "fp32",
    device: DeviceKind = "cpu",
    headroom: float = 0.85,
) -> BatchPlan:
    """The largest micro-batch that divides `effective_batch` and fits `headroom` of the limit.

    Raises:
        MemoryError: even one window per micro-batch does not fit (the architecture is too
            large for the device); the message gives the estimate and the limit.
    """
    budget = memory_limit_bytes * headroom
    divisors = [m for m in range(effective_batch, 0, -1) if effective_batch % m == 0]
    for micro in divisors:
        estimate = estimate_training_memory(
            config, micro_batch=micro, precision=precision, device=device
        )
        if estimate.total <= budget:
            return BatchPlan(micro, effective_batch // micro, estimate)
    smallest = estimate_training_memory(config, micro_batch=1, precision=precision, device=device)
    raise MemoryError(
        f"d_model={config.d_model}, n_layers={config.n_layers}: training needs about "
        f"{smallest.total / 2**30:.1f} GiB even with one window per micro-batch, more than "
        f"{headroom:.0%} of the {memory_limit_bytes / 2**30:.1f} GiB available"
    )
