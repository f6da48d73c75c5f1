"""Circular block bootstrap of windows that overlap in time, kept inside contiguous segments."""

from __future__ import annotations

import numpy as np

from finscale.report.hac import segment_ids


def block_bootstrap_indices(
    n: int,
    *,
    block_length: int,
    n_resamples: int,
    rng: np.random.Generator,
    starts: np.ndarray | None = None,
) -> np.ndarray:
    """Window indices of `n_resamples` circular block-bootstrap resamples.

    Each segment is resampled on its own (blocks wrap around inside it, so that every window is
    drawn equally often) and keeps its length; the resample is the concatenation. Use the same
    indices for every predictor to resample them jointly.

    Args:
        n: windows.
        block_length: windows per block (at least the horizon; see `paired_difference.lag`).
        n_resamples: resamples.
        rng: the random generator.
        starts: segment starts (see `segments`); None: one segment.

    Returns:
        int64 array of shape (n_resamples, n).
    """
    if block_length < 1 or n < 1 or n_resamples < 1:
        raise ValueError(f"need n, block_length and n_resamples ≥ 1, got {n}, {block_length}")
    seg = segment_ids(n, starts)
    bounds = np.concatenate([np.flatnonzero(np.diff(seg)) + 1, [n]])
    parts = []
    first = 0
    for last in bounds:
        m = int(last - first)
        b = min(block_length, m)
        blocks = -(-m // b)
        begin = rng.integers(0, m, size=(n_resamples, blocks, 1))
        idx = (begin + np.arange(b)) % m
        parts.append(idx.reshape(n_resamples, blocks * b)[:, :m] + first)
        first = int(last)
    return np.concatenate(parts, axis=1).astype("int64")


def resample_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each window appears in each resample: (n_resamples, n) float64, so that a
    resampled mean of per-window values v is `counts @ v / n`."""
    rows = indices.shape[0]
    flat = (np.arange(rows)[:, None] * n + indices).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype("float64")
