"""The headline numbers: each budget's final model on the test split (`finscale evaluate`).

The search chose its trials on the validation windows; the test windows took no part. Of the
trials the evaluation retrained (the study's top k, S seeds each), the final model of a budget
is the trial with the best mean validation BCE over its seeds — a choice made without the test
split — and its test BCE is the mean over those seeds (with their range or spread). Its loss on
a test window is the mean over seeds of its runs' losses there (what one trained run gets on
average, not the loss of the seed-averaged prediction); that per-window loss is paired against
the reference's (a constant at the rate of the training and validation labels,
`report.reference`), the floor's and the baselines' on the same windows. Its one AUC is that of
the seed-averaged logits, the one tested against 0.5. The budgets' final models are compared
with each other by the same joint bootstrap as the search: the test windows in blocks, and each
final model's seeds redrawn as a budget's trials are.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass

import numpy as np

from finscale.predictions import decode_logits
from finscale.records import EvalRun
from finscale.report import stats
from finscale.report.collect import StudyResult
from finscale.report.reference import Shift, judge, shift_of, study_reference
from finscale.report.scaling import BudgetTrials, ScalingFit, fit_scaling
from finscale.train.metrics import auc


@dataclass(frozen=True)
class FinalModel:
    """A budget's final model on the test windows."""

    study: str
    budget: str
    budget_params: int
    trial: int
    arch: str
    param_count: int
    seeds: int  # runs averaged
    candidates: int  # trials the evaluation retrained, among which this one was chosen
    refit: bool
    val_bce: float  # mean over seeds (NaN after a refit): what the choice was made on
    test_bce: float  # mean over seeds
    test_bce_sd: float  # spread over seeds (NaN with one seed)
    test_auc: float  # of the seed-averaged logits: the AUC tested against 0.5
    test_auc_sd: float  # spread of the per-seed AUCs (NaN with one seed)
    losses: np.ndarray  # per-window test BCE, averaged over seeds
    skill: stats.Skill  # those losses against the reference, the floor and the baselines
    baselines: dict[str, tuple[float, float]]  # name → (test BCE, test AUC)
    test_bce_seeds: tuple[float, ...] = ()  # each seed's test BCE
    test_auc_seeds: tuple[float, ...] = ()  # each seed's test AUC
    reference: Shift | None = None  # the test windows' reference, floor and rate shift
    baseline_skill: dict[str, stats.Skill] = dataclasses.field(default_factory=dict)
    # (seeds, windows) per-window test BCE of each seed's run; empty: only the average known
    seed_losses: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def beats(self) -> list[str]:
        """What this model beats on test (one-sided 2.5 %): "reference" when its claim is
        "better" (see `stats.Skill.claim`), then baseline names."""
        names = ["reference"] if self.skill.beats_base_rate else []
        return names + [n for n, t in self.skill.vs_baselines.items() if t.p_lower < 0.025]


