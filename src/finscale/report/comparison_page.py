"""comparison.md and comparison.json: experiments side by side (`report.compare`), each linked
to its own report. One finding per sentence; every number with its test."""

from __future__ import annotations

import math
from typing import Any

from finscale.records import ATTR_SPEC
from finscale.report.compare import Comparison, Findings, GapComparison, SlopeComparison
from finscale.report.compare import best_baseline as best_baseline_of
from finscale.report.jsonform import Forms, fields_of, pair, to_json
from finscale.report.scaling_fit import SlopeFit
from finscale.report.stats import PairedTest
from finscale.report.words import num, versus

FORMS: Forms = {
    GapComparison: {
        "horizon": "horizon",
        "budget": "budget",
        "a": "a.experiment",
        "b": "b.experiment",
        "a_baseline": "a.baseline",
        "b_baseline": "b.baseline",
        "a_gap": "a.test",
        "b_gap": "b.test",
        "difference": "difference",
        "paired": "paired",
        "shared_dates": "shared",
    },
    SlopeComparison: {
        **fields_of(SlopeComparison, a_slope="a_slope", b_slope="b_slope"),
        "ci95": pair("", "low", "high"),
    },
    SlopeFit: {
        "per_decade": "per_decade",
        "ci95": pair(""),
        "n_resamples": "n_resamples",
    },
    PairedTest: {
        "estimate": "mean",
        "se": "se",
        "ci95": "ci95",
        "p_value": "p_value",
        "lag": "lag",
        "n": "n",
        "test": "test",
    },
}


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """comparison.json: the experiments, and each comparison with its test (None for NaN)."""
    return {
        "experiments": comparison.names,
        "gaps": to_json(comparison.gaps, FORMS),
        "slopes": to_json(comparison.slopes, FORMS),
        "notes": comparison.notes,
    }


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _interval(slope: SlopeFit | None) -> str:
    if slope is None:
        return "—"
    if math.isnan(slope.low):
        return f"{slope.per_decade:+.4f}"
    return f"{slope.per_decade:+.4f} [{slope.low:+.4f}, {slope.high:+.4f}]"


def _overview(comparison: Comparison, horizon: int) -> list[str]:
    """Per experiment: its market, test windows, best baseline and slopes (its own fits)."""
    rows = []
    for f in comparison.experiments:
        answer, final = f.answer(horizon), f.final(horizon)
        if answer is None:
            continue
        study = f.study(answer.points[0].study) if answer.points else None
        spec = study.attrs.get(ATTR_SPEC) or {} if study is not None else {}
        dataset = (spec.get("data") or {}).get("dataset", "—")
        windows = study.test_windows if study is not None else None
        span = f"{windows.first_date} – {windows.last_date}" if windows is not None else "—"
        rate = num(windows.positive_rate, 3) if windows is not None else "—"
        best = best_baseline_of(final) if final is not None else None
        baseline = (
            f"{best} ({final.baselines[best].loss:.4f})"
            if final is not None and best is not None
            else "—"
        )
        test_slope = final.fit.slope if final is not None and final.fit is not None else None
        val_slope = answer.scaling.slope if answer.scaling is not None else None
        rows.append(
            [
                f"[{f.experiment}]({f.experiment}/summary.md)",
                str(dataset),
                span,
                rate,
                baseline,
                _interval(test_slope),
                _interval(val_slope),
            ]
        )
    header = [
        "experiment",
        "dataset",
        "test windows (first start – last start)",
        "test positive rate",
        "best baseline (test BCE)",
        "slope per decade, test [95 %]",
        "slope per decade, validation [95 %]",
    ]
    return _table(header, rows)


def _gap_words(g: GapComparison) -> str:
    """One sentence: whether a's model gains more over its market's best baseline than b's."""
    t = g.difference
    numbers = f"{t.mean:+.4f} ± {t.se:.4f}"
    how = (
        f"paired by calendar date on {g.shared} shared test days"
        if g.paired
        else "unpaired: " + t.test.split("(", 1)[-1].rstrip(")")
    )
    if t.p_lower < 0.025:
        verdict = f"gains more over its best baseline than {g.b.experiment}'s does"
        p = f"one-sided p {t.p_lower:.2g}"
    elif 1 - t.p_lower < 0.025:
        verdict = f"gains less over its best baseline than {g.b.experiment}'s does"
        p = f"one-sided p {1 - t.p_lower:.2g}"
    else:
        verdict = f"is not distinguishable from {g.b.experiment}'s in its gap to its best baseline"
        p = f"p₂ {t.p_value:.2g}"
    return f"At {g.budget}, {g.a.experiment}'s final model {verdict} ({numbers}, {p}; {how})."


