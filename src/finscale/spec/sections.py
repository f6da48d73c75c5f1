"""The sections of a study that are neither training nor resources: data, split, model,
architecture, stopping, objective, sampler and pruner."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field, ValidationInfo, computed_field, field_validator, model_validator

from finscale import defaults
from finscale.spec.base import SpecModel, shorten

# The largest value of each architecture dimension, and the most architectures a space holds
# (every one is counted when a budget's grid is built).
_MOST = {
    "d_model": defaults.MAX_D_MODEL,
    "n_layers": defaults.MAX_LAYERS,
    "n_heads": defaults.MAX_HEADS,
    "d_ff_ratio": defaults.MAX_FF_RATIO,
}
_MOST_ARCHITECTURES = 1_000_000


class DataSpec(SpecModel):
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


class SplitSpec(SpecModel):
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
    seed: int = Field(
        default=defaults.SPLIT_SEED,
        ge=0,
        le=defaults.MAX_SEED,
        description="chunks: seed of the draw.",
    )
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


class ModelSpec(SpecModel):
    """Model settings that are not searched."""

    context_length: int = Field(
        default=defaults.CONTEXT_LENGTH,
        ge=2,
        le=defaults.MAX_CONTEXT_LENGTH,
        description="Days per window.",
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


class ArchitectureSpec(SpecModel):
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
    def _positive_unique(cls, values: list[int], info: ValidationInfo) -> list[int]:
        most = _MOST[str(info.field_name)]
        if any(not 1 <= v <= most for v in values):
            shown = shorten(values)
            raise ValueError(f"values must be from 1 to {most:,}, got {shown}")
        if len(set(values)) != len(values):
            raise ValueError(f"values must be unique, got {shorten(values)}")
        return values

    @model_validator(mode="after")
    def _searchable(self) -> ArchitectureSpec:
        size = len(self.d_model) * len(self.n_layers) * len(self.n_heads) * len(self.d_ff_ratio)
        if size > _MOST_ARCHITECTURES:
            raise ValueError(
                f"the space holds {size:,} architectures (d_model × n_layers × n_heads × "
                f"d_ff_ratio); at most {_MOST_ARCHITECTURES:,} are searched"
            )
        return self


class EarlyStoppingSpec(SpecModel):
    """When a trial's training stops (on the objective's metric)."""

    patience: int = Field(
        default=defaults.PATIENCE, ge=1, le=1_000_000, description="Epochs without improvement."
    )
    min_delta: float = Field(
        default=defaults.MIN_DELTA, ge=0, le=1, description="Smallest change that counts."
    )


class ObjectiveSpec(SpecModel):
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


class SamplerSpec(SpecModel):
    """Optuna's sampler."""

    type: Literal["tpe", "random"] = Field(default="tpe", description="TPE or random search.")
    seed: int | None = Field(default=42, description="Base seed (each worker derives its own).")
    n_startup_trials: int = Field(default=20, ge=0, description="TPE: random trials first.")
    multivariate: bool = Field(default=True, description="TPE: model the parameters jointly.")


class PrunerSpec(SpecModel):
    """Optuna's pruner, fed the validation metric after every epoch."""

    type: Literal["median", "hyperband", "none"] = Field(default="median", description="Pruner.")
    n_startup_trials: int = Field(default=5, ge=0, description="median: trials before pruning.")
    n_warmup_steps: int = Field(default=5, ge=0, description="median: epochs before pruning.")
    min_resource: int = Field(default=5, ge=1, description="hyperband: fewest epochs.")
    reduction_factor: int = Field(default=3, ge=2, description="hyperband: keep 1/factor.")