@dataclass(frozen=True)
class FinalAnswer:
    """One horizon's final models on test, and their comparison across budgets."""

    horizon: int
    models: list[FinalModel]
    fit: ScalingFit | None  # None with fewer than two evaluated budgets

    @property
    def reference(self) -> Shift | None:
        """The test windows' reference (the budgets share their windows)."""
        return self.models[0].reference if self.models else None

    @property
    def baselines(self) -> dict[str, stats.Skill]:
        """Each baseline on the test windows, against the reference."""
        return self.models[0].baseline_skill if self.models else {}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def _sd(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.stdev(finite) if len(finite) > 1 else math.nan


def _chosen(result: StudyResult) -> tuple[int, list[EvalRun], int] | None:
    """The evaluated trial with the best mean validation BCE over its seeds (the search's
    value breaks ties and decides after a refit, when validation was trained on)."""
    by_trial: dict[int, list[EvalRun]] = {}
    for run in result.evaluation:
        if run.test_logits:
            by_trial.setdefault(run.trial, []).append(run)
    if not by_trial:
        return None
    values = {t.number: result.goodness(float(t.value)) for t in result.complete}  # type: ignore[arg-type]

    def key(number: int) -> tuple[float, float]:
        val = _mean([r.val.get("bce", math.nan) for r in by_trial[number]])
        return (val if math.isfinite(val) else math.inf, values.get(number, math.inf))

    number = min(by_trial, key=key)
    return number, by_trial[number], len(by_trial)


def _seeds(runs: list[EvalRun], split: str, metric: str) -> tuple[float, ...]:
    return tuple(getattr(r, split).get(metric, math.nan) for r in runs)


def final_model(result: StudyResult) -> FinalModel | None:
    """The study's final model on test; None when it was not evaluated."""
    test = result.test_windows
    chosen = _chosen(result)
    if test is None or chosen is None or result.horizon is None:
        return None
    number, runs, candidates = chosen
    logits = np.stack([decode_logits(r.test_logits) for r in runs])
    if logits.shape[1] != len(test.labels):
        return None
    # The model's loss on a window is the mean over seeds of its runs' losses (what one trained
    # run gets on average); the AUC ranks the seed-averaged logits.
    seed_losses = np.stack([stats.bce_per_window(row, test.labels) for row in logits])
    losses = seed_losses.mean(axis=0)
    horizon, segments = result.horizon, stats.segments(test.starts)
    shift = shift_of(
        study_reference(result, "test"),
        test.labels,
        split="test",
        horizon=horizon,
        starts=segments,
    )
    others = {
        name: b.test
        for name, b in result.baselines.items()
        if name != "base_rate" and b.test is not None and len(b.test) == len(test.labels)
    }
    skill = judge(
        logits.mean(axis=0),
        test.labels,
        losses=losses,
        shift=shift,
        baselines=others,
        horizon=horizon,
        starts=segments,
    )
    bces, aucs = _seeds(runs, "test", "bce"), _seeds(runs, "test", "auc")
    return FinalModel(
        study=result.name,
        budget=result.budget or result.name,
        budget_params=result.budget_params or 0,
        trial=number,
        arch=runs[0].arch,
        param_count=runs[0].param_count,
        seeds=len(runs),
        candidates=candidates,
        refit=runs[0].refit,
        val_bce=_mean([r.val.get("bce", math.nan) for r in runs]),
        test_bce=_mean(list(bces)),
        test_bce_sd=_sd(list(bces)),
        test_auc=skill.auc.estimate,
        test_auc_sd=_sd(list(aucs)),
        losses=losses,
        skill=skill,
        baselines={
            name: (float(stats.bce_per_window(b, test.labels).mean()), auc(b, test.labels))
            for name, b in others.items()
        },
        test_bce_seeds=bces,
        test_auc_seeds=aucs,
        reference=shift,
        baseline_skill={
            name: judge(b, test.labels, shift=shift, horizon=horizon, starts=segments)
            for name, b in others.items()
        },
        seed_losses=seed_losses,
    )


def final_scaling(
    models: list[FinalModel],
    *,
    horizon: int,
    n_resamples: int,
    seed: int,
    starts: np.ndarray | None,
) -> ScalingFit | None:
    """The budgets' final models compared on test: the slope per decade with the joint block
    bootstrap over the test windows, each model's seeds redrawn on every resample (one model
    per budget: each point is that model's mean over its seeds)."""
    if len({m.budget_params for m in models}) < 2 or len({len(m.losses) for m in models}) != 1:
        return None
    budgets = [
        BudgetTrials(
            m.budget,
            m.seed_losses if m.seed_losses.size else m.losses[None, :],
            np.full(max(len(m.seed_losses), 1), m.param_count),
        )
        for m in models
    ]
    fit = fit_scaling(
        budgets,
        n_resamples=n_resamples,
        seed=seed,
        min_block=horizon,
        starts=starts,
        draws="seeds",
    )
    return dataclasses.replace(fit, split="test")
