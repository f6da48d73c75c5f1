"""A pilot run's trials, read back from the storage: how much a budget's trials spread."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from finscale.settings import Settings
from finscale.spec import StudySpec


@dataclass(frozen=True)
class Pilot:
    """A pilot run's trials of one horizon: their values' pooled spread within budgets."""

    sd: float  # √(Σ (value − budget mean)² / df)
    df: int
    studies: int


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


def read_pilots(settings: Settings, studies: Sequence[StudySpec]) -> dict[int, Pilot]:
    """Per horizon, the spread of the completed trials the storage holds for these studies
    (by name); empty without a storage or such trials. Reads, never writes.

    Raises:
        StorageUnavailableError: the storage did not answer.
    """
    from finscale.hpo import open_for_reading, read_studies
    from finscale.report.collect import study_result

    storage = open_for_reading(settings)
    if storage is None:
        return {}
    horizon_of = {s.name: s.horizon for s in studies}
    values: dict[int, list[list[float]]] = {}
    for stored in read_studies(storage, deadline_s=settings.storage_deadline_s):
        if stored.name not in horizon_of:
            continue
        result = study_result(stored)
        done = [float(t.value) for t in result.complete if t.value is not None]
        values.setdefault(horizon_of[stored.name], []).append(done)
    found = {h: pilot_spread(per_study) for h, per_study in values.items()}
    return {h: pilot for h, pilot in found.items() if pilot is not None}
