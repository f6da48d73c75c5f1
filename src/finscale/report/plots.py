"""PNG figures: each study's optimization history, the scaling curve of each horizon, and the
width × depth heat map of each study. Matplotlib's non-interactive backend: no display needed."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.figure import Figure
from optuna.trial import TrialState

from finscale.records import TRIAL_FORCED
from finscale.report.collect import StudyResult
from finscale.report.scaling import ScalingResult

_DPI = 110


def plot_history(result: StudyResult, path: Path) -> Path:
    """Each completed trial's value by trial number, the best so far, and where trials were
    pruned or failed."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    done = sorted(
        (t for t in result.trials if t.state == TrialState.COMPLETE and t.value is not None),
        key=lambda t: t.number,
    )
    if done:
        numbers = [t.number for t in done]
        values = [float(t.value) for t in done]  # type: ignore[arg-type]
        forced = [bool(t.user_attrs.get(TRIAL_FORCED)) for t in done]
        for is_forced, marker, color, label in (
            (False, "o", "tab:blue", "sampled"),
            (True, "D", "tab:orange", "forced extreme"),
        ):
            picked = [
                (n, v) for n, v, f in zip(numbers, values, forced, strict=True) if f == is_forced
            ]
            if picked:
                xs, ys = zip(*picked, strict=True)
                ax.scatter(xs, ys, s=20, marker=marker, color=color, label=label)
        best = np.minimum.accumulate if result.direction == "minimize" else np.maximum.accumulate
        ax.step(numbers, best(np.asarray(values)), where="post", color="black", label="best")
    for state, marker, color in (
        (TrialState.PRUNED, "|", "tab:gray"),
        (TrialState.FAIL, "x", "tab:red"),
    ):
        numbers = [t.number for t in result.trials if t.state == state]
        if numbers:
            ax.plot(
                numbers,
                [0.02] * len(numbers),
                marker,
                color=color,
                transform=ax.get_xaxis_transform(),
                linestyle="none",
                label=state.name.lower(),
            )
    ax.set_xlabel("trial")
    ax.set_ylabel(result.metric)
    ax.set_title(f"{result.name}: {result.progress} trials" + ("" if result.done else " (partial)"))
    if done or any(t.state in (TrialState.PRUNED, TrialState.FAIL) for t in result.trials):
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no completed trial yet", ha="center", transform=ax.transAxes)
    return _save(fig, path)


def plot_scaling(answer: ScalingResult, path: Path) -> Path:
    """Each budget's point (expected best of m trials) with its joint-bootstrap interval against
    parameter count (log x), every completed trial behind it, the slope per decade with its band,
    the reducible-loss curve, and the base rate."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for p in answer.points:
        ax.scatter(p.top_params, p.top_losses, s=10, color="tab:gray", alpha=0.5)
    xs = np.array([p.point_params for p in answer.points])
    ys = np.array([p.loss for p in answer.points])
    low = np.array([p.loss_low for p in answer.points])
    high = np.array([p.loss_high for p in answer.points])
    known = np.isfinite(low) & np.isfinite(high)
    yerr = np.where(known, [ys - low, high - ys], 0.0)
    fit = answer.scaling
    m = f"best of {fit.m}" if fit else "best"
    ax.errorbar(xs, ys, yerr=np.maximum(yerr, 0.0), fmt="o", color="tab:blue", capsize=3,
                label=f"{m} per budget")  # fmt: skip
    for p in answer.points:
        ax.annotate(p.budget, (p.point_params, p.loss), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)  # fmt: skip
    if fit is not None:
        grid = (
            np.asarray(fit.band_params)
            if fit.band_params
            else np.geomspace(xs.min() / 1.5, xs.max() * 1.5, 40)
        )
        s = fit.slope
        label = f"slope {s.per_decade:+.4f} per decade"
        if fit.band_params:
            label += f" [{s.low:+.4f}, {s.high:+.4f}]"
            ax.fill_between(grid, fit.band_low, fit.band_high, color="tab:blue", alpha=0.15,
                            label="95% joint block bootstrap")  # fmt: skip
        ax.plot(grid, s.predict(grid), color="tab:blue", label=label)
        if fit.exponent is not None:
            e = fit.exponent
            ax.plot(grid, e.predict(grid), color="tab:green", linestyle=":",
                    label=f"E + A·N^−α, α = {e.alpha:.3f}")  # fmt: skip
    bases = [p.base_rate_loss for p in answer.points if not math.isnan(p.base_rate_loss)]
    if bases:
        # The same validation windows for every budget of a horizon: one constant guess.
        ax.axhline(bases[0], color="tab:gray", linestyle="--", label="base rate (constant)")
    styles = iter([":", "-."])
    for name, loss in answer.baselines.items():
        if name != "base_rate":
            ax.axhline(loss, color="tab:green", linestyle=next(styles, ":"), label=name)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(answer.loss_name)
    ax.set_title(f"Scaling at horizon {answer.horizon}")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_width_depth(cells: pd.DataFrame, results: list[StudyResult], path: Path) -> Path:
    """One heat map per study: the best value of each (d_model, n_layers) tried."""
    shown = [r for r in results if (cells["study"] == r.name).any()]
    columns = min(3, max(1, len(shown)))
    rows = max(1, math.ceil(len(shown) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no completed trial yet", ha="center")
    for ax, result in zip(axes.flat, shown, strict=False):
        table = cells[cells["study"] == result.name].pivot(
            index="n_layers", columns="d_model", values="best"
        )
        cmap = "viridis_r" if result.direction == "minimize" else "viridis"
        image = ax.imshow(table.to_numpy(dtype=float), cmap=cmap, aspect="auto", origin="lower")
        ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns])
        ax.set_yticks(range(len(table.index)), [str(i) for i in table.index])
        for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
            if not math.isnan(v):
                ax.text(
                    j, i, f"{v:.3f}", ha="center", va="center", fontsize=7, color="white",
                    path_effects=[patheffects.withStroke(linewidth=1.5, foreground="black")],
                )  # fmt: skip
        ax.set_xlabel("d_model")
        ax.set_ylabel("n_layers")
        ax.set_title(result.name, fontsize=9)
        fig.colorbar(image, ax=ax, label=f"best {result.metric}")
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path
