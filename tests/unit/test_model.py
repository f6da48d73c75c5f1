"""The model returns logits, checks its shape settings, and patches the way it says."""

from __future__ import annotations

import pytest
import torch

from finscale.model import PatchTST, PatchTSTConfig
from finscale.model.dropout import Dropout, dropout


def _config(**kwargs: object) -> PatchTSTConfig:
    base: dict[str, object] = {
        "num_features": 5,
        "d_model": 32,
        "n_heads": 4,
        "n_layers": 2,
        "d_ff": 64,
    }
    base.update(kwargs)
    return PatchTSTConfig(**base)  # type: ignore[arg-type]


def test_forward_returns_one_unbounded_logit_per_window() -> None:
    model = PatchTST(_config()).eval()
    with torch.no_grad():
        model.head.bias.fill_(8.0)
        out = model(torch.randn(7, 60, 5))
    assert out.shape == (7,)
    assert (out > 1.0).all()  # a probability would be at most 1: no sigmoid inside


def test_default_patching_gives_eleven_patches() -> None:
    assert _config().num_patches == 11
    assert _config(stride=10).num_patches == 6


def test_each_patch_reads_only_its_own_days() -> None:
    model = PatchTST(_config())
    x = torch.randn(1, 60, 5, requires_grad=True)
    patches = model.embed(x)  # (1, P, D)
    for p in (0, 4, 10):
        (grad,) = torch.autograd.grad(patches[0, p].sum(), x, retain_graph=True)
        days = torch.nonzero(grad[0].abs().sum(dim=1)).flatten().tolist()
        assert days == list(range(5 * p, 5 * p + 10))


BAD_CONFIGS = [
    pytest.param(
        {"d_model": 30, "n_heads": 4}, r"d_model=30 is not divisible by n_heads=4", id="heads"
    ),
    pytest.param({"stride": 7}, r"not a multiple of stride=7", id="stride"),
    pytest.param(
        {"patch_length": 90}, r"patch_length=90 is longer than context_length=60", id="patch"
    ),
    pytest.param({"dropout": 1.0}, r"dropout must be in \[0, 1\)", id="dropout"),
    pytest.param({"n_layers": 0}, r"n_layers must be at least 1", id="layers"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_CONFIGS)
def test_invalid_shapes_are_refused_at_construction(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _config(**kwargs)


def test_revin_makes_the_model_blind_to_each_windows_level_and_scale() -> None:
    model = PatchTST(_config(revin=True)).eval()
    x = torch.randn(3, 60, 5)
    shifted = x * torch.tensor([2.0, 0.5, 3.0, 1.0, 10.0]) + torch.tensor(
        [100.0, -5.0, 0.0, 7.0, 1e3]
    )
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(shifted), rtol=1e-4, atol=1e-4)


def test_dropout_is_active_in_training_only() -> None:
    model = PatchTST(_config(dropout=0.3))
    x = torch.randn(4, 60, 5)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3])
def test_host_dropout_drops_p_and_keeps_the_expectation(p: float) -> None:
    torch.manual_seed(0)
    x = torch.ones(2_000_000, requires_grad=True)
    y = dropout(x, p, training=True)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(p, abs=0.002)
    assert y.mean().item() == pytest.approx(1.0, abs=0.005)
    y.backward(torch.ones_like(y))
    assert x.grad is not None
    assert torch.equal(x.grad == 0, y == 0)  # the gradient flows through the kept elements only
    assert torch.equal(x.grad, y.detach())


def test_host_dropout_follows_the_seed() -> None:
    x = torch.ones(1000)
    torch.manual_seed(3)
    a = dropout(x, 0.5, training=True)
    torch.manual_seed(3)
    b = dropout(x, 0.5, training=True)
    assert torch.equal(a, b)
    assert not torch.equal(a, dropout(x, 0.5, training=True))


def test_dropout_module_is_identity_when_off() -> None:
    x = torch.randn(100)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0)(x), x)
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\)"):
        Dropout(1.5)


def test_attention_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The matmul path for short sequences on the CPU computes what the fused kernel does."""
    from finscale.model import patchtst

    config = PatchTSTConfig(num_features=5, d_model=32, n_heads=4, n_layers=2, d_ff=64, dropout=0)
    assert patchtst.attention_path(device="cpu", length=config.num_patches) == "matmul"
    x = torch.randn(8, config.context_length, config.num_features)

    def output_and_grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        torch.manual_seed(0)
        model = PatchTST(config)
        y = model(x)
        y.sum().backward()
        return y.detach(), [p.grad for p in model.parameters() if p.grad is not None]

    matmul_y, matmul_grads = output_and_grads()
    monkeypatch.setattr(patchtst, "SHORT_SEQUENCE", 0)
    assert patchtst.attention_path(device="cpu", length=config.num_patches) == "fused"
    fused_y, fused_grads = output_and_grads()
    torch.testing.assert_close(matmul_y, fused_y, rtol=1e-5, atol=1e-5)
    for a, b in zip(matmul_grads, fused_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"device": "cpu", "length": 11}, "matmul"),
        ({"device": "cpu", "length": 64}, "fused"),
        ({"device": "cuda", "length": 11}, "fused"),
        ({"device": "cpu", "length": 11, "attention_dropout": 0.1}, "fused"),
        ({"device": "cpu", "length": 11, "autocast": True}, "fused"),
    ],
)
def test_attention_path_by_device_and_length(kwargs: dict[str, object], path: str) -> None:
    from finscale.model.patchtst import attention_path

    assert attention_path(**kwargs) == path  # type: ignore[arg-type]
