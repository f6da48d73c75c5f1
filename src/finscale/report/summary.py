"""The Markdown summary: the answer in one paragraph, then the tables and figures behind it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd
from optuna.trial import TrialState

from finscale.param_budget import parse_budget
from finscale.report.architecture import Importances
from finscale.report.checks import StudyFlags
from finscale.report.collect import StudyResult
from finscale.report.method import method_section
from finscale.report.scaling import ALPHA_MAX, ALPHA_MIN, ExponentFit, ScalingResult
from finscale.report.stats import AucTest, PairedTest

if TYPE_CHECKING:
    from finscale.report import FinalAnswer


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
            text += f" (95% interval {alpha_interval(e)})"
        text += f" {_floor(e)}; it describes the curve, the slope decides."
    return text + skill


def alpha_interval(e: ExponentFit, sep: str = "to") -> str:
    """The exponent's 95 % interval, then which of its ends is the fitted range's limit: such
    an end is a bound the data did not set, so it is shown as one, not as a value."""
    at_low, at_high = e.low <= ALPHA_MIN + 1e-9, e.high >= ALPHA_MAX - 1e-9
    low = f"≤ {ALPHA_MIN:g}" if at_low else f"{e.low:.3f}"
    high = f"≥ {ALPHA_MAX:g}" if at_high else f"{e.high:.3f}"
    text = f"{low}, {high}" if sep == "," else f"{low} {sep} {high}"
    ends = " and ".join(n for n, hit in (("lower", at_low), ("upper", at_high)) if hit)
    if ends:
        text += (
            f"; its {ends} end is the end of the fitted range [{ALPHA_MIN:g}, {ALPHA_MAX:g}], "
            "not set by the data"
        )
    return text


def _floor(e: ExponentFit) -> str:
    if e.floor <= 1e-9:
        return "with the floor E at its lower bound 0 (the budgets do not place it)"
    return f"above a floor E = {e.floor:.4f}"


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
        return f"{t.mean:+.{digits}f} ± {t.se:.{digits}f} (p₂ {t.p_value:.2g})"
    return f"{t.estimate:.{digits}f} ± {t.se:.{digits}f} (p₂ {t.p_value:.2g})"


def _versus(name: str, t: PairedTest) -> str:
    """One paired comparison in words, with its statistic: negative differences are better."""
    numbers = f"{t.mean:+.4f} ± {t.se:.4f}"
    if t.p_lower < 0.025:
        return f"better than {name} ({numbers}, one-sided p {t.p_lower:.2g})"
    if 1 - t.p_lower < 0.025:
        return f"worse than {name} ({numbers}, one-sided p {1 - t.p_lower:.2g})"
    return f"not distinguishable from {name} ({numbers})"


def _final(answer: FinalAnswer) -> str:
    """The headline of one horizon: the final models on the test split."""
    parts = []
    for m in answer.models:
        spread = f" ± {m.test_bce_sd:.4f}" if math.isfinite(m.test_bce_sd) else ""
        versus = [_versus("the base rate", m.skill.vs_base_rate)]
        versus += [_versus(n, t) for n, t in sorted(m.skill.vs_baselines.items())]
        parts.append(
            f"{m.budget}: test BCE {m.test_bce:.4f}{spread}, AUC {_num(m.test_auc, 3)} — "
            + ", ".join(versus)
        )
    test = answer.models[0].skill.vs_base_rate.test
    text = (
        f"**On the test split** (horizon {answer.horizon}; each budget's final model is the best "
        "of its evaluated trials by mean validation BCE; mean ± standard deviation over "
        f"{answer.models[0].seeds} seeds): {'; '.join(parts)}. Differences are test BCE minus "
        "the other predictor's on the same windows, ± their standard error "
        f"({test}; better or worse at the one-sided 2.5 % level)."
    )
    if answer.fit is not None:
        text += f" Across budgets on test: {answer.fit.sentence}."
    return text


def _flags(flags: list[StudyFlags], horizon: int, results: list[StudyResult]) -> str:
    """The convergence and sanity flags of one horizon's studies, as sentences."""
    names = {r.name for r in results if r.horizon == horizon}
    said = [
        f"{f.study}: {'; '.join(f.sentences())}"
        for f in flags
        if f.study in names and f.sentences()
    ]
    if not said:
        return ""
    return (
        " **Caution** — " + ". ".join(said) + ". A verdict drawn from such trials says little "
        "about scale."
    )


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
                f"{len(partial)} of {total} have not spent their budget ({', '.join(partial)})"
            )
        if missing:
            parts.append(f"{len(missing)} of {total} have not started ({', '.join(missing)})")
        lines += [
            f"> **Partial experiment:** {'; '.join(parts)}. Figures below may change as they "
            "finish.",
            "",
        ]
    return lines


