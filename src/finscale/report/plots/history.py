"""A study's optimization history: each completed trial's value by trial number, the best so
far, where trials were pruned or failed, and the references (the base rate, the baselines) on
the same validation windows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import TrialState

from finscale.records import TRIAL_FORCED
from finscale.report import stats
from finscale.report.collect import StudyResult
from finscale.report.plots.layout import REFERENCE_STYLES, legend_below
from finscale.report.plots.views import BASE_RATE
from finscale.report.scaling import ScalingResult


def reference_values(result: StudyResult, answers: Sequence[ScalingResult]) -> dict[str, float]:
    """The references' values in the study's metric on its validation windows: the numbers the
    scaling section's tests use when the study is there, else from its stored baselines."""
    if result.metric == "val_auc":
        return {BASE_RATE: 0.5}  # a constant ranks nothing
    for a in answers:
        for p in a.points:
            if p.study == result.name and not math.isnan(p.base_rate_loss):
                others = {k: v for k, v in a.baselines.items() if k != "base_rate"}
                return {BASE_RATE: p.base_rate_loss, **others}
    windows = result.val_windows
    if windows is None:
        return {}
    return {
        BASE_RATE if name == "base_rate" else name: float(
            stats.bce_per_window(b.val, windows.labels).mean()
        )
        for name, b in result.baselines.items()
        if len(b.val) == len(windows.labels)
    }


def _completed(ax: Axes, result: StudyResult) -> bool:
    """Completed trials (sampled or forced) and the best so far; False when there are none."""
    done = sorted(
        (t for t in result.trials if t.state == TrialState.COMPLETE and t.value is not None),
        key=lambda t: t.number,
    )
    if not done:
        return False
    numbers = [t.number for t in done]
    values = [float(t.value) for t in done]  # type: ignore[arg-type]
    forced = [bool(t.user_attrs.get(TRIAL_FORCED)) for t in done]
    for is_forced, marker, color, label in (
        (False, "o", "tab:blue", "sampled"),
        (True, "D", "tab:orange", "forced extreme"),
    ):
        picked = [(n, v) for n, v, f in zip(numbers, values, forced, strict=True) if f == is_forced]
        if picked:
            xs, ys = zip(*picked, strict=True)
            ax.scatter(xs, ys, s=22, marker=marker, color=color, label=label, zorder=3)
    best = np.minimum.accumulate if result.direction == "minimize" else np.maximum.accumulate
    ax.step(numbers, best(np.asarray(values)), where="post", color="black", label="best so far")
    return True


def history_figure(result: StudyResult, references: dict[str, float] | None = None) -> Figure:
    """The history of one study, with a horizontal line per reference value."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    shown = _completed(ax, result)
    for state, marker, color in ((TrialState.PRUNED, "|", "tab:gray"),
                                 (TrialState.FAIL, "x", "tab:red")):  # fmt: skip
        numbers = [t.number for t in result.trials if t.state == state]
        if numbers:
            ax.plot(numbers, [0.02] * len(numbers), marker, color=color, linestyle="none",
                    transform=ax.get_xaxis_transform(), label=state.name.lower())  # fmt: skip
            shown = True
    styles = iter(REFERENCE_STYLES[1:])
    for name, value in (references or {}).items():
        color, style = REFERENCE_STYLES[0] if name == BASE_RATE else next(styles)
        ax.axhline(value, color=color, linestyle=style, label=f"{name} ({value:.4f})", zorder=1)
    numbers = [t.number for t in result.trials]
    ax.set_xlim(-0.5, max(numbers, default=0) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(result.metric)
    ax.set_title(f"{result.name}: {result.progress} trials" + ("" if result.done else " (partial)"))
    if not shown:
        ax.text(0.5, 0.5, "no completed trial yet", ha="center", transform=ax.transAxes)
    legend_below(fig, [ax], columns=3)
    return fig
