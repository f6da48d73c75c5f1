"""The plan of an experiment: per study its windows and compute, per horizon what its scaling
fit could detect on validation and on test (`power`), from the spec, the dataset it names and,
when the storage holds them, the trials of a pilot run of the same experiment."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finscale.model.grid import Arch
from finscale.plan.compute import (
    DEFAULT_GPU,
    DEFAULT_MFU,
    GPU_PEAK_TFLOPS,
    Shape,
    StudyCost,
    hours,
    study_cost,
)
from finscale.plan.pilot import Pilot
from finscale.plan.power import (
    DEFAULT_SEED_LUCK,
    DEFAULT_TRIAL_LUCK,
    DEFAULT_WINDOW_SD,
    Design,
    Draws,
    WindowNoise,
    detectable,
    report_detectable,
    true_slopes,
)
from finscale.plan.windows import HorizonWindows, horizon_windows
from finscale.spec import StudySpec
from finscale.spec.distributions import Categorical, Distribution, IntRange, LogUniform, Uniform

# The reference run: the research system's Phase 6A search (reference §8.1), each budget's mean
# best validation BCE over its three horizons; least squares on log10 of the budgets.
REFERENCE_MEANS = {2e6: 0.3067, 2e7: 0.3377, 2e8: 0.3574, 2e9: 0.3716}
REFERENCE_NAME = "the research system's Phase 6A search, validation BCE, 2M → 2B"
# Where a split's window dependence comes from when a pilot measured it.
PILOT_SOURCE = "the pilot's trials"


def reference_slope() -> float:
    """The reference run's slope per decade (+0.0214: bigger was worse there)."""
    x = np.log10(list(REFERENCE_MEANS))
    return float(np.polyfit(x, list(REFERENCE_MEANS.values()), 1)[0])


@dataclass(frozen=True)
class PlanOptions:
    """What the plan assumes beyond the spec; every field is printed with the plan."""

    top_k: int = 3  # `finscale evaluate --top-k`
    seeds: int = 3  # `finscale evaluate --seeds`: runs per final model
    trial_luck: float | None = None  # None: the pilot's, else DEFAULT_TRIAL_LUCK
    seed_luck: float = DEFAULT_SEED_LUCK
    window_sd: float | None = None  # None: the pilot's, else DEFAULT_WINDOW_SD
    gpu: str | None = None  # None: the spec's node selector's card, else DEFAULT_GPU
    gpu_tflops: float | None = None  # None: the card's dense bf16 peak
    mfu: float = DEFAULT_MFU
    cpu_gflops: float = math.nan  # the measured (or given) CPU rate
    cpu_measured: bool = True
    windows: tuple[int, int, int] | None = None  # train, val, test when the data is not built


@dataclass(frozen=True)
class SplitPlan:
    """What the scaling fit on one split could detect."""

    split: str  # "validation" or "test"
    window: WindowNoise
    runs: tuple[int, ...]  # per budget: trials, or one final model's seeds
    m: int
    luck: float
    luck_from: str
    detectable: float  # BCE per decade, 80 % power, two-sided 5 %
    report_detectable: float  # what the report's own formula would state
    slope_sd: float  # SD of the slope repeated experiments would measure


@dataclass(frozen=True)
class StudyPlan:
    """One study's windows, model size and compute."""

    name: str
    budget: str
    horizon: int
    params: float  # geometric mean parameter count of its grid
    n_archs: int
    cost: StudyCost
    gpu_hours: float
    cpu_hours: float


@dataclass(frozen=True)
class HorizonPlan:
    """The studies of one horizon and what their fit could detect."""

    horizon: int
    studies: tuple[str, ...]
    decades: float  # log10 spread of the budgets' points
    validation: SplitPlan | None  # None with fewer than two budgets
    test: SplitPlan | None
    windows_from: str  # the dataset, or the assumption
    window_sd: float  # a run's own per-window BCE noise
    window_sd_from: str

    @property
    def sentence(self) -> str:
        if self.validation is None:
            return f"horizon {self.horizon}: one budget, no slope to detect"
        test = f" and ≥ {self.test.detectable:.4f} on test" if self.test is not None else ""
        return (
            f"horizon {self.horizon}: this design detects a slope of ≥ "
            f"{self.validation.detectable:.4f} BCE per decade on validation{test} with 80 % "
            f"power (two-sided 5 %); the reference run's measured slope was "
            f"{reference_slope():+.4f} per decade ({REFERENCE_NAME})"
        )


