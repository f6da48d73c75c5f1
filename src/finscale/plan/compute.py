"""What a design costs: floating-point operations per study from the architectures of its grid,
over a device's rate.

The throughput model (stated in `finscale plan`'s output):

- a window is P patch tokens of width D; its forward pass multiplies every token by the patch
  projection (S·C × D), and per layer by the attention projections (4·D², q, k, v and out) and
  the feed-forward (2·D·F), the flattened head once (P·D), and per layer it forms attention
  scores and their weighted sum (2 · 2·P²·D): forward FLOPs = 2·(P·(S·C·D + layers·(4·D² +
  2·D·F)) + P·D) + 4·layers·P²·D. Training a window costs 3 × its forward pass (the backward
  pass twice the forward), the usual 6 × parameters × tokens plus attention;
- a trial trains `epochs` epochs over the training windows (steps = windows / batch, tokens per
  step = P × batch) and scores the validation windows after each; the architecture is the mean
  over the budget's grid (the sampler draws across it); the epochs the mean of the spec's;
  early stopping and pruning only shorten this, so it is an upper bound;
- a study runs `n_trials` trials, and the final evaluation retrains `top_k × seeds` runs (the
  same cost, plus one pass over the test windows);
- a device delivers a fraction (the model FLOPs utilisation, MFU) of its peak: a GPU's dense
  bf16 peak from `GPU_PEAK_TFLOPS`, the CPU's rate as measured by `measure_cpu_gflops`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from finscale.model.grid import Arch

# Dense bf16 tensor-core peaks, TFLOPS, from the vendors' data sheets (SXM parts).
GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}
DEFAULT_GPU = "H100"
# Model FLOPs utilisation assumed for training: small transformers on short sequences rarely
# keep a GPU busier than this.
DEFAULT_MFU = 0.3
# float32 matmul of this order: BLAS reaches its rate, and a product takes about a millisecond,
# so the best of many is quick to find on a shared machine (larger products measured lower
# there, their runs more often interrupted).
_BENCH_SIZE = 512
_BENCH_REPEATS = 20


@dataclass(frozen=True)
class Shape:
    """The fixed shape of every model of a study."""

    num_features: int  # C
    context_length: int  # L
    patch_length: int  # S
    stride: int

    @property
    def patches(self) -> int:  # P
        return (self.context_length - self.patch_length) // self.stride + 1


def forward_flops(arch: Arch, shape: Shape) -> float:
    """FLOPs of one window's forward pass (module docstring)."""
    d, f, layers, p = arch.d_model, arch.d_ff, arch.n_layers, shape.patches
    per_token = shape.patch_length * shape.num_features * d + layers * (4 * d * d + 2 * d * f)
    return 2.0 * (p * per_token + p * d) + 4.0 * layers * p * p * d


def training_flops(arch: Arch, shape: Shape) -> float:
    """FLOPs of training on one window: forward and backward, 3 × the forward pass."""
    return 3.0 * forward_flops(arch, shape)


@dataclass(frozen=True)
class StudyCost:
    """The floating-point work of one study."""

    train_windows: int
    val_windows: int
    test_windows: int
    epochs: float
    batch_size: int
    n_trials: int
    eval_runs: int  # top_k × seeds retrainings of the final evaluation
    patches: int  # P: tokens per window
    forward_per_window: float  # mean over the grid
    train_per_window: float

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train_windows / self.batch_size)

    @property
    def tokens_per_step(self) -> int:
        return self.patches * self.batch_size

    @property
    def per_run(self) -> float:
        """One training run: its epochs over the training windows, each scored on validation."""
        epoch = self.train_windows * self.train_per_window
        return self.epochs * (epoch + self.val_windows * self.forward_per_window)

    @property
    def search(self) -> float:
        return self.n_trials * self.per_run

    @property
    def evaluation(self) -> float:
        return self.eval_runs * (self.per_run + self.test_windows * self.forward_per_window)

    @property
    def total(self) -> float:
        return self.search + self.evaluation


def study_cost(
    grid: Sequence[Arch],
    shape: Shape,
    *,
    train_windows: int,
    val_windows: int,
    test_windows: int,
    epochs: float,
    batch_size: int,
    n_trials: int,
    eval_runs: int,
) -> StudyCost:
    """The cost of a study whose trials draw their architectures evenly from `grid`.

    Raises:
        ValueError: an empty grid.
    """
    if not grid:
        raise ValueError("an empty grid has no cost")
    forward = float(np.mean([forward_flops(a, shape) for a in grid]))
    return StudyCost(
        train_windows=train_windows,
        val_windows=val_windows,
        test_windows=test_windows,
        epochs=epochs,
        batch_size=batch_size,
        n_trials=n_trials,
        eval_runs=eval_runs,
        patches=shape.patches,
        forward_per_window=forward,
        train_per_window=3.0 * forward,
    )


def hours(flops: float, *, peak_flops: float, mfu: float) -> float:
    """Device-hours for `flops` at `mfu` of `peak_flops` per second."""
    return flops / (peak_flops * mfu) / 3600.0


def _best_seconds(a: np.ndarray, b: np.ndarray) -> float:
    a @ b  # warm-up: threads started, pages touched
    best = math.inf
    for _ in range(_BENCH_REPEATS):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return best


def measure_cpu_gflops() -> float:
    """This machine's float32 matmul rate in GFLOPS: the best of 20 products of order 512 with
    every core BLAS uses, or one core's best times the cores this process may use, whichever
    is higher (a fraction of a second). On a shared machine BLAS threads that wait for each
    other measure far below the cores' rate; one core alone does not."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    rng = np.random.default_rng(0)
    a = rng.standard_normal((_BENCH_SIZE, _BENCH_SIZE), dtype=np.float32)
    b = rng.standard_normal((_BENCH_SIZE, _BENCH_SIZE), dtype=np.float32)
    flops = 2.0 * _BENCH_SIZE**3
    every = flops / _best_seconds(a, b)
    with threadpool_limits(limits=1):
        one = flops / _best_seconds(a, b)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(every, one * (cores or 1)) / 1e9
