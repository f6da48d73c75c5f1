"""The Markdown summary: the answer in one paragraph, then the tables and figures behind it."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
from optuna.trial import TrialState

from finscale.budgets import parse_budget
from finscale.report.architecture import Importances
from finscale.report.collect import StudyResult
from finscale.report.scaling import ScalingResult
from finscale.report.stats import AucTest, PairedTest


def _num(value: object, digits: int = 4) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "—"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _describe(answer: ScalingResult) -> str:
    budgets = ", ".join(p.budget for p in answer.points) or "none"
    skill = _skill(answer)
    fit = answer.scaling
    if fit is None:
        why = f"{answer.note}; budgets: {budgets}"
        return f"At horizon {answer.horizon} there is no fit ({why})." + skill
    text = f"At horizon {answer.horizon}, over budgets {budgets}: {fit.sentence}."
    e = fit.exponent
    if e is not None:
        text += f" The reducible loss, L = E + A·N^(−α), gives α = {e.alpha:.3f}"
        if e.n_resamples:
            text += (
                f" (95% interval {e.low:.3f} to {e.high:.3f}; α > 0 in "
                f"{e.share_positive:.0%} of resamples)"
            )
        text += f" above a floor E = {e.floor:.4f}."
    return text + skill


def _skill(answer: ScalingResult) -> str:
    """Whether the best trials beat the base rate on the same windows: a law fitted to models
    that do not is a law of noise."""
    known = [p for p in answer.points if p.skill is not None]
    if not known:
        return ""
    beat = [p for p in known if p.skill is not None and p.skill.beats_base_rate]
    test = known[0].skill.vs_base_rate.test if known[0].skill else ""
    text = (
        f" {len(beat)} of {len(known)} budgets' best trials beat the base rate on the same "
        f"windows ({test}, one-sided 2.5 %; each was chosen as the best of its study on these "
        "windows, so this is optimistic)"
    )
    if not beat:
        text += ", so this horizon's errors measure noise around the base rate, not skill"
    return text + "."


def _test(t: PairedTest | AucTest | None, digits: int = 4) -> str:
    if t is None:
        return "—"
    if isinstance(t, PairedTest):
        return f"{t.mean:+.{digits}f} ± {t.se:.{digits}f} (p {t.p_value:.2g})"
    return f"{t.estimate:.{digits}f} ± {t.se:.{digits}f} (p {t.p_value:.2g})"


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
        "The verdict is the slope per decade's interval; the exponent describes what scale buys "
        "above a floor and carries no strength label (see Method). All values are validation "
        "metrics; the test split was not used."
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
        m = a.scaling.m if a.scaling else None
        lines += _table(
            ["budget", "study", "best trial", "arch", "parameters", a.metric,
             "complete / lost", f"best of {m or '—'}: {a.loss_name} [95%]", "base rate",
             "vs base rate", "AUC vs 0.5", "vs baselines"],
            (
                [
                    p.budget, p.study, str(p.trial), p.arch, f"{p.param_count:,}", _num(p.value),
                    f"{p.completed} / {p.lost}",
                    f"{_num(p.loss)} [{_num(p.loss_low)}, {_num(p.loss_high)}]",
                    _num(p.base_rate_loss),
                    _test(p.skill.vs_base_rate) if p.skill else "—",
                    _test(p.skill.auc, 3) if p.skill else "—",
                    "; ".join(f"{k} {_test(v)}" for k, v in p.skill.vs_baselines.items())
                    if p.skill and p.skill.vs_baselines else "—",
                ]
                for p in a.points
            ),
        )  # fmt: skip
        f = a.scaling
        if f is not None:
            lines += ["", f"Slope: {f.sentence}."]
            if f.largest_vs_smallest is not None:
                t = f.largest_vs_smallest
                lines += [
                    "",
                    f"Largest minus smallest budget's best trial: {_test(t)}, "
                    f"{t.test}; effective sample {t.effective_n:.0f} of {t.n} windows.",
                ]
            if f.exponent is not None:
                e = f.exponent
                ci = (
                    f", 95% interval [{e.low:.3f}, {e.high:.3f}], α > 0 in "
                    f"{e.share_positive:.0%} of {e.n_resamples} resamples"
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
        "Trials store their best epoch's validation logits (trials without them get point "
        "estimates only, and the note says so), so every comparison is made on the same "
        "windows. Skill is the per-window BCE difference between a trial and a "
        "predictor (the base rate, a logistic regression, a gradient-boosted tree) on those "
        "windows, with a Newey–West standard error whose lag is at least the horizon and a tenth "
        "of the windows (overlapping windows are not independent; the effective sample says "
        "how many independent windows they are worth), and fixed-b p-values. AUC is tested "
        "against 0.5 with DeLong's standard error, inflated the same way. The base rate is "
        "the training positive rate when its predictor is given, else the validation split's "
        "own rate (the best constant in hindsight, a stricter bar).",
        "",
        "Each budget's point is the expected best validation BCE of m trials drawn at random "
        "from its finished trials, with the same m for every budget, so that a budget searched "
        "longer is not favoured; pruned and diverged trials count as losers, failures of the "
        "infrastructure are left out. The verdict is the slope of those points per decade of "
        "parameters: bigger is better only if its 95% interval lies below zero. The interval "
        "comes from a circular block bootstrap over validation windows, the same resampled "
        "windows for every budget and trial (the noise the budgets share cancels as it does in "
        "the data), with each budget's best redone on every resample. With three budgets or "
        "more, L = E + A·N^(−α) with E between 0 and the lowest point describes what scale "
        "buys above a floor; BCE has an entropy floor, so a log-log slope of raw BCE would not.",
        "",
        "Files: " + ", ".join(f"`{f}`" for f in files) + ".",
        "",
    ]
    return "\n".join(lines)
