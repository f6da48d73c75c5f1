"""Typed experiment and study specs.

An `ExperimentSpec` (one YAML file) holds the settings shared by its studies and a matrix of
budgets × horizons; `expand()` turns it into one `StudySpec` per cell, named
`<experiment>-<budget>-h<horizon>` (e.g. `phase6a-2m-h1`). A study spec says *what* is searched;
where and how a process runs is `Settings`' business.

Every model forbids unknown keys and is frozen: a typo in the YAML is an error, never a silent
default. A bad file fails when it is loaded, with the file, the field path and the value.

This module imports no torch, optuna or kubernetes.
"""

from __future__ import annotations

import hashlib
import json
import re
import typing
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    create_model,
    field_validator,
    model_validator,
)

from finscale import defaults
from finscale.errors import SpecError
from finscale.param_budget import parse_budget
from finscale.quantity import parse_quantity

# Kubernetes object names (Job, ConfigMap) and label values: DNS-1123, at most 63 characters.
NAME_LIMIT = 63
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _kinds(annotation: Any) -> set[Any]:
    """The leaf types a field's annotation accepts (`int | None` → {int, NoneType})."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return {type(v) for v in typing.get_args(annotation)}
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _kinds(args[0])
    if args:
        return set().union(*(_kinds(a) for a in args))
    return {annotation}


def _check_leaves(name: str, kinds: set[Any], value: Any) -> None:
    plain = {k for k in kinds if not (isinstance(k, type) and issubclass(k, BaseModel))}
    numbers_only = bool(plain) and plain <= {int, float}
    wanted = "an integer" if plain == {int} else "a number"
    for leaf in value if isinstance(value, list) else [value]:
        if isinstance(leaf, bool) and bool not in kinds:
            raise ValueError(f"{name}: expected {wanted}, got the boolean {leaf}")
        if isinstance(leaf, str) and numbers_only:
            raise ValueError(f"{name}: expected {wanted}, got the string {leaf!r}")
        if isinstance(leaf, float) and plain == {int}:
            raise ValueError(f"{name}: expected an integer, got {leaf}")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_coercion(cls, data: Any) -> Any:
        """Numbers are numbers: `true` is no count, `"3"` and `3.5` are no integer (pydantic
        would read `n_trials: true` as 1)."""
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            if field is not None:
                _check_leaves(name, _kinds(field.annotation) - {type(None)}, value)
        return data


# --- search-space distributions ---


class LogUniform(_Spec):
    """A float sampled uniformly on a log scale."""

    type: Literal["log_uniform"]
    low: float = Field(gt=0, description="Smallest value (positive).")
    high: float = Field(gt=0, description="Largest value.")

    @model_validator(mode="after")
    def _ordered(self) -> LogUniform:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class Uniform(_Spec):
    """A float sampled uniformly."""

    type: Literal["uniform"]
    low: float = Field(description="Smallest value.")
    high: float = Field(description="Largest value.")

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class IntRange(_Spec):
    """An integer from low to high in steps of `step`."""

    type: Literal["int"]
    low: int = Field(description="Smallest value.")
    high: int = Field(
        description="Largest value (reached when (high - low) is a multiple of step)."
    )
    step: int = Field(default=1, ge=1, description="Distance between values.")

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class Categorical(_Spec):
    """One of a list of values."""

    type: Literal["categorical"]
    choices: list[int | float] = Field(min_length=1, description="The values to choose from.")


Distribution = Annotated[LogUniform | Uniform | IntRange | Categorical, Field(discriminator="type")]


def _bounds(value: float | Distribution) -> list[float]:
    """Every value a fixed number or a distribution can take at its edges (for range checks)."""
    if isinstance(value, Categorical):
        return list(value.choices)
    if isinstance(value, LogUniform | Uniform | IntRange):
        return [value.low, value.high]
    return [value]


# --- the parts of a study ---


class DataSpec(_Spec):
    """Which dataset and which label."""

    dataset: str = Field(
        description="Dataset name in the data manifest (e.g. SPY.dataset.a25).",
        pattern=r"^[A-Za-z0-9-]+\.dataset\.[a-z0-9]+$",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{8,64}$",
        description="Pin a dataset version (digest or a prefix of 8+); the latest if unset.",
    )
    threshold: float = Field(
        default=defaults.THRESHOLD,
        ge=0,
        lt=1,
        description="Rise over today's close that makes a positive label.",
    )
    target: Literal["close", "high"] = Field(
        default="close", description="Which future price must reach the threshold: close or high."
    )


class SplitSpec(_Spec):
    """How windows are split into training, validation and test (see finscale.data.windows)."""

    mode: Literal["chronological", "chunks"] = Field(
        default="chronological", description="Dates cut the series, or seeded blocks do."
    )
    val_start: date | None = Field(
        default=None,
        description=f"chronological: first validation day (default: {defaults.VAL_FRACTION:.0%} "
        "of rows).",
    )
    test_start: date | None = Field(
        default=None,
        description=f"chronological: first test day (default: {defaults.TEST_FRACTION:.0%} of "
        "rows).",
    )
    n_blocks: int = Field(
        default=defaults.N_BLOCKS, ge=2, description="chunks: equal blocks the rows are cut into."
    )
    val_blocks: int = Field(
        default=defaults.VAL_BLOCKS, ge=1, description="chunks: blocks drawn for validation."
    )
    test_blocks: int = Field(
        default=defaults.TEST_BLOCKS, ge=0, description="chunks: blocks drawn for test."
    )
    seed: int = Field(default=defaults.SPLIT_SEED, description="chunks: seed of the draw.")
    embargo_rows: int | None = Field(
        default=None,
        ge=0,
        description="Rows after a val/test region kept from training "
        "(default: the dataset's feature lookback).",
    )
    min_train_windows: int = Field(
        default=defaults.MIN_WINDOWS, ge=1, description="Fewest training windows."
    )
    min_val_windows: int = Field(
        default=defaults.MIN_WINDOWS, ge=1, description="Fewest validation windows."
    )
    min_test_windows: int = Field(
        default=defaults.MIN_WINDOWS, ge=1, description="Fewest test windows."
    )

    @model_validator(mode="after")
    def _consistent(self) -> SplitSpec:
        if self.val_start and self.test_start and self.test_start <= self.val_start:
            raise ValueError(
                f"test_start ({self.test_start}) must come after val_start ({self.val_start})"
            )
        if self.mode == "chunks" and self.val_blocks + self.test_blocks >= self.n_blocks:
            raise ValueError(
                f"val_blocks ({self.val_blocks}) + test_blocks ({self.test_blocks}) must be fewer "
                f"than n_blocks ({self.n_blocks})"
            )
        return self


class ModelSpec(_Spec):
    """Model settings that are not searched."""

    context_length: int = Field(
        default=defaults.CONTEXT_LENGTH, ge=2, description="Days per window."
    )
    patch_length: int = Field(default=defaults.PATCH_LENGTH, ge=1, description="Days per patch.")
    stride: int = Field(default=defaults.STRIDE, ge=1, description="Days between patch starts.")
    revin: bool = Field(default=False, description="Per-window instance normalization.")
    normalize: bool = Field(default=True, description="Z-score features with training statistics.")
    attention_dropout: float = Field(
        default=0.0, ge=0, lt=1, description="Dropout on attention weights."
    )
    head_dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout before the head.")

    @model_validator(mode="after")
    def _patches_fit(self) -> ModelSpec:
        if (
            self.patch_length > self.context_length
            or (self.context_length - self.patch_length) % self.stride
        ):
            raise ValueError(
                f"patches of {self.patch_length} days every {self.stride} must tile a context of "
                f"{self.context_length} days"
            )
        return self


class ArchitectureSpec(_Spec):
    """The architecture search space; the study's budget picks the grid from it."""

    d_model: list[int] = Field(
        default=[64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048],
        min_length=1,
        description="Widths.",
    )
    n_layers: list[int] = Field(
        default=[2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 180, 192, 256],
        min_length=1,
        description="Depths.",
    )
    n_heads: list[int] = Field(default=[2, 4, 8, 16, 32], min_length=1, description="Head counts.")
    d_ff_ratio: list[int] = Field(default=[2, 4], min_length=1, description="d_ff / d_model.")
    tolerance: float = Field(
        default=0.25, gt=0, lt=1, description="Accepted distance from the budget, as a fraction."
    )
    forced_extremes: bool = Field(
        default=True,
        description="Enqueue the grid's six extreme architectures as the first trials.",
    )

    @field_validator("d_model", "n_layers", "n_heads", "d_ff_ratio")
    @classmethod
    def _positive_unique(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values):
            raise ValueError(f"values must be positive, got {values}")
        if len(set(values)) != len(values):
            raise ValueError(f"values must be unique, got {values}")
        return values


