"""The plan of an experiment: per study its windows and compute, per horizon what its scaling
fit could detect on validation and on test (`power`), from the spec, the dataset it names and,
when the storage holds them, the trials of a pilot run of the same experiment."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finscale.errors import DataError
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
from finscale.plan.power import (
    DEFAULT_SEED_LUCK,
    DEFAULT_TRIAL_LUCK,
    DEFAULT_WINDOW_SD,
    Design,
    WindowNoise,
    assumed_dependence,
    detectable,
    report_detectable,
    true_slopes,
    window_dependence,
)
from finscale.spec import StudySpec
from finscale.spec.distributions import Categorical, Distribution, IntRange, LogUniform, Uniform

# The reference run: the research system's Phase 6A search (reference §8.1), each budget's mean
# best validation BCE over its three horizons; least squares on log10 of the budgets.
REFERENCE_MEANS = {2e6: 0.3067, 2e7: 0.3377, 2e8: 0.3574, 2e9: 0.3716}
REFERENCE_NAME = "the research system's Phase 6A search, validation BCE, 2M → 2B"


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
    window_sd: float = DEFAULT_WINDOW_SD
    gpu: str | None = None  # None: the spec's node selector's card, else DEFAULT_GPU
    gpu_tflops: float | None = None  # None: the card's dense bf16 peak
    mfu: float = DEFAULT_MFU
    cpu_gflops: float = math.nan  # the measured (or given) CPU rate
    cpu_measured: bool = True
    windows: tuple[int, int, int] | None = None  # train, val, test when the data is not built


@dataclass(frozen=True)
class Pilot:
    """A pilot run's trials of one horizon: their values' pooled spread within budgets."""

    sd: float  # √(Σ (value − budget mean)² / df)
    df: int
    studies: int


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
    notes: tuple[str, ...] = field(default=())

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
    """The card the spec's node selector names, when it is one of `GPU_PEAK_TFLOPS`."""
    for label in spec.resources.node_selector.values():
        for card in GPU_PEAK_TFLOPS:
            if card.lower() in label.lower():
                return card
    return None


@dataclass(frozen=True)
class _Windows:
    """A horizon's split: counts, and each evaluated split's window dependence."""

    counts: tuple[int, int, int]  # train, val, test
    dependence: Mapping[str, tuple[int, float, float]]  # split → lag, ratio, long-run ratio
    source: str
    num_features: int


def _measured(spec: StudySpec, data_dir: Path) -> _Windows:
    from finscale.hpo.inputs import load_study_data
    from finscale.report.hac import segments

    data = load_study_data(spec, data_dir)
    splits, labels = data.prepared.splits, data.prepared.windows.labels
    dependence = {
        name: window_dependence(labels[idx], horizon=spec.horizon, starts=segments(idx))
        for name, idx in (("val", splits.val), ("test", splits.test))
        if len(idx) > 2
    }
    return _Windows(
        counts=(len(splits.train), len(splits.val), len(splits.test)),
        dependence=dependence,
        source=f"dataset {spec.data.dataset} in {data_dir}: windows counted, their labels' "
        "autocorrelation measured",
        num_features=data.num_features,
    )


def _assumed(spec: StudySpec, counts: tuple[int, int, int]) -> _Windows:
    from finscale.tiers import dataset_kind

    try:
        num_features = dataset_kind(spec.data.dataset).num_features
    except ValueError:
        raise DataError(
            f"dataset {spec.data.dataset}: its kind does not say how many features it has; "
            "build it to plan"
        ) from None
    dependence = {
        name: assumed_dependence(n, spec.horizon)
        for name, n in (("val", counts[1]), ("test", counts[2]))
        if n > 2
    }
    return _Windows(
        counts=counts,
        dependence=dependence,
        source=f"assumed (--windows {counts[0]},{counts[1]},{counts[2]}: dataset "
        f"{spec.data.dataset} not built): labels as dependent as the S&P 500 sample's",
        num_features=num_features,
    )


