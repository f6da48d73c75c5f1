"""The one adapter from a study spec to the plain arguments the ML core takes.

The worker and `fit` (which trains for the objective, `finscale train` and the final
evaluation) build their data, grid, model and training configuration here, so that a trial and
its retraining cannot drift apart: what a spec means to `data/`, `model/` and `train/` is written
once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from finscale.errors import SpecError
from finscale.model import Arch, ArchSpace, build_grid, nearest_budgets, space_archs
from finscale.param_budget import short_count
from finscale.spec import PARAMS_BY_NAME, TRAINING_PARAMS, StudySpec
from finscale.train import TrainConfig, TrainingData

if TYPE_CHECKING:  # torch and pandas load with the model and the data: after a worker's first
    # reservation, when it joins a study that exists
    import torch

    from finscale.data import Dataset, Prepared, SplitSettings
    from finscale.data.manifest import ManifestEntry
    from finscale.model import PatchTSTConfig

Precision = Literal["fp32", "bf16"]


def split_settings(spec: StudySpec) -> SplitSettings:
    """The spec's split, as the data pipeline takes it."""
    from finscale.data import SplitSettings  # pandas

    s = spec.split
    return SplitSettings(
        mode=s.mode,
        val_start=s.val_start,
        test_start=s.test_start,
        n_blocks=s.n_blocks,
        val_blocks=s.val_blocks,
        test_blocks=s.test_blocks,
        seed=s.seed,
        embargo_rows=s.embargo_rows,
        min_train_windows=s.min_train_windows,
        min_val_windows=s.min_val_windows,
        min_test_windows=s.min_test_windows,
    )


@dataclass(frozen=True)
class StudyData:
    """A study's dataset and its prepared windows."""

    dataset: Dataset
    prepared: Prepared

    @property
    def num_features(self) -> int:
        return len(self.prepared.windows.columns)


def load_study_data(spec: StudySpec, data_dir: Path, *, sha256: str | None = None) -> StudyData:
    """Load the study's dataset and prepare its windows, split and normalization.

    Args:
        spec: the study.
        data_dir: the data directory (its manifest names the versions).
        sha256: the version to load; default the spec's pin, else the latest.

    Raises:
        DataError: the dataset is missing or does not match, or a split is too small.
    """
    from finscale.data import load_dataset, prepare  # pandas

    dataset = load_dataset(data_dir, spec.data.dataset, sha256=sha256 or spec.data.sha256)
    prepared = prepare(
        dataset.frame,
        context_length=spec.model.context_length,
        horizon=spec.horizon,
        threshold=spec.data.threshold,
        target=spec.data.target,
        split=split_settings(spec),
        lookback_rows=dataset.entry.lookback_rows,
        normalize=spec.model.normalize,
    )
    return StudyData(dataset=dataset, prepared=prepared)


def feature_count(entry: ManifestEntry) -> int:
    """How many features a dataset's windows hold (every column but `Date`), read from its
    manifest entry without loading the rows."""
    return len(entry.columns) - 1


def check_study_inputs(spec: StudySpec, data_dir: Path) -> None:
    """What a study needs before anything of it is created or started, checked without loading
    the rows: its dataset registered and its file present, and a grid that is not empty.
    `join_study` checks the same for the study it joins; `finscale run` checks every study of a
    spec first, and a pod before it starts its processes.

    Raises:
        DataError: the dataset (or the version the spec pins) is not there.
        SpecError: no architecture of the space lies within the tolerance of the budget.
    """
    from finscale.data.manifest import find_dataset

    entry = find_dataset(data_dir, spec.data.dataset, sha256=spec.data.sha256)
    study_grid(spec, num_features=feature_count(entry))


def training_data(spec: StudySpec, prepared: Prepared) -> TrainingData:
    """What the trainer reads: features, labels, and the training and validation windows."""
    return TrainingData(
        features=prepared.features,
        labels=prepared.windows.labels,
        context_length=spec.model.context_length,
        train=prepared.splits.train,
        val=prepared.splits.val,
    )


def _space_options(spec: StudySpec) -> dict[str, Any]:
    a, m = spec.architecture, spec.model
    return {
        "space": ArchSpace(
            tuple(a.d_model), tuple(a.n_layers), tuple(a.n_heads), tuple(a.d_ff_ratio)
        ),
        "context_length": m.context_length,
        "patch_length": m.patch_length,
        "stride": m.stride,
        "revin": m.revin,
    }