@dataclass(frozen=True)
class Plan:
    """The whole plan."""

    spec: str
    studies: tuple[StudyPlan, ...]
    horizons: tuple[HorizonPlan, ...]
    options: PlanOptions
    gpu: str
    gpu_tflops: float

    @property
    def gpu_hours(self) -> float:
        return sum(s.gpu_hours for s in self.studies)

    @property
    def cpu_hours(self) -> float:
        return sum(s.cpu_hours for s in self.studies)


def mean_value(value: float | Distribution) -> float:
    """A spec value's mean: a fixed value itself, a distribution's mean over its draws."""
    if isinstance(value, Categorical):
        return float(np.mean(value.choices))
    if isinstance(value, LogUniform):
        return (value.high - value.low) / math.log(value.high / value.low)
    if isinstance(value, Uniform):
        return (value.low + value.high) / 2
    if isinstance(value, IntRange):
        return float(np.mean(np.arange(value.low, value.high + 1, value.step)))
    return float(value)


def card_of(spec: StudySpec) -> str | None:
    """The card the spec's node selector names, when it is one of `GPU_PEAK_TFLOPS` (the plan
    takes the first a study names: phase6a's 2B studies name the H100)."""
    for label in spec.resources.node_selector.values():
        for card in GPU_PEAK_TFLOPS:
            if card.lower() in label.lower():
                return card
    return None


def _split_plan(
    split: str,
    window: WindowNoise,
    *,
    log10_params: Sequence[float],
    runs: Sequence[int],
    draws: Draws,
    luck: tuple[float, str],
) -> SplitPlan:
    design = Design(tuple(log10_params), tuple(runs), draws, luck[0], window)
    return SplitPlan(
        split=split,
        window=window,
        runs=tuple(runs),
        m=design.m,
        luck=luck[0],
        luck_from=luck[1],
        detectable=detectable(design),
        report_detectable=report_detectable(design),
        slope_sd=float(np.std(true_slopes(design))),
    )


def _trial_luck(
    options: PlanOptions, pilot: Pilot | None, window: WindowNoise
) -> tuple[float, str]:
    if options.trial_luck is not None:
        return options.trial_luck, "given"
    if pilot is not None:
        luck = math.sqrt(max(pilot.sd**2 - window.run_se**2, 0.0))
        return luck, (
            f"pilot: {pilot.studies} studies' trials spread by {pilot.sd:.4f} ({pilot.df} df), "
            f"less their window noise {window.run_se:.4f}"
        )
    return DEFAULT_TRIAL_LUCK, "default (the report's: a few thousandths of BCE)"


def _window_sd(options: PlanOptions, pilot: Pilot | None) -> tuple[float, str]:
    if options.window_sd is not None:
        return options.window_sd, "given"
    if pilot is not None and pilot.window_sd is not None:
        return pilot.window_sd, (
            f"pilot: its trials' per-window BCE less what each study's trials share and each "
            f"trial's mean, {pilot.studies} studies"
        )
    return DEFAULT_WINDOW_SD, (
        "default: the report's paired SE of 0.007 between two trials on the S&P 500 sample"
    )


def _grid(spec: StudySpec, num_features: int) -> tuple[list[Arch], float]:
    from finscale.hpo.inputs import study_grid

    grid = study_grid(spec, num_features=num_features)
    return grid, float(np.exp(np.mean(np.log([a.param_count for a in grid]))))


def _study_plan(
    spec: StudySpec, win: HorizonWindows, options: PlanOptions, *, tflops: float
) -> StudyPlan:
    grid, params = _grid(spec, win.num_features)
    m = spec.model
    train, val, test = win.counts
    cost = study_cost(
        grid,
        Shape(win.num_features, m.context_length, m.patch_length, m.stride),
        train_windows=train,
        val_windows=val,
        test_windows=test,
        epochs=mean_value(spec.training.value("epochs")),
        batch_size=max(1, round(mean_value(spec.training.value("batch_size")))),
        n_trials=spec.n_trials,
        eval_runs=options.top_k * options.seeds if test else 0,
    )
    return StudyPlan(
        name=spec.name,
        budget=spec.budget,
        horizon=spec.horizon,
        params=params,
        n_archs=len(grid),
        cost=cost,
        gpu_hours=hours(cost.total, peak_flops=tflops * 1e12, mfu=options.mfu),
        cpu_hours=hours(cost.total, peak_flops=options.cpu_gflops * 1e9, mfu=options.mfu),
    )


