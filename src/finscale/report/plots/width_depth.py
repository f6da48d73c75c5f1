"""The width × depth heat maps: per study, the best value of each (d_model, n_layers) tried. The
studies of a horizon share one colour scale (one `Normalize`), so a colour means the same value
in every panel of that row."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from finscale.report.collect import StudyResult

MAX_COLUMNS = 4
_OUTLINE = patheffects.withStroke(linewidth=1.8, foreground="black")  # white text on any colour


def _layout(shown: list[StudyResult]) -> tuple[int, list[list[StudyResult]]]:
    """Columns, and the studies of each row: every horizon starts a row of its own."""
    by_horizon: dict[int | None, list[StudyResult]] = {}
    for r in shown:
        by_horizon.setdefault(r.horizon, []).append(r)
    columns = min(MAX_COLUMNS, max((len(g) for g in by_horizon.values()), default=1))
    rows = [g[i : i + columns] for g in by_horizon.values() for i in range(0, len(g), columns)]
    return columns, rows


def _panel(ax: Axes, table: pd.DataFrame, norm: Normalize, cmap: str, title: str) -> None:
    values = table.to_numpy(dtype=float)
    ax.imshow(values, cmap=cmap, norm=norm, aspect="auto", origin="lower")
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns])
    ax.set_yticks(range(len(table.index)), [str(i) for i in table.index])
    for (i, j), v in np.ndenumerate(values):
        if not math.isnan(v):
            ax.text(j, i, f"{v:.4f}", ha="center", va="center", fontsize=8, color="white",
                    path_effects=[_OUTLINE])  # fmt: skip
    ax.set_xlabel("d_model")
    ax.set_ylabel("n_layers")
    ax.set_title(title, fontsize=9)


def width_depth_figure(cells: pd.DataFrame, results: list[StudyResult]) -> Figure:
    """One heat map per study with completed trials, one colour bar per horizon."""
    shown = [r for r in results if (cells["study"] == r.name).any()]
    columns, rows = _layout(shown)
    fig, axes = plt.subplots(max(1, len(rows)), columns, squeeze=False, layout="constrained",
                             figsize=(3.6 * columns + 1.2, 3.2 * max(1, len(rows))))  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no completed trial yet", ha="center")
    horizon_axes: dict[int | None, list[Axes]] = {}
    for row, studies in zip(axes, rows, strict=False):
        for ax, r in zip(row, studies, strict=False):
            ax.axis("on")
            horizon_axes.setdefault(r.horizon, []).append(ax)
    for horizon, group in horizon_axes.items():
        studies = [r for r in shown if r.horizon == horizon]
        mine = cells[cells["study"].isin([r.name for r in studies])]
        norm = Normalize(vmin=float(mine["best"].min()), vmax=float(mine["best"].max()))
        cmap = "viridis_r" if studies[0].direction == "minimize" else "viridis"
        for ax, r in zip(group, studies, strict=True):
            table = cells[cells["study"] == r.name].pivot(
                index="n_layers", columns="d_model", values="best"
            )
            title = f"{r.budget} budget, horizon {r.horizon}" if r.budget else r.name
            _panel(ax, table, norm, cmap, title)
        where = f"horizon {horizon}: " if len(horizon_axes) > 1 else ""
        fig.colorbar(
            plt.cm.ScalarMappable(norm=norm, cmap=cmap),
            ax=group,
            label=f"{where}best {studies[0].metric} (brighter is better)",
        )
    return fig
