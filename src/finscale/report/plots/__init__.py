"""PNG figures: per horizon the scaling figure of the search (validation) and of the final
models (test), each on the paired scale the tests use; the width × depth heat maps; each study's
optimization history. Matplotlib's non-interactive backend: no display needed.

Each `*_figure` builds a Figure (a test reads its data); each `plot_*` saves one and closes it.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from finscale.report.collect import StudyResult
from finscale.report.final import FinalAnswer
from finscale.report.plots.history import history_figure, reference_values
from finscale.report.plots.layout import save
from finscale.report.plots.scaling import final_figure, scaling_figure
from finscale.report.plots.width_depth import width_depth_figure
from finscale.report.scaling import ScalingResult

__all__ = [
    "final_figure",
    "history_figure",
    "plot_final",
    "plot_history",
    "plot_scaling",
    "plot_width_depth",
    "scaling_figure",
    "width_depth_figure",
]


def plot_scaling(answer: ScalingResult, path: Path) -> Path:
    return save(scaling_figure(answer), path)


def plot_final(final: FinalAnswer, path: Path) -> Path:
    return save(final_figure(final), path)


def plot_width_depth(cells: pd.DataFrame, results: list[StudyResult], path: Path) -> Path:
    return save(width_depth_figure(cells, results), path)


def plot_history(result: StudyResult, answers: Sequence[ScalingResult], path: Path) -> Path:
    return save(history_figure(result, reference_values(result, answers)), path)