def _horizon_plan(
    group: Sequence[StudySpec],
    plans: Sequence[StudyPlan],
    win: HorizonWindows,
    options: PlanOptions,
    pilot: Pilot | None,
) -> HorizonPlan:
    sizes = [math.log10(p.params) for p in plans]
    sd, sd_from = _window_sd(options, pilot)
    validation = test = None
    if len(group) >= 2 and "val" in win.dependence:
        measured = pilot.dependence if pilot is not None else None
        source = PILOT_SOURCE if measured is not None else win.source
        window = WindowNoise(win.counts[1], *(measured or win.dependence["val"]), sd, source)
        trials = [s.n_trials for s in group]
        luck = _trial_luck(options, pilot, window)
        validation = _split_plan(
            "validation", window, log10_params=sizes, runs=trials, draws="trials", luck=luck
        )
        if "test" in win.dependence:
            n_test = win.counts[2]
            if measured is not None:  # a model's noise is taken to persist on test as it did
                lag, ratio, long_run = measured
                window = WindowNoise(n_test, min(lag, n_test // 3), ratio, long_run, sd, source)
            else:
                window = WindowNoise(n_test, *win.dependence["test"], sd, win.source)
            given = options.seed_luck != DEFAULT_SEED_LUCK
            luck = (options.seed_luck, "given" if given else "default (the golden storage's)")
            seeds = [options.seeds] * len(group)
            test = _split_plan(
                "test", window, log10_params=sizes, runs=seeds, draws="seeds", luck=luck
            )
    return HorizonPlan(
        horizon=group[0].horizon,
        studies=tuple(s.name for s in group),
        decades=max(sizes) - min(sizes),
        validation=validation,
        test=test,
        windows_from=win.source,
        window_sd=sd,
        window_sd_from=sd_from,
    )


def plan_studies(
    spec_path: str,
    studies: Sequence[StudySpec],
    *,
    data_dir: Path,
    options: PlanOptions,
    pilots: Mapping[int, Pilot] | None = None,
) -> Plan:
    """Plan an experiment's studies before any of them runs.

    Args:
        spec_path: the spec's name, for the output.
        studies: the studies (one experiment's budgets × horizons).
        data_dir: where the datasets are built.
        options: the assumptions (`PlanOptions`); `cpu_gflops` must be set.
        pilots: per horizon, a pilot run's trial spread (`finscale.plan.pilot`).

    Raises:
        DataError: a dataset is not built and no window counts are assumed, or a split is
            too small.
        SpecError: a budget has no architecture within its tolerance.
    """
    named = next((card for s in studies if (card := card_of(s)) is not None), None)
    gpu = options.gpu or named or DEFAULT_GPU
    if options.gpu_tflops is not None:
        tflops = options.gpu_tflops
    elif gpu in GPU_PEAK_TFLOPS:
        tflops = GPU_PEAK_TFLOPS[gpu]
    else:
        known = ", ".join(GPU_PEAK_TFLOPS)
        raise ValueError(f"GPU {gpu!r}: not one of {known}; give its peak with --gpu-tflops")
    by_horizon: dict[int, list[StudySpec]] = {}
    for s in studies:
        by_horizon.setdefault(s.horizon, []).append(s)
    study_plans: list[StudyPlan] = []
    horizon_plans: list[HorizonPlan] = []
    for horizon, group in sorted(by_horizon.items()):
        group.sort(key=lambda s: s.budget_params)
        win = horizon_windows(group[0], data_dir, assumed=options.windows)
        plans = [_study_plan(s, win, options, tflops=tflops) for s in group]
        study_plans += plans
        horizon_plans.append(_horizon_plan(group, plans, win, options, (pilots or {}).get(horizon)))
    return Plan(
        spec=spec_path,
        studies=tuple(study_plans),
        horizons=tuple(horizon_plans),
        options=options,
        gpu=gpu,
        gpu_tflops=tflops,
    )
