"""What each resample of a scaling fit redraws besides the windows: each budget's draws.

A budget's point rests on draws that luck chose as much as the windows did: the trials its
search happened to draw (configurations and seeds) or, on test, the seeds of its final model.
Resampling the windows with those draws held fixed leaves that luck out of the interval (with
trials whose mean losses differ by τ = 0.01 BCE for nothing but their draw, 95 % intervals of
the slope covered 78.5 % of the truth in tests/unit/test_scaling_luck.py).

A draw's mean loss is its budget's mean plus its own offset, and the offset holds two things:
what the draw is worth (its luck, spread τ) and what its own window noise added (spread σ, which
resampling the windows already redraws). Resampling the draws as they are would count σ twice
(trials and windows are crossed, not nested), and a plain bootstrap of the best of 3 trials out
of 3 sees well under half the spread of a best of 3 (it repeats trials). So each resample
redraws every budget's draws as a random effect, in the manner of a residual bootstrap for
multilevel data (Carpenter, Goldstein & Rasbash 2003):

- each draw's window losses are moved to its budget's mean (its own offset removed), and the
  resampled windows give its window noise;
- it gets a new offset: one of all budgets' draws' offsets (standardized, with replacement),
  scaled to the luck part of the spread, τ² = s² − σ² (s² the pooled variance of the draws'
  mean losses around their budget's mean, σ² that of their window-resampled offsets);
- small samples: s² comes from few draws (three budgets of 8, 5 and 3 trials: 13 degrees of
  freedom; three final models of 2 seeds: 3), so each resample takes s² · df / χ²_df instead of
  s², as if the spread were drawn again from its sampling distribution; this is what turns a
  normal interval into a Student t one on df degrees of freedom. The offsets are pooled over
  budgets because three trials cannot show their own spread's shape.

The pooled spread assumes the draws of every budget spread alike; a budget whose trials spread
more gets an interval that is too narrow for it and one that spread less one too wide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spread:
    """The spread of draws around their budget's mean, pooled over budgets."""

    total: float  # s²: variance of the draws' mean losses around their budget's mean
    windows: float  # σ²: the part window noise gives (from the window resamples)
    df: int  # Σ (draws − 1) over budgets
    offsets: np.ndarray  # every draw's offset, standardized to unit variance, pooled

    @property
    def luck(self) -> float:
        """τ²: the part of the spread the windows do not explain (method of moments, ≥ 0)."""
        return max(self.total - self.windows, 0.0)


def spread(losses: Sequence[np.ndarray], resampled: Sequence[np.ndarray]) -> Spread | None:
    """The pooled spread of each budget's draws; None when no budget has two.

    Args:
        losses: per budget, (draws, windows) per-window losses.
        resampled: per budget, (resamples, draws) mean losses on each resample of the windows.
    """
    total = windows = 0.0
    df = 0
    offsets = []
    for loss, means in zip(losses, resampled, strict=True):
        k = len(loss)
        if k < 2:
            continue
        mean = loss.mean(axis=1)
        centred = mean - mean.mean()
        total += float(centred @ centred)
        moved = means - means.mean(axis=1, keepdims=True)
        windows += float(moved.var(axis=0).sum())
        df += k - 1
        offsets.append(centred / math.sqrt(1 - 1 / k))  # each offset's variance is s²(1 − 1/k)
    if df == 0 or total <= 0:
        return None
    # Each offset divided by its standard deviation, s·√(1 − 1/k): a unit variance each.
    return Spread(total / df, windows / df, df, np.concatenate(offsets) / math.sqrt(total / df))


def redrawn_means(
    losses: Sequence[np.ndarray],
    resampled: Sequence[np.ndarray],
    found: Spread,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Per budget, (resamples, draws) mean losses with every draw redrawn (see the module
    docstring): the window-resampled losses moved to the budget's mean, plus a new offset."""
    n = len(resampled[0])
    totals = found.total * found.df / rng.chisquare(found.df, size=n)
    scale = np.sqrt(np.maximum(totals - found.windows, 0.0))[:, None]
    out = []
    for loss, means in zip(losses, resampled, strict=True):
        mean = loss.mean(axis=1)
        picks = rng.integers(0, len(found.offsets), size=(n, len(loss)))
        out.append(means - (mean - mean.mean())[None, :] + scale * found.offsets[picks])
    return out
