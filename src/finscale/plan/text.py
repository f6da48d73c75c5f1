"""The plan as a person reads it (80 columns) and as JSON."""

from __future__ import annotations

import math
import textwrap
from typing import Any

from finscale.plan.design import (
    PILOT_SOURCE,
    REFERENCE_NAME,
    HorizonPlan,
    Plan,
    SplitPlan,
    reference_slope,
)
from finscale.plan.power import PLAN_RESAMPLES

WIDTH = 80
_NAME = 24  # the study column; longer names are cut with "…"


def _g(x: float) -> str:
    """Three significant figures, without an exponent below a million."""
    if not math.isfinite(x):
        return "-"
    if abs(x) >= 1e6:
        return f"{x:.2e}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _count(x: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.0f}"


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + "  ")


def _autocorrelated(first: HorizonPlan | None) -> str:
    validation = first.validation if first is not None else None
    if validation is not None and validation.window.source == PILOT_SOURCE:
        return "as the pilot's trials' own noise (on validation, taken for test too)"
    return "as the split's labels"


def _split_row(p: SplitPlan) -> str:
    w = p.window
    kind = "trials" if p.split == "validation" else "seeds"
    runs = str(p.runs[0]) if len(set(p.runs)) == 1 else "/".join(str(k) for k in p.runs)
    return (
        f"  {p.split:<11}{w.n:>7}{w.lag:>5}{w.effective_n:>8.0f}  {runs + ' ' + kind:<14}"
        f"{p.m:>3}{p.luck:>8.4f}{p.detectable:>11.4f}{p.report_detectable:>9.4f}"
    )


def plan_lines(plan: Plan, *, width: int = WIDTH) -> list[str]:
    """The plan: a table of the studies' compute, per horizon what its fit could detect with
    the verdict sentence, then every assumption. No line is wider than `width` (≥ 80)."""
    o = plan.options
    gpu = f"{plan.gpu}-h"
    lines = [
        f"{'study':<{_NAME}} {'params':>7} {'archs':>5} {'trials':>6} {'epochs':>6} "
        f"{'PFLOP':>8} {gpu:>8} {'CPU-h':>9}"
    ]
    for s in plan.studies:
        name = s.name if len(s.name) <= _NAME else s.name[: _NAME - 1] + "…"
        lines.append(
            f"{name:<{_NAME}} {_count(s.params):>7} {s.n_archs:>5} {s.cost.n_trials:>6} "
            f"{_g(s.cost.epochs):>6} {_g(s.cost.total / 1e15):>8} {_g(s.gpu_hours):>8} "
            f"{_g(s.cpu_hours):>9}"
        )
    total = sum(s.cost.total for s in plan.studies)
    lines.append(
        f"{'total':<{_NAME}} {'':>7} {'':>5} {sum(s.cost.n_trials for s in plan.studies):>6} "
        f"{'':>6} {_g(total / 1e15):>8} {_g(plan.gpu_hours):>8} {_g(plan.cpu_hours):>9}"
    )
    for h in plan.horizons:
        lines.append("")
        if h.validation is not None:
            lines.append(f"horizon {h.horizon}: {len(h.studies)} budgets over "
                         f"{h.decades:.2f} decades of parameters")  # fmt: skip
            lines.append(
                f"  {'split':<11}{'windows':>7}{'lag':>5}{'eff. n':>8}  {'runs/budget':<14}"
                f"{'m':>3}{'luck':>8}{'detectable':>11}{'report':>9}"
            )
            lines += [_split_row(p) for p in (h.validation, h.test) if p is not None]
        lines += _wrap(h.sentence + ".", width)
    slope = reference_slope()
    lines += [
        "",
        *_wrap(
            "detectable: the smallest slope per decade of parameters (BCE per 10×, either "
            "sign) whose 95 % interval the report would clear of 0 in 80 % of such "
            "experiments: the far half of the report's interval, from "
            f"{PLAN_RESAMPLES:,} resamples of its statistic under this noise model, plus the "
            "distance to the 80th percentile of the slope such experiments would measure. "
            "report: the effect the report's own formula would state (it stretches that "
            "second part too). Treated as independent: windows more than a lag apart (the "
            "report's block), the trials of a budget, the seeds of a final model (which share "
            "their model's window noise); budgets share each window's common noise, which "
            "cancels in the slope. eff. n: the independent windows the overlapping ones are "
            "worth. m: a budget's validation point is the expected best of m trials; a test "
            "point is the mean of its final model's seeds.",
            width,
        ),
    ]
    first = plan.horizons[0] if plan.horizons else None
    luck_from = first.validation.luck_from if first is not None and first.validation else "default"
    lines += _wrap(
        (
            f"Noise: a run's own per-window BCE noise SD {first.window_sd:.4f} "
            f"({first.window_sd_from})"
            if first is not None
            else "Noise: none"
        )
        + f", autocorrelated {_autocorrelated(first)}; trial luck: {luck_from}; seed luck "
        f"{o.seed_luck}. Windows: " + (first.windows_from if first is not None else "none") + ".",
        width,
    )
    lines += _wrap(
        f"Compute: 3 × forward FLOPs per training window, forward = 2·P·(S·C·D + "
        f"layers·(4D² + 2D·F)) + 2·P·D + 4·layers·P²·D, the mean over each budget's grid; "
        f"epochs × (training windows + a validation pass) per trial; the final evaluation "
        f"retrains top-k {o.top_k} × {o.seeds} seeds per study; early stopping and pruning "
        f"only shorten this (an upper bound). Devices: {plan.gpu} at {_g(plan.gpu_tflops)} "
        f"TFLOPS (dense bf16 peak) × MFU {o.mfu}; CPU at {_g(o.cpu_gflops)} GFLOPS ("
        + ("measured here by a float32 matmul" if o.cpu_measured else "given")
        + f") × MFU {o.mfu}.",
        width,
    )
    lines += _wrap(f"Reference: {REFERENCE_NAME}, measured {slope:+.4f} per decade.", width)
    return lines


