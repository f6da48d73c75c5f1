"""The scaling figures of a horizon, one per split (validation from the search, test from the
final models): each budget's model against the best reference with the paired test's interval,
and the points across budgets with the slope's interval, all on the paired scale (see
`views`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from finscale.report.final import FinalAnswer
from finscale.report.plots.layout import REFERENCE_STYLES, budget_ticks, legend_below
from finscale.report.plots.views import (
    BASE_RATE,
    PairedView,
    Reference,
    SlopeView,
    final_view,
    slope_view,
    validation_view,
)
from finscale.report.scaling import ScalingResult

PAIRED_LABEL = "{model} minus the zero line's predictor, the paired test's 95 % interval"
FAN_LABEL = "slope's 95 % interval, as a fan about the budgets' centre"
ZERO_LABEL = "zero: {name}, the best non-transformer ({split} BCE {loss:.4f})"


def _the(name: str) -> str:
    """The base rate takes an article; a baseline is named by its own name ("gbt")."""
    return f"the {name}" if name == BASE_RATE else name


def _references(ax: Axes, reference: Reference, others: tuple[Reference, ...], split: str) -> None:
    """The zero line (the reference) and every other reference at its paired distance; the
    base rate keeps its style whichever reference is best."""
    ax.axhline(
        0.0,
        color="black",
        linewidth=1.2,
        label=ZERO_LABEL.format(name=reference.name, split=split, loss=reference.loss),
        zorder=1,
    )
    styles = iter(REFERENCE_STYLES[1:])
    for other in others:
        color, style = REFERENCE_STYLES[0] if other.name == BASE_RATE else next(styles)
        ax.axhline(
            other.loss - reference.loss,
            color=color,
            linestyle=style,
            label=f"{other.name} ({split} BCE {other.loss:.4f})",
            zorder=1,
        )


def _paired_panel(ax: Axes, view: PairedView) -> None:
    """Each budget's model minus the reference, with the interval the paired tests use."""
    _references(ax, view.reference, view.others, view.split)
    if view.trials:
        sizes, values = zip(*view.trials, strict=True)
        ax.scatter(sizes, values, s=12, color="tab:gray", alpha=0.5, zorder=2,
                   label="every completed trial")  # fmt: skip
    xs = [p.params for p in view.points]
    ys = np.array([p.difference for p in view.points])
    below = ys - np.array([p.low for p in view.points])
    above = np.array([p.high for p in view.points]) - ys
    ax.errorbar(xs, ys, yerr=[below, above], fmt="o", color="tab:blue", capsize=4, zorder=3,
                label=PAIRED_LABEL.format(model=view.model))  # fmt: skip
    budget_ticks(ax, xs, [p.budget for p in view.points], extra=[s for s, _ in view.trials])
    ax.set_ylabel(f"BCE minus {_the(view.reference.name)}'s\n(same {view.split} windows)")
    ax.set_title(f"Each budget's {view.model} against {_the(view.reference.name)}", fontsize=10)


def _slope_panel(ax: Axes, view: SlopeView, others: tuple[Reference, ...], raw: str) -> None:
    """The points across budgets, the fitted slope and the fan of its 95 % interval."""
    grid = view.grid()
    if view.reference is not None:
        _references(ax, Reference(view.reference, view.offset), others, view.split)
    fan = view.fan(grid)
    s = view.slope
    unit = "BCE " if view.reference is not None else ""
    label = f"slope {s.per_decade:+.4f} {unit}per decade"
    if fan is not None:
        ax.fill_between(grid, *fan, color="tab:blue", alpha=0.15, linewidth=0, label=FAN_LABEL)
        label += f", 95 % [{s.low:+.4f}, {s.high:+.4f}]"
    ax.plot(grid, view.line(grid), color="tab:blue", label=label)
    if view.exponent is not None:
        e = view.exponent
        # A style no reference line has (`REFERENCE_STYLES`): the curve is not a reference.
        ax.plot(grid, e.predict(grid) - view.offset, color="tab:red",
                linestyle=(0, (8, 2, 2, 2)), label=f"E + A·N^−α, α = {e.alpha:.3f}")  # fmt: skip
    ax.plot(view.params, view.values, "s", color="navy", zorder=3,
            label=f"each budget's {view.points_are}")  # fmt: skip
    budget_ticks(ax, view.params, view.budgets)
    if view.reference is None:
        ax.set_ylabel(raw)
    ax.set_title(f"Across budgets: each budget's {view.points_are}", fontsize=10)


def _figure(paired: PairedView | None, slope: SlopeView | None, *, title: str, raw: str) -> Figure:
    panels = [p for p in (paired, slope) if p is not None]
    width = 5.6 * max(1, len(panels)) + 0.6
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(width, 4.8), sharey=True,
                             squeeze=False, layout="constrained")  # fmt: skip
    row = list(axes[0])
    if paired is not None:
        _paired_panel(row[0], paired)
    if slope is not None:
        others = paired.others if paired is not None else ()
        _slope_panel(row[-1], slope, others, raw)
    if not panels:
        row[0].text(0.5, 0.5, "no paired test and no fit to draw", ha="center",
                    transform=row[0].transAxes)  # fmt: skip
    fig.suptitle(title, fontsize=11)
    legend_below(fig, row, columns=len(row))
    return fig


def scaling_figure(answer: ScalingResult) -> Figure:
    """The search on the validation windows: each budget's best trial against the best
    reference, and the expected best-of-m points with the slope."""
    paired = validation_view(answer)
    slope = slope_view(answer.scaling, paired.reference if paired else None)
    scale = f", minus {_the(paired.reference.name)}'s loss" if paired else ""
    title = f"Horizon {answer.horizon}, validation windows (the search){scale}"
    return _figure(paired, slope, title=title, raw=answer.loss_name)


def final_figure(final: FinalAnswer) -> Figure:
    """The final models on the test windows: each against the best reference, and the slope."""
    paired = final_view(final)
    slope = slope_view(final.fit, paired.reference if paired else None)
    scale = f", minus {_the(paired.reference.name)}'s loss" if paired else ""
    title = f"Horizon {final.horizon}, test windows (the final models){scale}"
    return _figure(paired, slope, title=title, raw="test BCE")
