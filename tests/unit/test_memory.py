"""The memory estimate counts what autograd saves, and the planner fits the limit."""

from __future__ import annotations

import pytest
import torch

from finscale.model import PatchTST, PatchTSTConfig, parse_arch_id
from finscale.model.memory import estimate_training_memory, plan_batch, saved_activation_bytes


def _autograd_saved_bytes(config: PatchTSTConfig, batch: int) -> int:
    """Bytes of every tensor autograd saves in a training forward pass (weights excluded)."""
    model = PatchTST(config).train()
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randn(batch, config.context_length, config.num_features))
    return sum(saved.values())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dropout": 0.1},
        {"dropout": 0.0},
        {"dropout": 0.1, "attention_dropout": 0.1},  # the math attention path on the CPU
        {"dropout": 0.2, "revin": True},
        {"dropout": 0.1, "head_dropout": 0.2},
        {"dropout": 0.1, "n_heads": 8, "d_model": 64, "d_ff": 256},
        {"dropout": 0.1, "context_length": 260},  # 51 patches: the fused kernel on the CPU
    ],
)
def test_activation_count_equals_what_autograd_saves(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {
        "num_features": 25,
        "d_model": 96,
        "n_heads": 4,
        "n_layers": 3,
        "d_ff": 192,
    }
    config = PatchTSTConfig(**{**base, **kwargs})  # type: ignore[arg-type]
    assert saved_activation_bytes(config, micro_batch=16) == _autograd_saved_bytes(config, 16)


def test_estimate_adds_up_its_parts() -> None:
    config = PatchTSTConfig(num_features=25, **parse_arch_id("d192-l4-h8-f4").dims())
    e = estimate_training_memory(config, micro_batch=256)
    params = PatchTST(config).num_parameters()
    assert (e.weights, e.gradients, e.optimizer) == (4 * params, 4 * params, 8 * params)
    assert e.total == e.weights + e.gradients + e.optimizer + e.activations + e.workspace
    assert e.activations > saved_activation_bytes(config, micro_batch=256)  # allocator slack
    bf16 = estimate_training_memory(config, micro_batch=256, precision="bf16", device="cuda")
    assert (
        bf16.activations
        < estimate_training_memory(config, micro_batch=256, device="cuda").activations
    )
    assert estimate_training_memory(config, micro_batch=512).total > e.total


def test_planner_picks_the_largest_micro_batch_that_fits() -> None:
    config = PatchTSTConfig(num_features=25, **parse_arch_id("d64-l48-h2-f4").dims())
    roomy = plan_batch(config, effective_batch=256, memory_limit_bytes=64 * 2**30)
    assert (roomy.micro_batch, roomy.accumulation_steps) == (256, 1)
    limit = estimate_training_memory(config, micro_batch=64).total / 0.85 + 1
    tight = plan_batch(config, effective_batch=256, memory_limit_bytes=int(limit))
    assert (tight.micro_batch, tight.accumulation_steps) == (64, 4)
    assert tight.effective_batch == 256
    assert tight.estimate.total <= limit * 0.85


def test_planner_refuses_what_cannot_fit() -> None:
    config = PatchTSTConfig(num_features=25, **parse_arch_id("d1024-l256-h8-f2").dims())
    with pytest.raises(
        MemoryError, match=r"d_model=1024, n_layers=256: training needs about \d+\.\d GiB"
    ):
        plan_batch(config, effective_batch=256, memory_limit_bytes=8 * 2**30)