class TrainingParam(NamedTuple):
    """A training parameter a study may search: the one list that the spec, the objective,
    replay and the CLI read. Adding a parameter means a row here and its use in the ML core."""

    name: str  # one spelling from YAML to storage and to the ML core's config field
    whole: bool  # integers only
    low: float  # lowest allowed value
    high: float  # first value not allowed
    default: float | Distribution
    description: str
    config: Literal["model", "train"]  # the config it sets: PatchTSTConfig or TrainConfig

    def cast(self, value: float) -> float | int:
        """The value as the ML core takes it: an int for whole parameters."""
        return int(value) if self.whole else float(value)


TRAINING_PARAMS: tuple[TrainingParam, ...] = (
    TrainingParam(
        "learning_rate", False, 1e-12, 1.0,
        LogUniform(type="log_uniform", low=1e-4, high=1e-3), "Peak learning rate.", "train",
    ),
    TrainingParam(
        "weight_decay", False, 0.0, 1e3,
        LogUniform(type="log_uniform", low=1e-4, high=5e-3), "AdamW weight decay.", "train",
    ),
    TrainingParam(
        "warmup_steps", True, 0, 1e9,
        Categorical(type="categorical", choices=[100, 200, 300, 500]),
        "Optimizer steps of linear warm-up.", "train",
    ),
    TrainingParam(
        "dropout", False, 0.0, 1.0,
        Uniform(type="uniform", low=0.1, high=0.3), "Dropout probability.", "model",
    ),
    TrainingParam(
        "epochs", True, 1, 1e6,
        Categorical(type="categorical", choices=[50, 75, 100]), "Most epochs.", "train",
    ),
    TrainingParam(
        "batch_size", True, 1, 1e7, 256,
        "Windows per optimizer step (micro-batches are planned to fit).", "train",
    ),
)  # fmt: skip
PARAMS_BY_NAME = {p.name: p for p in TRAINING_PARAMS}


