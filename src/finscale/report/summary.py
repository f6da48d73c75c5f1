"""The Markdown summary: the answer (`report.answer`), then the tables and figures behind it.

`alpha_interval` is named here for the console lines (`report.lines`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd
from optuna.trial import TrialState

from finscale.plural import agreeing, counted
from finscale.report.answer import answer_section
from finscale.report.architecture import Importances
from finscale.report.checks import StudyFlags
from finscale.report.collect import StudyResult
from finscale.report.method import method_section
from finscale.report.reproducibility import reproducibility
from finscale.report.scaling import ScalingResult
from finscale.report.words import alpha_interval as alpha_interval
from finscale.report.words import num, shift_sentences, spread, stated

if TYPE_CHECKING:
    from finscale.report import FinalAnswer


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _header(
    *, storage: str, generated: str, results: list[StudyResult], missing: list[str] | None
) -> list[str]:
    """The title, what was read, and whether the experiment is partial."""
    complete = sum(len(r.complete) for r in results)
    partial = [r.name for r in results if not r.done]
    lines = [
        "# finscale report",
        "",
        f"Storage `{storage}`, generated {generated}. {len(results)} "
        f"{'study' if len(results) == 1 else 'studies'}, {complete} completed trials.",
        "",
    ]
    missing = missing or []
    if partial or missing:
        total = len(results) + len(missing)
        parts = []
        if partial:
            parts.append(
                f"{len(partial)} of {counted(total, 'study')} {agreeing(len(partial), 'has')} not "
                f"spent {agreeing(len(partial), 'its')} budget ({', '.join(partial)})"
            )
        if missing:
            parts.append(f"{len(missing)} of {total} have not started ({', '.join(missing)})")
        lines += [
            f"> **Partial experiment:** {'; '.join(parts)}. Figures below may change as they "
            "finish.",
            "",
        ]
    return lines


def _final_rows(fa: FinalAnswer, names: list[str]) -> list[list[str]]:
    """The final models, then the baselines, the reference and the floor on the same windows."""
    rows = []
    for m in fa.models:
        bce_spread, auc_spread = spread(m.test_bce_seeds), spread(m.test_auc_seeds, 3)
        rows.append(
            [
                m.budget, str(m.trial), m.arch, f"{m.param_count:,}",
                f"{m.seeds} (best of {m.candidates} trial{'s' if m.candidates != 1 else ''})",
                num(m.val_bce),
                num(m.test_bce) + (f" ({bce_spread})" if bce_spread else ""),
                stated(m.skill.auc, 3) + (f"; {auc_spread}" if auc_spread else ""),
                stated(m.skill.vs_base_rate), m.skill.claim,
                *(stated(m.skill.vs_baselines.get(n)) for n in names),
            ]
        )  # fmt: skip
    dash = ["—"] * 5
    for name, b in sorted(fa.baselines.items(), key=lambda item: item[1].loss):
        rows.append([f"{name} (baseline)", *dash, num(b.loss), stated(b.auc, 3),
                     stated(b.vs_base_rate), b.claim, *("—" for _ in names)])  # fmt: skip
    ref = fa.reference
    if ref is not None:
        r = ref.reference
        rows.append([f"reference: rate {r.rate:.3f} ({r.source})", *dash, num(r.bce), "0.500",
                     "—", "—", *("—" for _ in names)])  # fmt: skip
        rows.append([f"floor: the split's own rate {r.own_rate:.3f}", *dash, num(r.floor),
                     "0.500", "—", "—", *("—" for _ in names)])  # fmt: skip
    return rows


def _final_section(finals: list[FinalAnswer]) -> list[str]:
    """The final evaluation on test, when there is one."""
    lines: list[str] = []
    if finals:
        lines += ["## Final evaluation on test", ""]
        for fa in finals:
            names = sorted({n for m in fa.models for n in m.skill.vs_baselines})
            lines += [f"### Horizon {fa.horizon}", ""]
            lines += _table(
                ["predictor", "trial", "arch", "parameters", "seeds", "val BCE", "test BCE",
                 "test AUC vs 0.5", "vs reference", "verdict", *(f"vs {n}" for n in names)],
                _final_rows(fa, names),
            )  # fmt: skip
            lines += [
                "",
                "Test BCE: the mean over seeds (their range with fewer than 3 seeds, else ± their "
                "standard deviation). Test AUC: of the seed-averaged logits, the one tested "
                "against 0.5, with the seeds' own AUCs beside it. Differences: the per-window "
                "loss (averaged over seeds) minus the other predictor's on the same windows, ± "
                f"their standard error ({fa.models[0].skill.vs_base_rate.test}).",
            ]
            if fa.reference is not None:
                lines += ["", shift_sentences(fa.reference)[0]]
            if fa.fit is not None:
                lines += ["", f"Across budgets: {fa.fit.sentence}."]
            lines.append("")
    return lines


def _studies_section(results: list[StudyResult]) -> list[str]:
    """One row per study: its trials by state and its best."""
    lines: list[str] = []
    lines += ["## Studies", ""]
    rows = []
    for r in results:
        best = r.best
        rows.append(
            [
                r.name,
                r.budget or "—",
                str(r.horizon or "—"),
                r.progress,
                str(len(r.complete)),
                str(r.count(TrialState.PRUNED)),
                str(r.count(TrialState.FAIL)),
                str(r.count(TrialState.RUNNING) + r.count(TrialState.WAITING)),
                f"{num(best.value)} (#{best.number})" if best and best.value is not None else "—",
                str(best.params.get("arch", "—")) if best else "—",
                "done" if r.done else "**partial**",
            ]
        )
    lines += _table(
        ["study", "budget", "h", "finished", "complete", "pruned", "failed", "open", "best",
         "best arch", "status"],
        rows,
    )  # fmt: skip
    lines += ["", reproducibility(results), ""]
    return lines


def _scaling_rows(a: ScalingResult) -> list[list[str]]:
    """Each budget's point, then the baselines, the reference and the floor."""
    rows = []
    for p in a.points:
        k = p.skill
        rows.append(
            [
                p.budget, p.study, str(p.trial), p.arch, f"{p.param_count:,}", num(p.value),
                f"{p.completed} / {p.lost}",
                f"{num(p.loss)} [{num(p.loss_low)}, {num(p.loss_high)}]",
                num(k.loss) if k else "—", stated(k.auc, 3) if k else "—",
                stated(k.vs_base_rate) if k else "—", k.claim if k else "—",
                "; ".join(f"{n} {stated(v)}" for n, v in k.vs_baselines.items())
                if k and k.vs_baselines else "—",
            ]
        )  # fmt: skip
    dash = ["—"] * 7
    for name, b in sorted(a.baseline_skill.items(), key=lambda item: item[1].loss):
        rows.append([f"{name} (baseline)", *dash, num(b.loss), stated(b.auc, 3),
                     stated(b.vs_base_rate), b.claim, "—"])  # fmt: skip
    if a.reference is not None:
        r = a.reference.reference
        rows.append([f"reference: rate {r.rate:.3f} ({r.source})", *dash, num(r.bce), "0.500",
                     "—", "—", "—"])  # fmt: skip
        rows.append([f"floor: the split's own rate {r.own_rate:.3f}", *dash, num(r.floor),
                     "0.500", "—", "—", "—"])  # fmt: skip
    return rows