def _split_json(p: SplitPlan | None) -> dict[str, Any] | None:
    if p is None:
        return None
    w = p.window
    return {
        "windows": w.n,
        "lag": w.lag,
        "bartlett_ratio": w.ratio,
        "long_run_ratio": w.long_run,
        "effective_n": w.effective_n,
        "window_sd": w.sd,
        "stretch": w.stretch,
        "report_detectable_per_decade": p.report_detectable,
        "runs": list(p.runs),
        "m": p.m,
        "luck": p.luck,
        "luck_from": p.luck_from,
        "slope_sd": p.slope_sd,
        "detectable_per_decade": p.detectable,
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data (`finscale plan --json`)."""
    o = plan.options
    return {
        "spec": plan.spec,
        "power": 0.8,
        "level": "two-sided 5 %",
        "reference": {"slope_per_decade": reference_slope(), "from": REFERENCE_NAME},
        "devices": {
            "gpu": plan.gpu,
            "gpu_peak_tflops": plan.gpu_tflops,
            "mfu": o.mfu,
            "cpu_gflops": o.cpu_gflops,
            "cpu_measured": o.cpu_measured,
        },
        "evaluation": {"top_k": o.top_k, "seeds": o.seeds},
        "studies": [
            {
                "name": s.name,
                "budget": s.budget,
                "horizon": s.horizon,
                "params": s.params,
                "archs": s.n_archs,
                "n_trials": s.cost.n_trials,
                "epochs": s.cost.epochs,
                "batch_size": s.cost.batch_size,
                "steps_per_epoch": s.cost.steps_per_epoch,
                "tokens_per_step": s.cost.tokens_per_step,
                "windows": {
                    "train": s.cost.train_windows,
                    "val": s.cost.val_windows,
                    "test": s.cost.test_windows,
                },
                "forward_flops_per_window": s.cost.forward_per_window,
                "flops": {
                    "search": s.cost.search,
                    "evaluation": s.cost.evaluation,
                    "total": s.cost.total,
                },
                "gpu_hours": s.gpu_hours,
                "cpu_hours": s.cpu_hours,
            }
            for s in plan.studies
        ],
        "horizons": [
            {
                "horizon": h.horizon,
                "studies": list(h.studies),
                "decades": h.decades,
                "validation": _split_json(h.validation),
                "test": _split_json(h.test),
                "windows_from": h.windows_from,
                "window_sd": h.window_sd,
                "window_sd_from": h.window_sd_from,
                "sentence": h.sentence,
            }
            for h in plan.horizons
        ],
        "gpu_hours": plan.gpu_hours,
        "cpu_hours": plan.cpu_hours,
    }