def _param_field(p: TrainingParam) -> Any:
    kind = (int if p.whole else float) | Distribution
    return (kind, Field(default=p.default, description=p.description))


if TYPE_CHECKING:
    _SearchableTraining = _Spec
else:
    # One field per row of TRAINING_PARAMS: a number fixes the parameter, a distribution
    # searches it.
    _SearchableTraining = create_model(
        "_SearchableTraining",
        __base__=_Spec,
        **{p.name: _param_field(p) for p in TRAINING_PARAMS},
    )


class TrainingSpec(_SearchableTraining):
    """Training parameters: a number fixes one, a distribution searches it (the fields of
    `TRAINING_PARAMS`), and the settings that are never searched."""

    grad_clip: float | None = Field(
        default=1.0, gt=0, description="Max gradient norm; none if null."
    )
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="Cosine floor / peak.")
    pos_weight: float | None = Field(default=None, gt=0, description="Weight of positive windows.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto", description="auto: bf16 autocast on CUDA, fp32 on the CPU."
    )
    compile: bool = Field(default=False, description="torch.compile the model.")

    @model_validator(mode="after")
    def _ranges(self) -> TrainingSpec:
        for p in TRAINING_PARAMS:
            for v in _bounds(self.value(p.name)):
                if not (p.low <= v < p.high) or (p.whole and not float(v).is_integer()):
                    kind = "a whole number " if p.whole else ""
                    raise ValueError(f"{p.name}: {v} is not {kind}in [{p.low}, {p.high})")
        return self

    def value(self, name: str) -> float | Distribution:
        """The spec's value of a training parameter: a number, or its distribution."""
        value: float | Distribution = getattr(self, name)
        return value

    def searched(self) -> dict[str, Distribution]:
        """The parameters with a distribution, by name."""
        return {
            p.name: v
            for p in TRAINING_PARAMS
            if not isinstance(v := self.value(p.name), int | float)
        }

    def fixed(self) -> dict[str, float | int]:
        """The parameters fixed to one value, by name."""
        return {
            p.name: p.cast(v)
            for p in TRAINING_PARAMS
            if isinstance(v := self.value(p.name), int | float)
        }

    def typical(self) -> dict[str, float | int]:
        """Every parameter at a middle value: the fixed value, the (log-)midpoint of a range,
        or the middle choice. What `finscale train` uses when not told."""
        return {p.name: p.cast(_middle(self.value(p.name))) for p in TRAINING_PARAMS}

    def upper(self, name: str) -> float:
        """The largest value a training parameter can take."""
        return max(_bounds(self.value(name)))


