"""The training parameters a study may search (one table), and the training section."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import Field, create_model, model_validator

from finscale.spec.base import SpecModel
from finscale.spec.distributions import (
    Categorical,
    Distribution,
    LogUniform,
    Uniform,
    bounds,
    middle,
)


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
    _SearchableTraining = SpecModel
else:
    # One field per row of TRAINING_PARAMS: a number fixes the parameter, a distribution
    # searches it.
    _SearchableTraining = create_model(
        "_SearchableTraining",
        __base__=SpecModel,
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
            for v in bounds(self.value(p.name)):
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
        return {p.name: p.cast(middle(self.value(p.name))) for p in TRAINING_PARAMS}

    def upper(self, name: str) -> float:
        """The largest value a training parameter can take."""
        return max(bounds(self.value(name)))