def _answer_section(
    answers: list[ScalingResult],
    finals: list[FinalAnswer],
    flags: list[StudyFlags],
    styles: pd.DataFrame,
    results: list[StudyResult],
) -> list[str]:
    """One paragraph per horizon, then what the verdict means."""
    lines: list[str] = []
    lines += ["## The answer", ""]
    final_by_horizon = {f.horizon: f for f in finals}
    for a in answers:
        paragraph = []
        if a.horizon in final_by_horizon:
            paragraph.append(_final(final_by_horizon[a.horizon]))
            paragraph.append("On the validation windows the search selected on:")
        paragraph.append(_describe(a))
        paragraph.append(_flags(flags, a.horizon, results))
        lines += [" ".join(p for p in paragraph if p), ""]
    if not answers:
        lines += [
            "No scaling answer: no study of the storage was set up by finscale with a budget and "
            "a horizon, or none has a completed trial.",
            "",
        ]
    closing = [_styles_by_horizon(styles, results)]
    closing.append(
        "The verdict is the slope per decade's interval; the exponent describes what scale buys "
        "above a floor and carries no strength label (see Method)."
    )
    if not finals:
        closing.append(
            "All values are validation metrics of trials selected on those same windows "
            "(optimistic); the test split was not used: run `finscale evaluate SPEC` for the "
            "final evaluation on test."
        )
    lines += [" ".join(p for p in closing if p), ""]
    return lines


def _final_section(finals: list[FinalAnswer]) -> list[str]:
    """The final evaluation on test, when there is one."""
    lines: list[str] = []
    if finals:
        lines += ["## Final evaluation on test", ""]
        for fa in finals:
            names = sorted({n for m in fa.models for n in m.skill.vs_baselines})
            lines += [f"### Horizon {fa.horizon}", ""]
            lines += _table(
                ["budget", "trial", "arch", "parameters", "seeds", "val BCE", "test BCE",
                 "test AUC", "vs base rate", *(f"vs {n}" for n in names)],
                (
                    [
                        m.budget, str(m.trial), m.arch, f"{m.param_count:,}",
                        f"{m.seeds} (best of {m.candidates} trials)", _num(m.val_bce),
                        f"{_num(m.test_bce)} ± {_num(m.test_bce_sd)}",
                        f"{_num(m.test_auc, 3)} ± {_num(m.test_auc_sd, 3)}",
                        _test(m.skill.vs_base_rate),
                        *(_test(m.skill.vs_baselines.get(n)) for n in names),
                    ]
                    for m in fa.models
                ),
            )  # fmt: skip
            baselines = fa.models[0].baselines
            if baselines:
                lines += ["", "Baselines on the same test windows (BCE / AUC): " + "; ".join(
                    f"{n} {_num(b)} / {_num(a, 3)}" for n, (b, a) in baselines.items()
                ) + "."]  # fmt: skip
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
    return lines


def _scaling_section(answers: list[ScalingResult], figures: dict[str, str]) -> list[str]:
    """Per horizon: the points, the slope, the exponent and the note."""
    lines: list[str] = []
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
        if a.baselines:
            lines += ["", "Baselines on the same validation windows (BCE): " + "; ".join(
                f"{n} {_num(v)}" for n, v in a.baselines.items()
            ) + "."]  # fmt: skip
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
        + _answer_section(answers, finals, flags, styles, results)
        + _final_section(finals)
        + _studies_section(results)
        + _scaling_section(answers, figures)
        + _architectures_section(styles, heads, importances, figures)
        + _history_section(results, figures)
        + method_section(files)
    )
