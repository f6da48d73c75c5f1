"""Z-score normalization fitted on training rows only.

Prices, volumes and OBV drift by an order of magnitude over decades; a model fed raw values
learns the era, not the pattern (the research system's "prior collapse"). Statistics come from
the rows that training windows read, never from a validation or test row. They are not stored:
they follow from the pinned dataset and the split, so rebuilding a trial recomputes them exactly.
Bounded oscillators keep their own scale.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from finscale.tiers import BOUNDED_COLUMNS

log = logging.getLogger(__name__)

_MIN_STD = 1e-12


@dataclass(frozen=True, eq=False)
class Normalization:
    """Per-column mean and standard deviation; `scaled[c]` is False for columns left as they are."""

    columns: tuple[str, ...]
    mean: np.ndarray  # (C,) float64
    std: np.ndarray  # (C,) float64
    scaled: np.ndarray  # (C,) bool

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Normalize a (…, C) array; returns float32."""
        mean = np.where(self.scaled, self.mean, 0.0)
        std = np.where(self.scaled, self.std, 1.0)
        return ((features - mean) / std).astype("float32")


def training_rows(train_starts: np.ndarray, context_length: int, n_rows: int) -> np.ndarray:
    """Boolean mask of the rows that training windows read as features."""
    marks = np.zeros(n_rows + 1, dtype="int64")
    np.add.at(marks, train_starts, 1)
    np.add.at(marks, train_starts + context_length, -1)
    return np.cumsum(marks[:-1]) > 0


def fit_normalization(
    features: np.ndarray,
    columns: Iterable[str],
    *,
    train_starts: np.ndarray,
    context_length: int,
    keep: frozenset[str] = BOUNDED_COLUMNS,
) -> Normalization:
    """Fit mean and standard deviation on the rows the training windows read.

    Args:
        features: (T, C) feature matrix of the whole dataset.
        columns: the C column names.
        train_starts: start rows of the training windows.
        context_length: rows each window reads.
        keep: columns left unscaled (bounded oscillators by default).

    Raises:
        ValueError: there are no training windows.
    """
    columns = tuple(columns)
    if len(train_starts) == 0:
        raise ValueError("cannot fit normalization without training windows")
    rows = training_rows(np.asarray(train_starts), context_length, len(features))
    fitted = features[rows].astype("float64")
    mean = fitted.mean(axis=0)
    std = fitted.std(axis=0)
    scaled = np.array([c not in keep for c in columns], dtype=bool)
    flat = scaled & (std < _MIN_STD)
    if flat.any():
        names = [c for c, f in zip(columns, flat, strict=True) if f]
        log.warning("constant on the training rows, centred but not scaled: %s", ", ".join(names))
        std = np.where(flat, 1.0, std)
    return Normalization(columns=columns, mean=mean, std=std, scaled=scaled)
