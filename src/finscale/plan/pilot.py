"""A pilot run's trials, read back from the storage: how much a budget's trials spread, and,
where they stored their validation predictions, how much a trial's own per-window loss moves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from finscale.settings import Settings
from finscale.spec import StudySpec


@dataclass(frozen=True)
class Pilot:
    """A pilot run's trials of one horizon: their values' pooled spread within budgets."""

    sd: float  # √(Σ (value − budget mean)² / df)
    df: int
    studies: int
    window_sd: float | None = None  # a trial's own per-window BCE noise (None: no predictions)
    # The validation windows' lag, Bartlett ratio and long-run ratio as the pilot shows them
    # (None: no predictions; see `pilot_dependence`).
    dependence: tuple[int, float, float] | None = None


def pilot_spread(values_by_study: Sequence[Sequence[float]]) -> Pilot | None:
    """The pooled spread of trial values around their study's mean; None without a study of
    two completed trials."""
    total, df, studies = 0.0, 0, 0
    for values in values_by_study:
        finite = [v for v in values if math.isfinite(v)]
        if len(finite) < 2:
            continue
        mean = sum(finite) / len(finite)
        total += sum((v - mean) ** 2 for v in finite)
        df += len(finite) - 1
        studies += 1
    return Pilot(math.sqrt(total / df), df, studies) if df else None


def own_window_sd(losses_by_study: Sequence[np.ndarray]) -> float | None:
    """A trial's own per-window loss noise, pooled: each study's trials' per-window losses
    (trials, windows) less the study's mean on each window (what all its trials share) and less
    each trial's mean (its luck); with k trials a residual has (1 − 1/k) of the own variance.
    None without a study of two trials."""
    total, count = 0.0, 0.0
    for losses in losses_by_study:
        k, n = losses.shape
        if k < 2 or n < 2:
            continue
        residual = losses - losses.mean(axis=0, keepdims=True)
        residual -= residual.mean(axis=1, keepdims=True)
        total += float((residual**2).sum())
        count += (k - 1) * (n - 1)
    return math.sqrt(total / count) if count else None


def pilot_dependence(
    losses_by_study: Sequence[np.ndarray], *, horizon: int
) -> tuple[int, float, float] | None:
    """The validation windows' dependence as the report would see it in this pilot: its lag
    from the per-window difference of the largest and the smallest budget's best trials (the
    report's block), and at that lag the Bartlett and the implied long-run ratios of each
    trial's own noise (`own_window_sd`'s residuals), the medians over trials.

    Args:
        losses_by_study: per budget, smallest first, (trials, windows) losses, best first.
        horizon: the label horizon.
    """
    from finscale.report.hac import implied_long_run_ratio, long_run_ratio, segment_ids
    from finscale.report.stats import paired_difference

    usable = [loss for loss in losses_by_study if len(loss) >= 2]
    if len(losses_by_study) < 2 or not usable:
        return None
    lag = paired_difference(losses_by_study[-1][0], losses_by_study[0][0], min_lag=horizon).lag
    ratios, long_runs = [], []
    for losses in usable:
        residual = losses - losses.mean(axis=0, keepdims=True)
        residual -= residual.mean(axis=1, keepdims=True)
        seg = segment_ids(residual.shape[1], None)
        for row in residual:
            ratio = long_run_ratio(row, lag, seg)
            ratios.append(ratio)
            long_runs.append(max(implied_long_run_ratio(row, seg, horizon), ratio))
    return lag, float(np.median(ratios)), float(np.median(long_runs))


def read_pilots(settings: Settings, studies: Sequence[StudySpec]) -> dict[int, Pilot]:
    """Per horizon, the spread of the completed trials the storage holds for these studies
    (by name) and their own window noise; empty without a storage or such trials. Reads,
    never writes.

    Raises:
        StorageUnavailableError: the storage did not answer.
    """
    from finscale.hpo import open_for_reading, read_studies
    from finscale.report.collect import study_result
    from finscale.report.scaling_points import stored_rows
    from finscale.report.stats import bce_per_window

    storage = open_for_reading(settings)
    if storage is None:
        return {}
    horizon_of = {s.name: s.horizon for s in studies}
    horizon_budget = {s.name: s.budget_params for s in studies}
    values: dict[int, list[list[float]]] = {}
    losses: dict[int, list[tuple[int, np.ndarray]]] = {}
    for stored in read_studies(storage, deadline_s=settings.storage_deadline_s):
        if stored.name not in horizon_of:
            continue
        result = study_result(stored)
        horizon = horizon_of[stored.name]
        values.setdefault(horizon, []).append(
            [float(t.value) for t in result.complete if t.value is not None]
        )
        rows, labels, _ = stored_rows(result)
        if labels is not None and rows:
            rows = sorted(rows, key=lambda row: row[2])  # best first (val BCE: lower)
            trials = np.stack([bce_per_window(row[3], labels) for row in rows])
            budget = horizon_budget[stored.name]
            losses.setdefault(horizon, []).append((budget, trials))
    out = {}
    for horizon, per_study in values.items():
        found = pilot_spread(per_study)
        if found is not None:
            by_size = [loss for _, loss in sorted(losses.get(horizon, []), key=lambda b: b[0])]
            out[horizon] = Pilot(
                found.sd,
                found.df,
                found.studies,
                window_sd=own_window_sd(by_size),
                dependence=pilot_dependence(by_size, horizon=horizon),
            )
    return out
