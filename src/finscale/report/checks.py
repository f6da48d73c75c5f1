"""What must hold before a scaling answer means anything: one experiment at a time, studies that
differ in nothing but their budget, and trials that trained to convergence and learned
something. The first two refuse; the last are flags the answer names."""

from __future__ import annotations

import math
from dataclasses import dataclass

from optuna.trial import TrialState

from finscale.errors import ExitCode, FinscaleError
from finscale.records import forced_as
from finscale.report.collect import StudyResult

# Fields of a search definition that differ between the studies of one experiment by design:
# the study's name, its budget and the architecture grid the budget selects, and its horizon
# (each horizon gets a fit of its own).
CELL_FIELDS = frozenset({"name", "budget", "grid", "horizon"})
# A trial whose predicted probabilities spread less than this across the validation windows
# answers (nearly) the same for every window: the research system's "prior collapse".
CONSTANT_SPREAD = 0.005
# A budget that lost more than this share of its finished trials (pruned or failed) was
# searched by the few that survived.
MOSTLY_LOST = 0.5


class SeveralExperimentsError(FinscaleError):
    """The storage holds studies of several experiments and none was chosen."""

    exit_code: int = ExitCode.BAD_INPUT


class IncomparableStudiesError(FinscaleError):
    """Studies to be fitted together differ in more than their budget."""

    exit_code: int = ExitCode.BAD_INPUT


def held_experiments(results: list[StudyResult]) -> dict[str, int]:
    """The experiments the studies belong to, with how many studies each."""
    counts: dict[str, int] = {}
    for r in results:
        if r.experiment is not None:
            counts[r.experiment] = counts.get(r.experiment, 0) + 1
    return counts


def describe_experiments(results: list[StudyResult]) -> str:
    """`name (n studies), …` of the experiments the studies belong to."""
    return ", ".join(
        f"{name} ({n} {'study' if n == 1 else 'studies'})"
        for name, n in sorted(held_experiments(results).items())
    )


def one_experiment(results: list[StudyResult], experiment: str | None) -> list[StudyResult]:
    """The studies of `experiment`, or of the only experiment the storage holds.

    Studies that finscale did not set up (no stored spec) are kept beside either.

    Raises:
        SeveralExperimentsError: no experiment was named and the studies belong to several.
    """
    if experiment is not None:
        # Experiment names are DNS-1123 names, lower-case by the spec's validation.
        return [r for r in results if r.experiment == experiment.lower()]
    if len(held_experiments(results)) > 1:
        held = describe_experiments(results)
        raise SeveralExperimentsError(
            f"the studies to report belong to several experiments: {held}. A scaling fit compares "
            "the budgets of one experiment; choose it with --experiment NAME (or --spec SPEC)"
        )
    return results


def check_comparable(results: list[StudyResult]) -> None:
    """Refuse to fit studies together whose search definitions differ in anything but the
    budget (and what the budget selects).

    Raises:
        IncomparableStudiesError: names each field that differs and its values by study.
    """
    defined = [r for r in results if r.definition]
    if len(defined) < 2:
        return
    keys = sorted({k for r in defined for k in r.definition} - CELL_FIELDS)
    lines = []
    for key in keys:
        values = {r.name: r.definition.get(key, "(absent)") for r in defined}
        if len(set(values.values())) > 1:
            shown = ", ".join(f"{name}: {value}" for name, value in values.items())
            lines.append(f"  {key}: {shown}")
    if lines:
        raise IncomparableStudiesError(
            "these studies differ in more than their budget, so their losses are not comparable "
            "and finscale will not fit them together:\n"
            + "\n".join(lines)
            + "\nReport them separately (--study NAME), or rerun the budgets with one definition "
            "(a per-budget override of a search field makes the budgets incomparable)"
        )


