"""Experiments side by side: each fitted on its own (never pooled), compared where they meet.

Two experiments (the same design on two markets, say) are compared on each horizon they share:

- **The gap to the best baseline, per budget.** A budget's final model on test minus its own
  market's best baseline (the lowest test BCE there), window by window: how much the
  transformer adds over what a simple model of the same market gets. Two markets' gaps are
  paired by calendar date — a window's decision day, its last context day — on the test dates
  both hold, with the report's Newey–West test (`stats.paired_difference`): the days both
  markets found hard cancel. Where they share no date, or a window cannot be dated (its dataset
  is not in the data directory), the two means are compared with each one's own Newey–West
  error, as independent, and the test says "unpaired".
- **The slope per decade**, test and validation: the difference of two slopes, each with the
  interval of its own joint bootstrap (windows, trials and seeds) read as normal, the
  experiments treated as independent — wider than a paired interval when the markets move
  together, so a difference it finds is not an artefact of that choice.

Levels of BCE are not compared across markets: they follow each market's label rate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as scipy_stats

from finscale.report import stats
from finscale.report.collect import StudyResult
from finscale.report.final import FinalAnswer, FinalModel
from finscale.report.scaling import ScalingResult
from finscale.report.scaling_fit import SlopeFit

# A study's windows of one split ("val" or "test") as decision days, or why they have none.
Dater = Callable[[StudyResult, str], "np.ndarray | str"]

Z95 = float(scipy_stats.norm.ppf(0.975))


@dataclass(frozen=True)
class Findings:
    """What one experiment's own report found (`finscale.report.Report`), as compared here."""

    experiment: str
    studies: list[StudyResult]
    scaling: list[ScalingResult]
    finals: list[FinalAnswer]

    @property
    def horizons(self) -> list[int]:
        return sorted({a.horizon for a in self.scaling})

    def final(self, horizon: int) -> FinalAnswer | None:
        return next((f for f in self.finals if f.horizon == horizon), None)

    def answer(self, horizon: int) -> ScalingResult | None:
        return next((a for a in self.scaling if a.horizon == horizon), None)

    def study(self, name: str) -> StudyResult:
        return next(r for r in self.studies if r.name == name)


@dataclass(frozen=True)
class Gap:
    """One budget's final model minus its market's best baseline on test, window by window."""

    experiment: str
    budget: str
    baseline: str  # the market's best baseline on these windows
    losses: np.ndarray  # (n,) model − baseline per-window BCE; negative: the model is better
    test: stats.PairedTest  # the report's paired test of the same difference
    dates: np.ndarray | None  # (n,) decision days; None: the windows could not be dated
    starts: np.ndarray  # (n,) window start rows (contiguous rows form a segment)
    undated: str = ""  # why the windows have no dates


@dataclass(frozen=True)
class GapComparison:
    """Two experiments' gaps at one budget: a's minus b's."""

    horizon: int
    budget: str
    a: Gap
    b: Gap
    difference: stats.PairedTest  # a − b; negative: a's model gains more over its baseline
    shared: int  # test dates both hold (0: unpaired)

    @property
    def paired(self) -> bool:
        return self.shared > 0


@dataclass(frozen=True)
class SlopeComparison:
    """Two experiments' slopes per decade on one split: a's minus b's."""

    horizon: int
    split: str  # "test" or "validation"
    a: str
    b: str
    a_slope: SlopeFit
    b_slope: SlopeFit
    difference: float
    low: float  # 95 % interval (NaN: a slope has no interval)
    high: float
    p_value: float
    test: str = (
        "difference of two slopes per decade, each joint-bootstrap interval read as normal, "
        "the experiments independent"
    )


@dataclass(frozen=True)
class Comparison:
    """Experiments side by side: each one's findings and where two of them differ."""

    experiments: list[Findings]
    gaps: list[GapComparison]
    slopes: list[SlopeComparison]
    notes: list[str] = field(default_factory=list)  # what could not be compared, and why

    @property
    def names(self) -> list[str]:
        return [f.experiment for f in self.experiments]

    @property
    def horizons(self) -> list[int]:
        return sorted({h for f in self.experiments for h in f.horizons})


def best_baseline(final: FinalAnswer) -> str | None:
    """The baseline with the lowest BCE on the test windows (as the report's answer names it)."""
    if not final.baselines:
        return None
    return min(final.baselines, key=lambda name: final.baselines[name].loss)


def gap_of(findings: Findings, model: FinalModel, baseline: str, dater: Dater) -> Gap | None:
    """`model`'s per-window test loss minus `baseline`'s, with the windows' decision days."""
    result = findings.study(model.study)
    windows, logits = result.test_windows, result.baselines.get(baseline)
    test = model.skill.vs_baselines.get(baseline)
    if windows is None or logits is None or logits.test is None or test is None:
        return None
    baseline_losses = stats.bce_per_window(logits.test, windows.labels)
    dated = dater(result, "test")
    dates, undated = (None, dated) if isinstance(dated, str) else (dated, "")
    return Gap(
        experiment=findings.experiment,
        budget=model.budget,
        baseline=baseline,
        losses=model.losses - baseline_losses,
        test=test,
        dates=dates,
        starts=windows.starts,
        undated=undated,
    )


