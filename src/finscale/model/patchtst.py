"""PatchTST-style binary classifier: patches that mix all features, a transformer encoder, a
flattened head that returns one logit per window.

Dimensions used in the shape comments:
    B  batch (windows)          C  features per day       L  context length (days)
    P  patches per window       S  patch length (days)    D  model width (d_model)
    H  attention heads          F  feed-forward width (d_ff)

This is the research system's variant, not the channel-independent PatchTST of the paper:
every patch flattens S days × C features into one token. It returns logits (the original
applied a sigmoid inside `forward` and once more in evaluation).

The encoder layer is written out (pre-norm, GELU, the parameters of `nn.TransformerEncoderLayer`
one for one) rather than taken from torch, for two reasons: attention takes the path that is
fastest for the device and sequence length (`attention_path`); and dropout elsewhere uses
`finscale.model.dropout`, several times cheaper on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from finscale import defaults
from finscale.model.dropout import Dropout
from finscale.model.grid import SPARE_POSITIONS

# Up to this many patches, attention on the CPU is written out with batched matmuls: the fused
# kernels' fixed costs dominate such short sequences (benchmarks/bench_attention.py, torch
# 2.13, 2 cores: 1.1x faster at 11 patches, 2x at 23; the flash kernel wins from 64 on).
SHORT_SEQUENCE = 32

AttentionPath = Literal["matmul", "fused"]


def attention_path(
    *, device: str, length: int, attention_dropout: float = 0.0, autocast: bool = False
) -> AttentionPath:
    """How self-attention runs: `fused` (`F.scaled_dot_product_attention`, which picks a
    flash or memory-efficient kernel on the device) or `matmul` (softmax(q kᵀ / √d) v with
    batched matmuls, fp32 on the CPU for short sequences without attention dropout)."""
    if device == "cpu" and length <= SHORT_SEQUENCE and attention_dropout == 0 and not autocast:
        return "matmul"
    return "fused"


@dataclass(frozen=True)
class PatchTSTConfig:
    """Everything that defines the model's shape and regularization."""

    num_features: int  # C
    d_model: int  # D
    n_heads: int
    n_layers: int
    d_ff: int
    context_length: int = defaults.CONTEXT_LENGTH  # L: the research system's context
    patch_length: int = defaults.PATCH_LENGTH  # S
    stride: int = defaults.STRIDE  # overlapping patches: P = (L - S) // stride + 1 = 11
    dropout: float = 0.1  # after attention, inside and after the feed-forward, on the embedding
    attention_dropout: float = 0.0  # on attention weights; PatchTST's default
    head_dropout: float = 0.0
    revin: bool = False  # per-window instance normalization, with a learnable affine per feature

    def __post_init__(self) -> None:
        for name in (
            "num_features",
            "d_model",
            "n_heads",
            "n_layers",
            "d_ff",
            "patch_length",
            "stride",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}: "
                "each head needs an equal share of the width"
            )
        if self.patch_length > self.context_length:
            raise ValueError(
                f"patch_length={self.patch_length} is longer than "
                f"context_length={self.context_length}"
            )
        if (self.context_length - self.patch_length) % self.stride:
            raise ValueError(
                f"context_length={self.context_length} minus patch_length={self.patch_length} is "
                f"not a multiple of stride={self.stride}: the last days would fall outside every "
                "patch"
            )
        for name in ("dropout", "attention_dropout", "head_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def num_patches(self) -> int:
        return (self.context_length - self.patch_length) // self.stride + 1


class RevIN(nn.Module):
    """Normalize each window by its own mean and spread per feature (Kim et al., 2022).

    A classifier needs no de-normalization at the output, so only the input side is kept.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B, L, C)
        mean = x.mean(dim=1, keepdim=True)
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps)
        return (x - mean) / std * self.weight + self.bias


class PatchEmbedding(nn.Module):
    """Cut the window into overlapping patches and project each (S days × C features) to D."""

    def __init__(self, config: PatchTSTConfig) -> None:
        super().__init__()
        self.patch_length = config.patch_length
        self.stride = config.stride
        self.proj = nn.Linear(config.patch_length * config.num_features, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B, P, D)
        patches = x.unfold(1, self.patch_length, self.stride)  # (B, P, C, S)
        patches = patches.transpose(2, 3).flatten(2)  # (B, P, S*C), day-major like the original
        return self.proj(patches)


class SelfAttention(nn.Module):
    """Multi-head self-attention: one projection to q, k, v, attention by `attention_path`, one
    out-projection."""

    def __init__(self, config: PatchTSTConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.attention_dropout = config.attention_dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, P, D) -> (B, P, D)
        b, p, d = x.shape
        qkv = self.qkv(x).view(b, p, 3, self.n_heads, d // self.n_heads)  # (B, P, 3, H, D/H)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, P, D/H)
        dropout_p = self.attention_dropout if self.training else 0.0
        path = attention_path(
            device=x.device.type,
            length=p,
            attention_dropout=dropout_p,
            autocast=torch.is_autocast_enabled(x.device.type),
        )
        if path == "matmul":
            scores = (q @ k.transpose(-2, -1)) * (d // self.n_heads) ** -0.5  # (B, H, P, P)
            y = scores.softmax(dim=-1) @ v  # (B, H, P, D/H)
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)  # (B, H, P, D/H)
        return self.out(y.transpose(1, 2).reshape(b, p, d))


class FeedForward(nn.Module):
    """Position-wise two-layer perceptron with GELU."""

    def __init__(self, config: PatchTSTConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.d_model, config.d_ff)
        self.dropout = Dropout(config.dropout)
        self.down = nn.Linear(config.d_ff, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, P, D) -> (B, P, D)
        return self.down(self.dropout(F.gelu(self.up(x))))  # through (B, P, F)


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer: x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, config: PatchTSTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model)
        self.attention = SelfAttention(config)
        self.dropout1 = Dropout(config.dropout)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.feed_forward = FeedForward(config)
        self.dropout2 = Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, P, D) -> (B, P, D)
        x = x + self.dropout1(self.attention(self.norm1(x)))
        return x + self.dropout2(self.feed_forward(self.norm2(x)))


class PatchTST(nn.Module):
    """Windows of daily features in, one logit per window out."""

    def __init__(self, config: PatchTSTConfig) -> None:
        super().__init__()
        self.config = config
        self.revin = RevIN(config.num_features) if config.revin else None
        self.embed = PatchEmbedding(config)
        # std 0.02 as in GPT-2: the original's unit-variance table drowned the patch embeddings.
        rows = config.num_patches + SPARE_POSITIONS
        self.position = nn.Parameter(0.02 * torch.randn(1, rows, config.d_model))
        self.dropout = Dropout(config.dropout)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head_dropout = Dropout(config.head_dropout)
        self.head = nn.Linear(config.num_patches * config.d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B,) logits
        if self.revin is not None:
            x = self.revin(x)
        h = self.embed(x)  # (B, P, D)
        h = self.dropout(h + self.position[:, : h.shape[1]])
        for layer in self.layers:
            h = layer(h)  # (B, P, D)
        h = self.norm(h)
        h = self.head_dropout(h.flatten(1))  # (B, P*D)
        return self.head(h).squeeze(-1)  # (B,)

    def num_parameters(self) -> int:
        """Number of parameters, counted by the tensors themselves."""
        return sum(p.numel() for p in self.parameters())