@dataclass(frozen=True)
class StudyFlags:
    """Signs that a study's trials cannot carry a conclusion about scale."""

    study: str
    complete: int
    still_improving: int  # completed trials whose best epoch was their last of all epochs
    best_still_improving: bool  # ... the best trial among them
    constant: int  # completed trials whose predictions barely vary across windows
    best_constant: bool
    lost: int  # pruned and failed trials among the finished
    finished: int
    # The search itself: finished trials whose architecture the sampler drew, and those it did
    # not (forced extremes, or enqueued with the architecture fixed).
    sampled: int
    forced: int
    startup_trials: int | None  # TPE's sampler.n_startup_trials; None: random sampler, unknown
    best_forced: str | None  # the forced extreme the best trial trains ("enqueued"), if any
    n_trials: int | None  # the study's trial budget

    @property
    def mostly_lost(self) -> bool:
        return self.finished > 0 and self.lost / self.finished > MOSTLY_LOST

    @property
    def no_search(self) -> bool:
        """Every finished trial was forced or enqueued: the sampler chose no architecture."""
        return self.finished > 0 and self.sampled == 0

    @property
    def few_sampled(self) -> bool:
        """The sampler drew fewer architectures than its own start-up phase asks for."""
        return (
            self.finished > 0
            and self.startup_trials is not None
            and self.sampled < self.startup_trials
        )

    def _budget_advice(self) -> str:
        """What to do about a search too short: wait for the budget, or raise it."""
        needed = self.forced + max(self.startup_trials or 0, 1)
        if self.n_trials is not None and self.finished < self.n_trials >= needed:
            return "the study has not spent its budget yet: report it again when it has"
        startup = f" + {self.startup_trials} start-up" if self.startup_trials else " + 1"
        return f"raise n_trials to at least {needed} ({self.forced} forced{startup})"

    def _search_sentences(self) -> list[str]:
        out = []
        if self.no_search:
            out.append(
                f"the sampler chose no architecture: all {self.finished} finished trials were "
                "forced extremes or enqueued, so this budget was not searched; "
                + self._budget_advice()
            )
        elif self.few_sampled:
            out.append(
                f"only {self.sampled} of its {self.finished} finished trials had an "
                "architecture drawn by the sampler, fewer than sampler.n_startup_trials "
                f"({self.startup_trials}), so the grid was barely explored; "
                + self._budget_advice()
            )
        if self.best_forced is not None and not self.no_search:
            what = (
                "a trial enqueued with its architecture fixed"
                if self.best_forced == "enqueued"
                else f'the forced extreme "{self.best_forced}"'
            )
            out.append(
                f"its best trial is {what}, not one the sampler drew: raise n_trials so that the "
                "search can try to beat it, and if it still wins, widen the grid past that edge "
                "(the best architecture may lie beyond it)"
            )
        return out

    def sentences(self) -> list[str]:
        """What the answer paragraph says about this study (nothing when all is well)."""
        out = []
        if self.best_still_improving:
            out.append(
                f"its best trial was still improving at its last epoch ({self.still_improving} "
                f"of {self.complete} completed trials were): more epochs would change the answer"
            )
        elif self.still_improving > self.complete / 2:
            out.append(
                f"{self.still_improving} of {self.complete} completed trials were still "
                "improving at their last epoch"
            )
        if self.best_constant:
            out.append("its best trial predicts a near-constant probability (no skill to scale)")
        elif self.constant:
            out.append(
                f"{self.constant} of {self.complete} completed trials predict a near-constant "
                "probability"
            )
        if self.mostly_lost:
            out.append(
                f"{self.lost} of {self.finished} finished trials were pruned or failed: the "
                "budget was searched by the few that survived"
            )
        return out + self._search_sentences()


def _still_improving(attrs: dict[str, object]) -> bool:
    best, run = attrs.get("best_epoch"), attrs.get("epochs_run")
    return (
        attrs.get("stop_reason") == "max_epochs" and isinstance(best, int | float) and best == run
    )


def _constant(attrs: dict[str, object]) -> bool:
    spread = attrs.get("val_pred_std")
    return isinstance(spread, int | float) and math.isfinite(spread) and spread < CONSTANT_SPREAD


def study_flags(result: StudyResult) -> StudyFlags:
    """Convergence and sanity flags of one study's completed trials."""
    complete = result.complete
    best = result.best
    lost = result.count(TrialState.PRUNED) + sum(
        1 for t in result.counted if t.state == TrialState.FAIL
    )
    forced_by = [forced_as(t) for t in result.counted]
    return StudyFlags(
        study=result.name,
        complete=len(complete),
        still_improving=sum(_still_improving(t.user_attrs) for t in complete),
        best_still_improving=best is not None and _still_improving(best.user_attrs),
        constant=sum(_constant(t.user_attrs) for t in complete),
        best_constant=best is not None and _constant(best.user_attrs),
        lost=lost,
        finished=result.finished,
        sampled=sum(forced is None for forced in forced_by),
        forced=sum(forced is not None for forced in forced_by),
        startup_trials=result.startup_trials,
        best_forced=forced_as(best) if best is not None else None,
        n_trials=result.n_trials,
    )