def _scaling_section(answers: list[ScalingResult], figures: dict[str, str]) -> list[str]:
    """Per horizon: the points, the slope, the exponent and the note."""
    lines: list[str] = []
    lines += ["## Scaling", ""]
    for a in answers:
        lines += [f"### Horizon {a.horizon}", ""]
        m = a.scaling.m if a.scaling else None
        lines += _table(
            ["predictor", "study", "best trial", "arch", "parameters", a.metric,
             "complete / lost", f"best of {m or '—'}: {a.loss_name} [95%]", "val BCE",
             "AUC vs 0.5", "vs reference", "verdict", "vs baselines"],
            _scaling_rows(a),
        )  # fmt: skip
        if a.reference is not None:
            lines += ["", shift_sentences(a.reference)[0]]
        f = a.scaling
        if f is not None:
            lines += ["", f"Slope: {f.sentence}."]
            if f.largest_vs_smallest is not None:
                t = f.largest_vs_smallest
                lines += [
                    "",
                    f"Largest minus smallest budget's best trial: {stated(t)}, "
                    f"{t.test}; effective sample {t.effective_n:.0f} of {t.n} windows.",
                ]
            if f.exponent is not None:
                e = f.exponent
                ci = (
                    f", 95% interval over {e.n_resamples} resamples {alpha_interval(e)}"
                    if e.n_resamples
                    else ""
                )
                lines += [
                    "",
                    f"Exponent: L = {e.floor:.4f} + {e.coefficient:.4g} · (N / "
                    f"{e.reference_params:.3g})^(−α), α = {e.alpha:.4f}; R² = {e.r2:.3f}{ci}.",
                ]
        if a.note:
            lines += ["", f"Note: {a.note}."]
        if f"scaling-h{a.horizon}" in figures:
            lines += ["", f"![scaling at horizon {a.horizon}]({figures[f'scaling-h{a.horizon}']})"]
        if (test := figures.get(f"scaling-h{a.horizon}-test")) is not None:
            lines += ["", f"![test split at horizon {a.horizon}]({test})"]
        lines.append("")
    return lines