def _slope_words(s: SlopeComparison) -> str:
    if math.isnan(s.p_value):
        return (
            f"The {s.split} slopes per decade of {s.a} and {s.b} differ by "
            f"{s.difference:+.4f}; without both intervals there is no test."
        )
    numbers = (
        f"{s.difference:+.4f}, 95 % interval [{s.low:+.4f}, {s.high:+.4f}], p₂ {s.p_value:.2g}"
    )
    if s.p_value < 0.05:
        side, means = (
            ("below", "size helps more or hurts less")
            if s.difference < 0
            else ("above", "size helps less or hurts more")
        )
        return f"On {s.split}, {s.a}'s slope per decade is {side} {s.b}'s ({numbers}): {means}."
    return (
        f"On {s.split}, the slopes per decade of {s.a} and {s.b} are not distinguishable "
        f"({numbers})."
    )


def _own_gaps(gaps: list[GapComparison]) -> list[str]:
    """First, each experiment's final models against its own best baseline (a baseline that
    wins is said before any comparison of the experiments)."""
    seen: dict[tuple[str, str], str] = {}
    for g in gaps:
        for side in (g.a, g.b):
            who = f"{side.experiment}'s {side.budget} final model"
            seen.setdefault((side.experiment, side.budget), versus(who, side.baseline, side.test))
    return list(seen.values())


def _gap_rows(gaps: list[GapComparison]) -> list[list[str]]:
    def side(t: PairedTest, baseline: str) -> str:
        return f"{t.mean:+.4f} ± {t.se:.4f} ({baseline})"

    rows = []
    for g in gaps:
        t = g.difference
        low, high = t.ci95
        rows.append(
            [
                g.budget,
                f"{g.a.experiment} − {g.b.experiment}",
                side(g.a.test, g.a.baseline),
                side(g.b.test, g.b.baseline),
                f"{t.mean:+.4f} [{low:+.4f}, {high:+.4f}]",
                f"{t.p_value:.2g}",
                t.test,
            ]
        )
    return rows


def _horizon(comparison: Comparison, horizon: int) -> list[str]:
    lines = [f"## Horizon {horizon}", "", *_overview(comparison, horizon), ""]
    gaps = [g for g in comparison.gaps if g.horizon == horizon]
    slopes = [s for s in comparison.slopes if s.horizon == horizon]
    said = [f"- {line}" for line in _own_gaps(gaps)]
    said += [f"- {_gap_words(g)}" for g in gaps] + [f"- {_slope_words(s)}" for s in slopes]
    if said:
        lines += [*said, ""]
    if gaps:
        lines += [
            "Each budget's final model minus its own market's best baseline on test (mean "
            "per-window BCE ± its Newey–West SE; negative: the transformer is better), and the "
            "difference of the two gaps:",
            "",
            *_table(
                ["budget", "difference", "gap a", "gap b", "a − b [95 %]", "p₂", "test"],
                _gap_rows(gaps),
            ),
            "",
        ]
    return lines


def _experiments_line(experiments: list[Findings]) -> str:
    links = ", ".join(f"[{f.experiment}]({f.experiment}/summary.md)" for f in experiments)
    return (
        f"Each experiment is fitted on its own and has its own report ({links}); nothing is "
        "pooled. Levels of BCE are not compared across experiments (they follow each market's "
        "label rate): what is compared is each transformer's gap to its own market's best "
        "baseline, and the slopes per decade."
    )


METHOD = (
    "**Method.** A window's date is its decision day, the last day of its context, read from "
    "the dataset the study is pinned to. Two experiments' gaps are paired by that date on the "
    "test days both hold: the per-day difference of the gaps, with a Newey–West SE (lag from "
    "the data, at least the horizon) and fixed-b p-values, as the report's paired tests. Where "
    "they share no day, or a dataset is not in the data directory, the two mean gaps are "
    "compared as independent estimates, each with its own Newey–West SE, and the test says "
    "unpaired. Two slopes per decade are compared by reading each one's 95 % joint-bootstrap "
    "interval (windows, trials and seeds redrawn) as normal and treating the experiments as "
    "independent: when the markets move together this interval is wider than a paired one, "
    "so a difference it finds does not come from that choice."
)


def comparison_markdown(comparison: Comparison, *, storage: str, generated: str) -> str:
    """comparison.md: per horizon each experiment's own findings, then where they differ."""
    names = ", ".join(comparison.names)
    lines = [
        f"# finscale comparison: {names}",
        "",
        f"Storage `{storage}`, generated {generated}.",
        "",
        _experiments_line(comparison.experiments),
        "",
    ]
    for horizon in comparison.horizons:
        lines += _horizon(comparison, horizon)
    if comparison.notes:
        lines += ["**Not compared:**", "", *(f"- {n}" for n in comparison.notes), ""]
    lines += [METHOD, ""]
    return "\n".join(lines)


def console_lines(comparison: Comparison) -> list[str]:
    """What `finscale compare` prints: each comparison's sentence, then what was not compared."""
    lines = []
    for horizon in comparison.horizons:
        lines += [
            f"horizon {horizon}: {_gap_words(g)}" for g in comparison.gaps if g.horizon == horizon
        ]
        lines += [
            f"horizon {horizon}: {_slope_words(s)}"
            for s in comparison.slopes
            if s.horizon == horizon
        ]
    return lines + [f"not compared: {n}" for n in comparison.notes]
