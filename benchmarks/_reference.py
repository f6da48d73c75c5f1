"""A conventional PatchTST training step, as the research system wrote it: the yardstick of
`bench_train.py` and `bench_loss_curve.py`.

Pre-norm `nn.TransformerEncoderLayer`s (on `nn.MultiheadAttention`, GELU, dropout in the usual
places), a learned position table, a flattened linear head with a sigmoid inside `forward`,
`nn.BCELoss` on the probabilities, `torch.optim.Adam` with its defaults for the device, and
global-norm gradient clipping. Same shapes and parameter count as `finscale.model.PatchTST`
(without RevIN), so the two steps do the same arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

from finscale.model.patchtst import SPARE_POSITIONS, PatchTSTConfig


class ConventionalPatchTST(nn.Module):
    def __init__(self, config: PatchTSTConfig) -> None:
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.patch_length * config.num_features, config.d_model)
        rows = config.num_patches + SPARE_POSITIONS
        self.position = nn.Parameter(0.02 * torch.randn(1, rows, config.d_model))
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            config.d_model,
            config.n_heads,
            dim_feedforward=config.d_ff,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.num_patches * config.d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C) -> (B,) probabilities
        patches = x.unfold(1, self.config.patch_length, self.config.stride)  # (B, P, C, S)
        h = self.proj(patches.transpose(2, 3).flatten(2))  # (B, P, D)
        h = self.dropout(h + self.position[:, : h.shape[1]])
        h = self.norm(self.encoder(h))
        return torch.sigmoid(self.head(h.flatten(1)).squeeze(-1))


class ConventionalStep:
    """Model, optimizer and loss of the conventional step; `step(x, y)` takes one batch."""

    def __init__(
        self, config: PatchTSTConfig, *, learning_rate: float = 1e-4, grad_clip: float = 1.0
    ) -> None:
        self.model = ConventionalPatchTST(config)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learning_rate)
        self.loss = nn.BCELoss()
        self.grad_clip = grad_clip

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        self.model.train()
        self.optimizer.zero_grad()
        loss = self.loss(self.model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return float(loss.item())