def _architectures_section(
    styles: pd.DataFrame,
    heads: pd.DataFrame,
    importances: list[Importances],
    figures: dict[str, str],
) -> list[str]:
    """Depth versus width, head count, parameter importances."""
    lines: list[str] = []
    lines += ["## Architectures", ""]
    if "width-depth" in figures:
        lines += [f"![best value by width and depth]({figures['width-depth']})", ""]
    lines += [
        "Depth versus width by L/d (narrow-deep > 0.5, balanced 0.15–0.5, wide-shallow < 0.15):",
        "",
    ]
    lines += _table(
        ["study", "style", "trials", "best", "mean", "best arch"],
        (
            [
                str(s.study),
                str(s.style),
                str(s.trials),
                num(s.best),
                num(s.mean),
                str(s.best_arch),
            ]
            for s in styles.itertuples()
        ),
    )
    lines += ["", "Head count versus value (Spearman's r; n_heads leaves the parameter count "
              "unchanged):", ""]  # fmt: skip
    lines += _table(
        ["study", "r", "trials"],
        ([str(h.study), num(h.spearman_r, 3), str(h.trials)] for h in heads.itertuples()),
    )
    lines += [
        "",
        "Parameter importances (fANOVA over the architecture's dimensions and the sampled "
        "training parameters; with few trials they are indicative only):",
        "",
    ]
    for imp in importances:
        if imp.values:
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(imp.values.items())[:6])
            lines.append(f"- {imp.study} ({imp.trials} trials): {top}")
        else:
            lines.append(f"- {imp.study}: {imp.note}")
    lines.append("")
    return lines


def _history_section(results: list[StudyResult], figures: dict[str, str]) -> list[str]:
    """One optimization-history figure per study."""
    lines: list[str] = []
    lines += ["## Optimization history", ""]
    for r in results:
        key = f"history-{r.name}"
        if key in figures:
            lines += [f"![{r.name}]({figures[key]})", ""]
    return lines


def markdown(
    *,
    storage: str,
    generated: str,
    results: list[StudyResult],
    answers: list[ScalingResult],
    finals: list[FinalAnswer],
    flags: list[StudyFlags],
    styles: pd.DataFrame,
    heads: pd.DataFrame,
    importances: list[Importances],
    figures: dict[str, str],
    files: list[str],
    missing: list[str] | None = None,
) -> str:
    """The whole summary; `figures` maps a figure's key to its file name beside the summary."""
    return "\n".join(
        _header(storage=storage, generated=generated, results=results, missing=missing)
        + answer_section(answers, finals, flags, styles, results)
        + _final_section(finals)
        + _studies_section(results)
        + _scaling_section(answers, figures)
        + _architectures_section(styles, heads, importances, figures)
        + _history_section(results, figures)
        + method_section(files)
    )
