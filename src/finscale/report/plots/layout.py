"""What every figure shares: budget-named ticks at real parameter counts, a legend outside the
axes (it covers no data), tick labels that do not overlap, and saving."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, NullLocator
from matplotlib.transforms import Bbox

from finscale.param_budget import short_count

DPI = 110
# Reference lines, in the order the references come (the base rate first).
REFERENCE_STYLES = (
    ("tab:gray", "--"),
    ("tab:green", ":"),
    ("tab:purple", "-."),
    ("tab:brown", (0, (5, 2))),
    ("tab:olive", (0, (1, 2))),
)


def budget_label(budget: str, params: float) -> str:
    """A point's tick: the budget it was searched under and its own size, which the budget
    only caps."""
    return f"{budget} budget\n{short_count(params)} params"


def budget_ticks(
    ax: Axes, params: Sequence[float], budgets: Sequence[str], *, extra: Sequence[float] = ()
) -> None:
    """Log x with one tick per point, at its real parameter count, naming its budget; the
    limits also hold the `extra` sizes drawn."""
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(list(params), [budget_label(b, p) for b, p in zip(budgets, params, strict=True)])
    ax.tick_params(axis="x", labelsize=8)
    low, high = min([*params, *extra]), max([*params, *extra])
    ax.set_xlim(low / 2.0, high * 2.0)
    ax.set_xlabel("parameters of the plotted model (log scale)", fontsize=9)


def legend_below(fig: Figure, axes: Sequence[Axes], *, columns: int = 3) -> None:
    """One legend for the figure, under its axes (constrained layout makes room): it covers
    nothing. Labels repeated across panels are listed once."""
    seen: dict[str, Artist] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                seen.setdefault(label, handle)
    if seen:
        fig.legend(
            list(seen.values()),
            list(seen),
            loc="outside lower center",
            ncols=min(columns, len(seen)),
            fontsize=8,
            frameon=False,
        )


def _collide(boxes: list[Bbox], step: int) -> bool:
    """Whether any label overlaps the one `step` places to its right."""
    return any(a.x1 > b.x0 for a, b in zip(boxes, boxes[step:], strict=False))


def untangle_ticks(fig: Figure) -> None:
    """Where an axis's neighbouring x tick labels would overlap (many budgets, close sizes),
    put every other label one row lower; where even that is too tight, tilt them all."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    changed = False
    for ax in fig.axes:
        ticks = [t for t in ax.xaxis.get_major_ticks() if t.label1.get_text().strip()]
        boxes = sorted((t.label1.get_window_extent(renderer) for t in ticks), key=lambda b: b.x0)
        if not _collide(boxes, 1):
            continue
        changed = True
        if _collide(boxes, 2):
            for t in ticks:
                t.label1.set_rotation(30)
                t.label1.set_horizontalalignment("right")
            continue
        height_pt = max(b.height for b in boxes) * 72.0 / fig.dpi
        ordered = sorted(ticks, key=lambda t: t.get_loc())
        for t in ordered[1::2]:
            t.set_pad(float(plt.rcParams["xtick.major.pad"]) + height_pt + 2.0)
    if changed:
        fig.canvas.draw()  # the layout makes room for the moved labels


def save(fig: Figure, path: Path) -> Path:
    untangle_ticks(fig)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