def _middle(value: float | Distribution) -> float:
    if isinstance(value, LogUniform):
        return float((value.low * value.high) ** 0.5)
    if isinstance(value, Uniform):
        return (value.low + value.high) / 2
    if isinstance(value, IntRange):
        steps = (value.high - value.low) // value.step
        return value.low + value.step * (steps // 2)
    if isinstance(value, Categorical):
        return sorted(value.choices)[len(value.choices) // 2]
    return float(value)


class EarlyStoppingSpec(_Spec):
    """When a trial's training stops (on the objective's metric)."""

    patience: int = Field(
        default=defaults.PATIENCE, ge=1, description="Epochs without improvement."
    )
    min_delta: float = Field(
        default=defaults.MIN_DELTA, ge=0, description="Smallest change that counts."
    )


class ObjectiveSpec(_Spec):
    """What a trial reports: its best epoch's validation metric. The direction follows from
    the metric (BCE is minimized, AUC maximized) and is not set."""

    metric: Literal["val_bce", "val_auc"] = Field(default="val_bce", description="The metric.")

    @model_validator(mode="before")
    @classmethod
    def _derived_direction(cls, data: Any) -> Any:
        # Specs written before the direction was derived carry it; accept it when it agrees.
        if isinstance(data, dict) and "direction" in data:
            data = dict(data)
            given = data.pop("direction")
            wanted = _DIRECTIONS[data.get("metric", "val_bce")]
            if given != wanted:
                raise ValueError(
                    f"direction: {data.get('metric', 'val_bce')} is {wanted}d, not {given}d; "
                    "the direction follows from the metric (leave it out)"
                )
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        """minimize for val_bce, maximize for val_auc."""
        return _DIRECTIONS[self.metric]


_DIRECTIONS: dict[str, Literal["minimize", "maximize"]] = {
    "val_bce": "minimize",
    "val_auc": "maximize",
}


class SamplerSpec(_Spec):
    """Optuna's sampler."""

    type: Literal["tpe", "random"] = Field(default="tpe", description="TPE or random search.")
    seed: int | None = Field(default=42, description="Base seed (each worker derives its own).")
    n_startup_trials: int = Field(default=20, ge=0, description="TPE: random trials first.")
    multivariate: bool = Field(default=True, description="TPE: model the parameters jointly.")


class PrunerSpec(_Spec):
    """Optuna's pruner, fed the validation metric after every epoch."""

    type: Literal["median", "hyperband", "none"] = Field(default="median", description="Pruner.")
    n_startup_trials: int = Field(default=5, ge=0, description="median: trials before pruning.")
    n_warmup_steps: int = Field(default=5, ge=0, description="median: epochs before pruning.")
    min_resource: int = Field(default=5, ge=1, description="hyperband: fewest epochs.")
    reduction_factor: int = Field(default=3, ge=2, description="hyperband: keep 1/factor.")


class Toleration(_Spec):
    """A Kubernetes toleration."""

    key: str = Field(description="Taint key.")
    operator: Literal["Equal", "Exists"] = Field(default="Exists", description="Match rule.")
    value: str | None = Field(default=None, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect (all when unset)."
    )


def _positive_quantity(text: str) -> str:
    try:
        value = parse_quantity(text)
    except ValueError as e:
        raise ValueError(str(e)) from None
    if value <= 0:
        raise ValueError(f"{text!r} must be positive")
    return text


Quantity = Annotated[str, AfterValidator(_positive_quantity)]


class ResourcesSpec(_Spec):
    """What each worker pod asks of the cluster (Kubernetes quantities stay strings)."""

    image: str = Field(
        default="ghcr.io/finscale/finscale-worker:0.1.0",
        description="Worker image, by tag or digest.",
        pattern=r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$",
    )
    cpu_request: Quantity = Field(default="4", description="CPU request.")
    cpu_limit: Quantity | None = Field(default=None, description="CPU limit.")
    memory_request: Quantity = Field(default="16Gi", description="Memory request.")
    memory_limit: Quantity = Field(default="16Gi", description="Memory limit.")
    gpus: int = Field(default=1, ge=0, description="nvidia.com/gpu per pod (0 for CPU workers).")
    shm_size: Quantity = Field(default="2Gi", description="/dev/shm size.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints tolerated.")
    priority_class: str | None = Field(default=None, description="PriorityClass name.")
    active_deadline_s: int | None = Field(default=None, ge=1, description="Job time limit.")
    ttl_after_finished_s: int | None = Field(default=86400, ge=0, description="Job clean-up delay.")
    backoff_limit_per_index: int = Field(default=3, ge=0, description="Retries of a failed pod.")
    storage_deadline_s: int = Field(
        default=300,
        ge=1,
        le=86400,
        description="How long the pods retry a storage call before exit 3 (their "
        "FINSCALE_STORAGE_DEADLINE_S): more than a PostgreSQL restart or failover takes.",
    )
    trials_per_pod: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes per pod sharing its device: each plans its memory within "
        "its share of the device (and the pod's CPUs are divided among them).",
    )
    queue: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Kueue LocalQueue of the Jobs: labels them kueue.x-k8s.io/queue-name and "
        "creates them suspended, for Kueue to admit.",
    )

    @model_validator(mode="after")
    def _request_within_limit(self) -> ResourcesSpec:
        if parse_quantity(self.memory_request) > parse_quantity(self.memory_limit):
            raise ValueError(
                f"memory_request ({self.memory_request}) exceeds memory_limit ({self.memory_limit})"
            )
        if self.cpu_limit is not None and parse_quantity(self.cpu_request) > parse_quantity(
            self.cpu_limit
        ):
            raise ValueError(
                f"cpu_request ({self.cpu_request}) exceeds cpu_limit ({self.cpu_limit})"
            )
        return self


