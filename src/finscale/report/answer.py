"""The summary's answer: per horizon, short sentences with one finding each.

It leads with what a researcher must hear first: the final models against the best baseline
on test (on validation when there is no final evaluation), baselines that beat the transformers
said plainly; then the slope across budgets; then the reference, whether the split's label rate
moved, and each predictor against the reference with its AUC. No sentence is printed that
another printed test contradicts: "no predictor is better than the reference" only when no
transformer and no baseline is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from finscale.param_budget import parse_budget
from finscale.report.checks import StudyFlags
from finscale.report.collect import StudyResult
from finscale.report.reference import Shift
from finscale.report.scaling import ScalingResult
from finscale.report.stats import Skill
from finscale.report.words import against_reference, alpha_interval, shift_sentences, versus

if TYPE_CHECKING:
    from finscale.report import FinalAnswer

Named = Sequence[tuple[str, Skill]]  # who ("50K's final model"), and its tests


def _worse_than(skill: Skill, name: str) -> bool:
    t = skill.vs_baselines.get(name)
    return t is not None and 1 - t.p_lower < 0.025


def lead(models: Named, baselines: Mapping[str, Skill], kind: str) -> list[str]:
    """The transformers against the baselines: those that beat them first, then each model
    against the best baseline (the lowest BCE on these windows)."""
    if not baselines:
        return ["No baseline was stored: the models are judged against the reference alone."]
    order = sorted(baselines, key=lambda n: baselines[n].loss)
    out = []
    for name in order:
        beaten = sum(_worse_than(s, name) for _, s in models)
        if beaten:
            out.append(f"{name} beats {beaten} of {len(models)} {kind}.")
    if not out:
        out.append(f"No baseline beats a {kind[:-1]}.")
    best = baselines[order[0]]
    out.append(
        f"The best baseline is {order[0]} (BCE {best.loss:.4f}, AUC {best.auc.estimate:.3f})."
    )
    out += [
        versus(who, order[0], s.vs_baselines[order[0]])
        for who, s in models
        if order[0] in s.vs_baselines
    ]
    return out


def against(models: Named, baselines: Mapping[str, Skill], shift: Shift | None) -> list[str]:
    """The split's rate, then every predictor against the reference."""
    out = [" ".join(shift_sentences(shift))] if shift is not None else []
    named = [*models, *baselines.items()]
    out += [against_reference(who, s) for who, s in named]
    if named and not any(s.claim == "better" for _, s in named):
        out.append(
            "No predictor on these windows, transformer or baseline, is better than the "
            "reference by BCE."
        )
    return out


def _over_seeds(seeds: list[int]) -> str:
    """How a final model's per-window loss came from its runs: "that of its one run" for a
    single seed, else the mean over them ("the mean over its 2–3 seeds' runs")."""
    if seeds == [1]:
        return "that of its one run"
    return f"the mean over its {'–'.join(map(str, seeds))} seeds' runs"


def _on_test(fa: FinalAnswer) -> list[str]:
    models = [(f"{m.budget}'s final model", m.skill) for m in fa.models]
    seeds = sorted({m.seeds for m in fa.models})
    n = len(fa.models[0].losses)
    header = (
        f"**Horizon {fa.horizon}, on test** ({n} windows that took no part in any choice; "
        "each budget's final model is its evaluated trial with the best validation BCE, its "
        f"loss per window {_over_seeds(seeds)}):"
    )
    bullets = lead(models, fa.baselines, "final models")
    if fa.fit is not None:
        budgets = ", ".join(m.budget for m in fa.models)
        bullets.append(f"Across budgets {budgets}: {fa.fit.sentence}.")
    bullets += against(models, fa.baselines, fa.reference)
    return [header, "", *(f"- {b}" for b in bullets), ""]


def _on_validation(a: ScalingResult) -> list[str]:
    windows = a.scaling.n_windows if a.scaling and a.scaling.n_windows else None
    header = (
        f"**Horizon {a.horizon}, on validation** ({f'{windows} windows, ' if windows else ''}"
        "those the search selected on: each budget's best trial was chosen on them, so its "
        "tests are optimistic):"
    )
    models = [(f"{p.budget}'s best trial", p.skill) for p in a.points if p.skill is not None]
    bullets = lead(models, a.baseline_skill, "best trials") if models else []
    fit = a.scaling
    budgets = ", ".join(p.budget for p in a.points) or "none"
    if fit is None:
        bullets.append(f"Across budgets there is no fit ({a.note}; budgets: {budgets}).")
    else:
        bullets.append(f"Across budgets {budgets}: {fit.sentence}.")
        e = fit.exponent
        if e is not None:
            ci = f" (95% interval {alpha_interval(e)})" if e.n_resamples else ""
            floor = (
                "with the floor E at its lower bound 0 (the budgets do not place it)"
                if e.floor <= 1e-9
                else f"above a floor E = {e.floor:.4f}"
            )
            bullets.append(
                f"The reducible loss, L = E + A·N^(−α), gives α = {e.alpha:.3f}{ci} {floor}; "
                "it describes the curve, the slope decides."
            )
    if models:
        bullets += against(models, a.baseline_skill, a.reference)
    return [header, "", *(f"- {b}" for b in bullets), ""]


def _flags(flags: list[StudyFlags], horizon: int, results: list[StudyResult]) -> list[str]:
    """The convergence and sanity flags of one horizon's studies, as a paragraph."""
    names = {r.name for r in results if r.horizon == horizon}
    said = [
        f"{f.study}: {'; '.join(f.sentences())}"
        for f in flags
        if f.study in names and f.sentences()
    ]
    if not said:
        return []
    text = ". ".join(said)
    return [f"**Caution** — {text}. A verdict drawn from such trials says little about scale.", ""]


def _by_size(item: tuple[str, str]) -> int:
    return parse_budget(item[0])


def styles_by_horizon(styles: pd.DataFrame, results: list[StudyResult]) -> str:
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


def answer_section(
    answers: list[ScalingResult],
    finals: list[FinalAnswer],
    flags: list[StudyFlags],
    styles: pd.DataFrame,
    results: list[StudyResult],
) -> list[str]:
    """Per horizon: test (when evaluated), validation, cautions; then what the verdict means."""
    lines: list[str] = ["## The answer", ""]
    final_by_horizon = {f.horizon: f for f in finals}
    for a in answers:
        if a.horizon in final_by_horizon:
            lines += _on_test(final_by_horizon[a.horizon])
        lines += _on_validation(a)
        lines += _flags(flags, a.horizon, results)
    if not answers:
        lines += [
            "No scaling answer: no study of the storage was set up by finscale with a budget and "
            "a horizon, or none has a completed trial.",
            "",
        ]
    closing = [styles_by_horizon(styles, results)]
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