def horizon_windows(
    spec: StudySpec, data_dir: Path, *, assumed: tuple[int, int, int] | None
) -> _Windows:
    """The split of a horizon's studies: from the dataset when it is built, else from the
    assumed counts.

    Raises:
        DataError: the dataset is not built (the message says how to build it, or how to plan
            on assumed counts), or a split is too small.
    """
    from finscale.data.manifest import find_dataset

    try:
        find_dataset(data_dir, spec.data.dataset, sha256=spec.data.sha256)
    except DataError as e:
        if assumed is not None:
            return _assumed(spec, assumed)
        raise DataError(
            f"{e}. The plan counts the windows of {spec.data.dataset} and measures their labels' "
            "autocorrelation; build it first, or pass --windows TRAIN,VAL,TEST to plan on "
            "assumed counts (labels then taken as dependent as the S&P 500 sample's)"
        ) from None
    return _measured(spec, data_dir)


def _split_plan(
    split: str,
    *,
    log10_params: Sequence[float],
    runs: Sequence[int],
    draws: str,
    luck: float,
    luck_from: str,
    n: int,
    dependence: tuple[int, float, float],
    options: PlanOptions,
    source: str,
) -> SplitPlan:
    lag, ratio, long_run = dependence
    window = WindowNoise(n, lag, ratio, long_run, options.window_sd, source)
    design = Design(
        tuple(log10_params),
        tuple(runs),
        "trials" if draws == "trials" else "seeds",
        luck,
        window,
    )
    return SplitPlan(
        split=split,
        window=window,
        runs=tuple(runs),
        m=design.m,
        luck=luck,
        luck_from=luck_from,
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


def _grid(spec: StudySpec, num_features: int) -> tuple[list[Arch], float]:
    from finscale.hpo.inputs import study_grid

    grid = study_grid(spec, num_features=num_features)
    return grid, float(np.exp(np.mean(np.log([a.param_count for a in grid]))))


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
    gpu = options.gpu or card_of(studies[0]) or DEFAULT_GPU
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
        train, val, test = win.counts
        sizes = []
        for s in group:
            grid, params = _grid(s, win.num_features)
            sizes.append(math.log10(params))
            shape = Shape(
                win.num_features, s.model.context_length, s.model.patch_length, s.model.stride
            )
            cost = study_cost(
                grid,
                shape,
                train_windows=train,
                val_windows=val,
                test_windows=test,
                epochs=mean_value(s.training.value("epochs")),
                batch_size=max(1, round(mean_value(s.training.value("batch_size")))),
                n_trials=s.n_trials,
                eval_runs=options.top_k * options.seeds if test else 0,
            )
            study_plans.append(
                StudyPlan(
                    name=s.name,
                    budget=s.budget,
                    horizon=horizon,
                    params=params,
                    n_archs=len(grid),
                    cost=cost,
                    gpu_hours=hours(cost.total, peak_flops=tflops * 1e12, mfu=options.mfu),
                    cpu_hours=hours(cost.total, peak_flops=options.cpu_gflops * 1e9,
                                    mfu=options.mfu),
                )
            )  # fmt: skip
        validation = test_plan = None
        if len(group) >= 2 and "val" in win.dependence:
            window = WindowNoise(val, *win.dependence["val"], options.window_sd, win.source)
            luck, luck_from = _trial_luck(options, (pilots or {}).get(horizon), window)
            validation = _split_plan(
                "validation",
                log10_params=sizes,
                runs=[s.n_trials for s in group],
                draws="trials",
                luck=luck,
                luck_from=luck_from,
                n=val,
                dependence=win.dependence["val"],
                options=options,
                source=win.source,
            )
            if "test" in win.dependence:
                test_plan = _split_plan(
                    "test",
                    log10_params=sizes,
                    runs=[options.seeds] * len(group),
                    draws="seeds",
                    luck=options.seed_luck,
                    luck_from="default (the golden storage's seeds)",
                    n=test,
                    dependence=win.dependence["test"],
                    options=options,
                    source=win.source,
                )
        horizon_plans.append(
            HorizonPlan(
                horizon=horizon,
                studies=tuple(s.name for s in group),
                decades=max(sizes) - min(sizes),
                validation=validation,
                test=test_plan,
                windows_from=win.source,
            )
        )
    return Plan(
        spec=spec_path,
        studies=tuple(study_plans),
        horizons=tuple(horizon_plans),
        options=options,
        gpu=gpu,
        gpu_tflops=tflops,
    )