# --- a study, and an experiment of studies ---

# Fields that say how a study runs, not what it searches: changing them keeps the study.
_EXECUTION_FIELDS = frozenset({"n_trials", "workers", "max_retries", "resources", "description"})


class _StudyFields(_Spec):
    """Everything a study needs apart from its cell (budget, horizon) and name."""

    description: str = Field(default="", description="Free text.")
    data: DataSpec = Field(description="Dataset and label.")
    split: SplitSpec = Field(default_factory=SplitSpec, description="Train/validation/test split.")
    model: ModelSpec = Field(default_factory=ModelSpec, description="Fixed model settings.")
    architecture: ArchitectureSpec = Field(
        default_factory=ArchitectureSpec, description="Architecture search space."
    )
    training: TrainingSpec = Field(
        default_factory=TrainingSpec, description="Training search space."
    )
    early_stopping: EarlyStoppingSpec = Field(
        default_factory=EarlyStoppingSpec, description="Stopping."
    )
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec, description="Trial value.")
    sampler: SamplerSpec = Field(default_factory=SamplerSpec, description="Optuna sampler.")
    pruner: PrunerSpec = Field(default_factory=PrunerSpec, description="Optuna pruner.")
    n_trials: int = Field(
        default=50, ge=1, description="Finished trials of the study (all workers)."
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        description="Reruns, with the same parameters, of a trial whose worker died.",
    )
    workers: int = Field(default=1, ge=1, description="Worker processes or pods sharing the study.")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="Per worker pod.")


