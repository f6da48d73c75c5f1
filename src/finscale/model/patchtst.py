"""PatchTST-style binary classifier: patches that mix all features, a transformer encoder, a
flattened head that returns one logit per window.

Dimensions used in the shape comments:
    B  batch (windows)          C  features per day       L  context length (days)
    P  patches per window       S  patch length (days)    D  model width (d_model)

This is the research system's variant, not the channel-independent PatchTST of the paper:
every patch flattens S days × C features into one token. It returns logits (the original
applied a sigmoid inside `forward` and once more in evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# The research system's position table had 10 spare rows; kept so that parameter counts match.
SPARE_POSITIONS = 10


@dataclass(frozen=True)
class PatchTSTConfig:
    """Everything that defines the model's shape and regularization."""

    num_features: int  # C
    d_model: int  # D
    n_heads: int
    n_layers: int
    d_ff: int
    context_length: int = 60  # L: the research system's context
    patch_length: int = 10  # S
    stride: int = 5  # overlapping patches: P = (L - S) // stride + 1 = 11
    dropout: float = 0.1
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
                f"patch_length={self.patch_length} is longer than context_length={self.context_length}"
            )
        if (self.context_length - self.patch_length) % self.stride:
            raise ValueError(
                f"context_length={self.context_length} minus patch_length={self.patch_length} is not "
                f"a multiple of stride={self.stride}: the last days would fall outside every patch"
            )
        for name in ("dropout", "head_dropout"):
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
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.n_heads,
            dim_feedforward=config.d_ff,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-norm, as the research system
        )
        # enable_nested_tensor only matters for padded batches, which windows never are.
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.head_dropout = nn.Dropout(config.head_dropout)
        self.head = nn.Linear(config.num_patches * config.d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B,) logits
        if self.revin is not None:
            x = self.revin(x)
        h = self.embed(x)  # (B, P, D)
        h = self.dropout(h + self.position[:, : h.shape[1]])
        h = self.encoder(h)  # (B, P, D)
        h = self.norm(h)
        h = self.head_dropout(h.flatten(1))  # (B, P*D)
        return self.head(h).squeeze(-1)  # (B,)

    def num_parameters(self) -> int:
        """Number of parameters, counted by the tensors themselves."""
        return sum(p.numel() for p in self.parameters())