def compare_gaps(a: Gap, b: Gap, *, horizon: int) -> GapComparison:
    """a's gap minus b's: paired on the dates both hold, else unpaired (each its own error)."""
    shared = np.array([], dtype="datetime64[D]")
    if a.dates is not None and b.dates is not None:
        shared = np.intersect1d(a.dates, b.dates)
    if len(shared) >= 2:
        ia = np.searchsorted(a.dates, shared)  # type: ignore[arg-type]
        ib = np.searchsorted(b.dates, shared)  # type: ignore[arg-type]
        test = stats.paired_difference(
            a.losses[ia], b.losses[ib], min_lag=horizon, starts=stats.segments(a.starts[ia])
        )
        named = test.test.replace("per-window BCE", "per-date gap")
        difference = _renamed(test, f"{named}, paired by calendar date on {len(shared)} days")
        return GapComparison(horizon, a.budget, a, b, difference, len(shared))
    why = a.undated or b.undated or "no test date in common"
    return GapComparison(horizon, a.budget, a, b, unpaired(a.test, b.test, why=why), 0)


def _renamed(test: stats.PairedTest, name: str) -> stats.PairedTest:
    return dataclasses.replace(test, test=name)


def unpaired(a: stats.PairedTest, b: stats.PairedTest, *, why: str) -> stats.PairedTest:
    """a's mean minus b's, each with its own (Newey–West) error, as independent estimates."""
    return stats.independent_difference(
        a,
        b,
        test=f"unpaired difference of the two means, each with its own Newey–West SE ({why})",
    )


def compare_slopes(
    a: SlopeFit, b: SlopeFit, *, horizon: int, split: str, names: tuple[str, str]
) -> SlopeComparison:
    """a's slope per decade minus b's, with a normal interval from each one's 95 % interval."""
    se = math.hypot((a.high - a.low) / (2 * Z95), (b.high - b.low) / (2 * Z95))
    difference = a.per_decade - b.per_decade
    if math.isfinite(se) and se > 0:
        low, high = difference - Z95 * se, difference + Z95 * se
        p = float(2 * scipy_stats.norm.sf(abs(difference) / se))
    else:
        low = high = p = math.nan
    return SlopeComparison(horizon, split, *names, a, b, difference, low, high, p)


def compare(experiments: list[Findings], *, dater: Dater) -> Comparison:
    """Every pair of experiments (in the order given) on every horizon and budget they share."""
    gaps: list[GapComparison] = []
    slopes: list[SlopeComparison] = []
    notes: list[str] = []
    for i, a in enumerate(experiments):
        for b in experiments[i + 1 :]:
            for horizon in sorted(set(a.horizons) | set(b.horizons)):
                if horizon not in a.horizons or horizon not in b.horizons:
                    held = a if horizon in a.horizons else b
                    notes.append(f"Horizon {horizon} is only in {held.experiment}.")
                    continue
                pair = (a.experiment, b.experiment)
                slopes += _slopes(a, b, horizon, pair)
                found, said = _gaps(a, b, horizon, dater)
                gaps += found
                notes += said
    return Comparison(experiments=experiments, gaps=gaps, slopes=slopes, notes=notes)


def _slopes(a: Findings, b: Findings, horizon: int, pair: tuple[str, str]) -> list[SlopeComparison]:
    out = []
    fa, fb = a.final(horizon), b.final(horizon)
    if fa is not None and fb is not None and fa.fit is not None and fb.fit is not None:
        out.append(
            compare_slopes(fa.fit.slope, fb.fit.slope, horizon=horizon, split="test", names=pair)
        )
    va, vb = a.answer(horizon), b.answer(horizon)
    if va is not None and vb is not None and va.scaling is not None and vb.scaling is not None:
        out.append(
            compare_slopes(
                va.scaling.slope, vb.scaling.slope, horizon=horizon, split="validation", names=pair
            )
        )
    return out


def _gaps(
    a: Findings, b: Findings, horizon: int, dater: Dater
) -> tuple[list[GapComparison], list[str]]:
    fa, fb = a.final(horizon), b.final(horizon)
    if fa is None or fb is None:
        missing = [f.experiment for f, x in ((a, fa), (b, fb)) if x is None]
        return [], [
            f"Horizon {horizon}: {' and '.join(missing)} not evaluated on test "
            "(`finscale evaluate SPEC`): no per-budget comparison."
        ]
    base_a, base_b = best_baseline(fa), best_baseline(fb)
    if base_a is None or base_b is None:
        return [], [f"Horizon {horizon}: no baseline stored: no gap to compare."]
    by_budget_b = {m.budget: m for m in fb.models}
    out, notes = [], []
    for model in fa.models:
        other = by_budget_b.get(model.budget)
        if other is None:
            continue
        ga, gb = gap_of(a, model, base_a, dater), gap_of(b, other, base_b, dater)
        if ga is not None and gb is not None:
            out.append(compare_gaps(ga, gb, horizon=horizon))
    alone = sorted({m.budget for m in fa.models} ^ set(by_budget_b))
    if alone:
        notes.append(
            f"Horizon {horizon}: {', '.join(alone)} evaluated in only one of "
            f"{a.experiment} and {b.experiment}."
        )
    return out, notes