class StudySpec(_StudyFields):
    """One study: a (budget, horizon) cell of an experiment."""

    name: str = Field(description="Study name (DNS-1123): <experiment>-<budget>-h<horizon>.")
    experiment: str = Field(description="Name of the experiment the study belongs to.")
    budget: str = Field(description="Parameter budget label, e.g. 2M.")
    horizon: int = Field(ge=1, le=250, description="Days ahead that decide the label.")

    @field_validator("name")
    @classmethod
    def _dns1123(cls, name: str) -> str:
        if len(name) > NAME_LIMIT or not _DNS1123.match(name):
            raise ValueError(
                f"{name!r} is not a DNS-1123 name of at most {NAME_LIMIT} characters "
                "(lower-case letters, digits and '-', starting and ending with a letter or digit)"
            )
        return name

    @field_validator("budget")
    @classmethod
    def _budget(cls, label: str) -> str:
        parse_budget(label)
        return label

    @property
    def budget_params(self) -> int:
        return parse_budget(self.budget)

    def search_definition(self) -> dict[str, Any]:
        """The fields that define what is searched: the study fingerprint's input."""
        return self.model_dump(mode="json", exclude=set(_EXECUTION_FIELDS))

    def with_changes(self, changes: dict[str, Any]) -> StudySpec:
        """A copy with nested fields replaced (`{"split": {"val_start": …}}`), validated again.

        Raises:
            SpecError: the result is not a valid study spec.
        """
        try:
            return StudySpec.model_validate(_deep_merge(self.model_dump(), changes))
        except ValidationError as e:
            raise SpecError(_describe(e, f"study {self.name}")) from None

    def to_yaml(self) -> str:
        """The spec as YAML (what a Job's ConfigMap holds), its identity first."""
        data = self.model_dump(mode="json")
        identity = {k: data.pop(k) for k in ("name", "experiment", "budget", "horizon")}
        return yaml.safe_dump({**identity, **data}, sort_keys=False, width=100)


