"""The Markdown summary: the answer in one paragraph, then the tables and figures behind it."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
from optuna.trial import TrialState

from finscale.budgets import parse_budget
from finscale.report.architecture import Importances
from finscale.report.collect import StudyResult
from finscale.report.scaling import MODERATE_ALPHA, STRONG_ALPHA, ScalingResult


def _num(value: object, digits: int = 4) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "—"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _describe(answer: ScalingResult) -> str:
    error = answer.metric if answer.direction == "minimize" else f"1 − {answer.metric}"
    budgets = ", ".join(p.budget for p in answer.points) or "none"
    skill = _skill(answer)
    if answer.fit is None:
        why = f"{answer.note}; budgets: {budgets}"
        return f"At horizon {answer.horizon} there is no fit ({why})." + skill
    fit, u = answer.fit, answer.uncertainty
    trend = "falls" if fit.alpha > 0 else "rises"
    text = (
        f"At horizon {answer.horizon}, {error} {trend} with parameter count over budgets "
        f"{budgets}: α = {fit.alpha:.3f}"
    )
    if u is not None:
        text += f" (95% bootstrap interval {u.low:.3f} to {u.high:.3f})"
    text += f", R² = {fit.r2:.2f}, a **{answer.strength}** law by the research system's labels"
    if u is not None:
        verdict = (
            "the interval excludes zero"
            if u.low > 0 or u.high < 0
            else "the interval includes zero, so the data cannot tell this from no scaling"
        )
        shares = u.share_by_strength
        text += (
            f"; α > 0 in {u.share_positive:.0%} of resamples, and they label it strong / "
            f"moderate / weak {shares['strong']:.0%} / {shares['moderate']:.0%} / "
            f"{shares['weak']:.0%}: {verdict}"
        )
    return text + "." + skill


def _skill(answer: ScalingResult) -> str:
    """Whether the best trials beat a constant guess of the base rate: a law fitted to models
    that do not is a law of noise."""
    known = [p for p in answer.points if not math.isnan(p.baseline_z)]
    if not known:
        return ""
    beat = [p for p in known if p.baseline_z > 2]
    text = (
        f" {len(beat)} of {len(known)} budgets' best trials beat a constant prediction of the "
        "validation base rate by more than two standard errors"
    )
    if not beat:
        text += ", so this horizon's errors measure noise around the base rate, not skill"
    return text + "."


def _by_size(item: tuple[str, str]) -> int:
    return parse_budget(item[0])


def _styles_by_horizon(styles: pd.DataFrame, results: list[StudyResult]) -> str:
    """Whether the winning style (L/d) of each budget differs between horizons."""
    by_study = {r.name: r for r in results}
    winners: dict[int, dict[str, str]] = {}
    for study, group in styles.groupby("study"):
        r = by_study[str(study)]
        if r.horizon is None or r.budget is None:
            continue
        best = group.sort_values("best", ascending=r.direction == "minimize").iloc[0]
        winners.setdefault(r.horizon, {})[r.budget] = f"{best['style']} ({best['best_arch']})"
    if not winners:
        return ""
    parts = [
        f"h{h}: " + ", ".join(f"{b} {w}" for b, w in sorted(w_.items(), key=_by_size))
        for h, w_ in sorted(winners.items())
    ]
    kinds = {w.split(" ")[0] for w_ in winners.values() for w in w_.values()}
    if sum(len(w_) for w_ in winners.values()) == 1:
        return f"Best architecture — {parts[0]}."
    same = "the same style wins everywhere" if len(kinds) == 1 else "the winning style varies"
    return f"Best architecture per budget — {'; '.join(parts)}: {same}."


def markdown(
    *,
    storage: str,
    generated: str,
    results: list[StudyResult],
    answers: list[ScalingResult],
    styles: pd.DataFrame,
    heads: pd.DataFrame,
    importances: list[Importances],
    figures: dict[str, str],
    files: list[str],
    missing: list[str] | None = None,
) -> str:
    """The whole summary; `figures` maps a figure's key to its file name beside the summary."""
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
                f"{len(partial)} of {total} have not spent their budget ({', '.join(partial)})"
            )
        if missing:
            parts.append(f"{len(missing)} of {total} have not started ({', '.join(missing)})")
        lines += [
            f"> **Partial experiment:** {'; '.join(parts)}. Figures below may change as they "
            "finish.",
            "",
        ]
    lines += ["## The answer", ""]
    paragraph = [_describe(a) for a in answers]
    if not answers:
        paragraph.append(
            "No scaling answer: no study of the storage was set up by finscale with a budget and "
            "a horizon, or none has a completed trial."
        )
    paragraph.append(_styles_by_horizon(styles, results))
    paragraph.append(
        f"Labels follow the research system: strong when α > {STRONG_ALPHA}, moderate when "
        f"α > {MODERATE_ALPHA}, weak otherwise. All values are validation metrics; the test "
        "split was not used."
    )
    lines += [" ".join(p for p in paragraph if p), ""]

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
                f"{_num(best.value)} (#{best.number})" if best and best.value is not None else "—",
                str(best.params.get("arch", "—")) if best else "—",
                "done" if r.done else "**partial**",
            ]
        )
    lines += _table(
        ["study", "budget", "h", "finished", "complete", "pruned", "failed", "open", "best",
         "best arch", "status"],
        rows,
    )  # fmt: skip
    lines.append("")

    lines += ["## Scaling", ""]
    for a in answers:
        lines += [f"### Horizon {a.horizon}", ""]
        lines += _table(
            ["budget", "study", "best trial", "arch", "parameters", a.metric, "± se",
             f"top-{a.top_k} range", "base rate", "z vs base rate"],
            (
                [
                    p.budget, p.study, str(p.trial), p.arch, f"{p.param_count:,}", _num(p.value),
                    _num(p.error_se), f"{_num(min(p.top_errors))}–{_num(max(p.top_errors))}",
                    _num(p.baseline_error), _num(p.baseline_z, 2),
                ]
                for p in a.points
            ),
        )  # fmt: skip
        if a.fit:
            u = a.uncertainty
            ci = f", 95% interval [{u.low:.3f}, {u.high:.3f}], std {u.std:.3f}" if u else ""
            lines += [
                "",
                f"Fit: {a.metric if a.direction == 'minimize' else '1 − ' + a.metric} = "
                f"{a.fit.coefficient:.4g} · N^(−α), α = {a.fit.alpha:.4f}; R² = {a.fit.r2:.3f}{ci}"
                + (f" ({u.n_resamples} resamples)." if u else "."),
            ]
        if a.note:
            lines += ["", f"Note: {a.note}."]
        if f"scaling-h{a.horizon}" in figures:
            lines += ["", f"![scaling at horizon {a.horizon}]({figures[f'scaling-h{a.horizon}']})"]
        lines.append("")

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
                _num(s.best),
                _num(s.mean),
                str(s.best_arch),
            ]
            for s in styles.itertuples()
        ),
    )
    lines += ["", "Head count versus value (Spearman's r; n_heads leaves the parameter count "
              "unchanged):", ""]  # fmt: skip
    lines += _table(
        ["study", "r", "trials"],
        ([str(h.study), _num(h.spearman_r, 3), str(h.trials)] for h in heads.itertuples()),
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

    lines += ["## Optimization history", ""]
    for r in results:
        key = f"history-{r.name}"
        if key in figures:
            lines += [f"![{r.name}]({figures[key]})", ""]

    lines += [
        "## Method",
        "",
        "The base rate's error is that of predicting the validation positive rate for every "
        "window (its binary entropy for BCE; 0.5 for AUC); z is how many standard errors the best "
        "trial beats it by.",
        "",
        "Each budget's point is its best completed trial, at the parameter count of that "
        "trial's architecture. The fit is least squares on log error against log parameters. "
        "The bootstrap redraws each budget's top trials with replacement, moves each by a "
        "normal draw of its validation standard error (treating windows as independent, so "
        "overlapping windows make it a lower bound), keeps the best and refits; the interval "
        "is its 2.5th–97.5th percentiles. It measures search luck and validation noise, not "
        "the choice of validation period.",
        "",
        "Files: " + ", ".join(f"`{f}`" for f in files) + ".",
        "",
    ]
    return "\n".join(lines)