def _why_empty(spec: StudySpec, *, num_features: int) -> str:
    """Why a study's budget has no architecture: what the space spans and the nearest budgets
    that have some."""
    tolerance = spec.architecture.tolerance
    everything = space_archs(num_features=num_features, **_space_options(spec))
    if not everything:
        return (
            f"budget {spec.budget}: the search space has no architecture at all (every d_model "
            "is indivisible by every n_heads); change architecture.d_model or n_heads"
        )
    nearest = nearest_budgets(spec.budget_params, everything, tolerance=tolerance)
    return (
        f"budget {spec.budget}: no architecture of the search space has {spec.budget} "
        f"± {tolerance:.0%} parameters with {num_features} features (the space spans "
        f"{short_count(everything[0].param_count)} to {short_count(everything[-1].param_count)}); "
        f"nearest budgets with architectures: {' and '.join(nearest)}; or widen "
        "architecture.d_model, n_layers, d_ff_ratio or tolerance"
    )


def study_grid(spec: StudySpec, *, num_features: int) -> list[Arch]:
    """The architecture grid of a study's budget.

    Raises:
        SpecError: no architecture of the space lies within the tolerance of the budget (the
            message names the nearest budgets that have some).
    """
    grid = build_grid(
        spec.budget_params,
        num_features=num_features,
        tolerance=spec.architecture.tolerance,
        **_space_options(spec),
    )
    if not grid:
        raise SpecError(f"study {spec.name}: {_why_empty(spec, num_features=num_features)}")
    return grid


def resolve_precision(spec: StudySpec, device: torch.device) -> Precision:
    """`auto`: bf16 autocast on CUDA, fp32 on the CPU (where bf16 is slower)."""
    if spec.training.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return spec.training.precision


def typical_params(spec: StudySpec) -> dict[str, float | int]:
    """Every training parameter at its fixed or middle value."""
    return spec.training.typical()


def check_params(params: Mapping[str, Any], *, where: str) -> dict[str, float | int]:
    """Training parameters by name, each known, in its allowed range and of its kind.

    Raises:
        SpecError: an unknown name, a missing parameter, or a value out of range (names it).
    """
    unknown = sorted(set(params) - set(PARAMS_BY_NAME))
    if unknown:
        raise SpecError(
            f"{where}: unknown training parameter {unknown[0]!r}; known: {sorted(PARAMS_BY_NAME)}"
        )
    checked: dict[str, float | int] = {}
    for p in TRAINING_PARAMS:
        if p.name not in params:
            raise SpecError(f"{where}: training parameter {p.name!r} is missing")
        value = params[p.name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"{where}: {p.name} must be a number, got {value!r}")
        if not p.low <= value < p.high or (p.whole and not float(value).is_integer()):
            kind = "a whole number " if p.whole else ""
            raise SpecError(f"{where}: {p.name}={value!r} is not {kind}in [{p.low}, {p.high})")
        checked[p.name] = p.cast(value)
    return checked


def model_config(
    spec: StudySpec, arch: Arch, params: Mapping[str, Any], *, num_features: int
) -> PatchTSTConfig:
    """The model of an architecture, with the spec's fixed settings and the trial's
    model-side training parameters (dropout)."""
    from finscale.model import PatchTSTConfig  # torch, only where a model is built

    sampled = {p.name: p.cast(params[p.name]) for p in TRAINING_PARAMS if p.config == "model"}
    return PatchTSTConfig(
        num_features=num_features,
        context_length=spec.model.context_length,
        patch_length=spec.model.patch_length,
        stride=spec.model.stride,
        revin=spec.model.revin,
        attention_dropout=spec.model.attention_dropout,
        head_dropout=spec.model.head_dropout,
        **sampled,  # type: ignore[arg-type]
        **arch.dims(),
    )


def train_config(
    spec: StudySpec,
    params: Mapping[str, Any],
    *,
    micro_batch: int | None,
    seed: int,
    device: torch.device,
    precision: Precision,
) -> TrainConfig:
    """How a trial trains: its training-side parameters and the spec's fixed settings."""
    sampled = {p.name: p.cast(params[p.name]) for p in TRAINING_PARAMS if p.config == "train"}
    return TrainConfig(
        **sampled,  # type: ignore[arg-type]
        min_lr_ratio=spec.training.min_lr_ratio,
        micro_batch=micro_batch,
        grad_clip=spec.training.grad_clip,
        pos_weight=spec.training.pos_weight,
        metric=spec.objective.metric,
        patience=spec.early_stopping.patience,
        min_delta=spec.early_stopping.min_delta,
        seed=seed,
        device=str(device),
        precision=precision,
        compile=spec.training.compile,
    )


def trial_seed(spec: StudySpec, number: int) -> int:
    """The training seed of trial `number`: from the spec's seed, the study's name and the
    trial number, so that studies of one experiment never share their random streams and a
    stored trial can be retrained exactly. Stored with the trial as the `seed` attribute."""
    key = f"train:{spec.sampler.seed}:{spec.name}:{number}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") & 0x7FFFFFFF