def fingerprint_fields(definition: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a nested definition into `a.b.c` → JSON text of the value."""
    flat: dict[str, str] = {}
    for key, value in definition.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(fingerprint_fields(value, f"{path}."))
        else:
            flat[path] = json.dumps(value, sort_keys=True)
    return flat


def fingerprint(fields: dict[str, str]) -> str:
    """sha256 of flattened fields."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class ExperimentSpec(_StudyFields):
    """Settings shared by the studies of an experiment, and its matrix of budgets × horizons."""

    name: str = Field(description="Experiment name (DNS-1123 prefix of its study names).")
    budgets: list[str] = Field(min_length=1, description="Parameter budgets, e.g. [2M, 20M].")
    horizons: list[int] = Field(min_length=1, description="Horizons in days, e.g. [1, 3, 5].")
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per budget label (e.g. 2B) or study name: fields replacing the shared ones.",
    )

    @field_validator("name")
    @classmethod
    def _dns1123(cls, name: str) -> str:
        if not _DNS1123.match(name):
            raise ValueError(f"{name!r} is not a DNS-1123 name (lower-case letters, digits, '-')")
        return name

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, labels: list[str]) -> list[str]:
        counts = [parse_budget(label) for label in labels]
        if len(set(counts)) != len(counts):
            raise ValueError(f"budgets repeat: {labels}")
        return labels

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, horizons: list[int]) -> list[int]:
        if any(h < 1 for h in horizons) or len(set(horizons)) != len(horizons):
            raise ValueError(f"horizons must be distinct positive days, got {horizons}")
        return horizons

    @model_validator(mode="after")
    def _overrides_match(self) -> ExperimentSpec:
        try:
            self._overrides()
        except SpecError as e:
            raise ValueError(str(e)) from None
        return self

    def study_name(self, budget: str, horizon: int) -> str:
        return f"{self.name}-{budget.strip().lower()}-h{horizon}"

    def expand(self) -> list[StudySpec]:
        """One study spec per (budget, horizon), budgets in order, then horizons.

        Raises:
            SpecError: an override names no budget or study, or a study fails validation.
        """
        shared = self.model_dump(exclude={"name", "budgets", "horizons", "overrides"})
        by_budget, by_study = self._overrides()
        studies = []
        for budget in self.budgets:
            label = budget.strip().upper()
            for horizon in self.horizons:
                name = self.study_name(budget, horizon)
                fields = dict(shared)
                for changes in (by_budget.get(label), by_study.get(name)):
                    if changes:
                        fields = _deep_merge(fields, changes)
                fields.update(name=name, experiment=self.name, budget=label, horizon=horizon)
                try:
                    studies.append(StudySpec.model_validate(fields))
                except ValidationError as e:
                    raise SpecError(_describe(e, f"study {name}")) from None
        return studies

    def _overrides(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The overrides by budget label and by study name. A key matches a budget the way
        budgets are parsed (`2b`, `2B` and `2000M` are one budget) or a study name in any case.

        Raises:
            SpecError: a key matches nothing, or two keys match the same budget or study.
        """
        labels = {parse_budget(b): b.strip().upper() for b in self.budgets}
        names = {self.study_name(b, h) for b in self.budgets for h in self.horizons}
        by_budget: dict[str, dict[str, Any]] = {}
        by_study: dict[str, dict[str, Any]] = {}
        for key, changes in self.overrides.items():
            target, where = key.strip().lower(), by_study
            if target not in names:
                try:
                    count = parse_budget(key)
                except ValueError:
                    count = None
                if count not in labels:
                    raise SpecError(
                        f"overrides.{key}: no budget or study of that name (budgets: "
                        f"{sorted(labels.values(), key=parse_budget)}; studies: {sorted(names)})"
                    )
                target, where = labels[count], by_budget
            if target in where:
                raise SpecError(f"overrides.{key}: a second override of {target}")
            where[target] = changes
        return by_budget, by_study

    def to_yaml(self) -> str:
        """The experiment as YAML (what the evaluation Job's ConfigMap holds), its matrix
        first; loading it gives the same studies."""
        data = self.model_dump(mode="json")
        head = {k: data.pop(k) for k in ("name", "budgets", "horizons")}
        return yaml.safe_dump({**head, **data}, sort_keys=False, width=100)

    def study(self, name: str) -> StudySpec:
        """The study of that name.

        Raises:
            SpecError: there is none (the message lists the names).
        """
        studies = self.expand()
        for study in studies:
            if study.name == name:
                return study
        names = [s.name for s in studies]
        raise SpecError(f"experiment {self.name} has no study {name!r}; its studies: {names}")


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_INTERNAL_LOC = ("tagged-union[", "function-after[", "function-before[", "function-wrap[")
_SCALAR_BRANCHES = frozenset({"float", "int", "str", "bool"})
_SCALAR_MISMATCH = frozenset({"float_type", "float_parsing", "int_type", "int_parsing"})


def _describe(error: ValidationError, where: str) -> str:
    """One line per problem: the field path, what is wrong, and the value found.

    A field that takes a number or a distribution fails both ways when given a bad
    distribution; only the distribution's complaint is kept, and pydantic's internal path
    segments are dropped (the distribution's `type` stays: it says which one).
    """
    lines = []
    problems = error.errors()
    for problem in problems:
        value = problem.get("input")
        if problem["type"] in _SCALAR_MISMATCH and isinstance(value, dict) and len(problems) > 1:
            continue
        parts = [str(p) for p in problem["loc"]]
        parts = [p for p in parts if not p.startswith(_INTERNAL_LOC) and p not in _SCALAR_BRANCHES]
        shown = (
            "" if problem["type"] == "missing" or isinstance(value, dict) else f" (got {value!r})"
        )
        lines.append(f"{where}: {'.'.join(parts) or '(top)'}: {problem['msg']}{shown}")
    return "\n".join(lines)


def load_spec(path: Path) -> ExperimentSpec | StudySpec:
    """Read an experiment spec, or a single study spec (what a Job's ConfigMap holds).

    Raises:
        SpecError: the file is missing, is not YAML, or does not validate; the message names the
            file, the field path and the value.
    """
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a folder, not a spec file") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read the spec: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of spec fields, got {type(data).__name__}")
    model: type[ExperimentSpec] | type[StudySpec] = (
        StudySpec if "budget" in data else ExperimentSpec
    )
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise SpecError(_describe(e, str(path))) from None


def load_studies(path: Path) -> list[StudySpec]:
    """Every study of a spec file: an experiment's cells, or the one study spec.

    Raises:
        SpecError: see `load_spec`.
    """
    spec = load_spec(path)
    return spec.expand() if isinstance(spec, ExperimentSpec) else [spec]


def load_study(path: Path, name: str | None = None) -> StudySpec:
    """The study `name` of a spec file (an experiment, or one study spec).

    Raises:
        SpecError: a bad file, no such study, or no name given for an experiment of several.
    """
    spec = load_spec(path)
    if isinstance(spec, StudySpec):
        if name is not None and name != spec.name:
            raise SpecError(f"{path}: holds study {spec.name!r}, not {name!r}")
        return spec
    if name is None:
        studies = spec.expand()
        if len(studies) == 1:
            return studies[0]
        raise SpecError(
            f"{path}: experiment {spec.name} has {len(studies)} studies; name one with --study"
        )
    return spec.study(name)
