"""Search-space distributions: what a searched training parameter may take."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from finscale.spec.base import SpecModel


class LogUniform(SpecModel):
    """A float sampled uniformly on a log scale."""

    type: Literal["log_uniform"]
    low: float = Field(gt=0, description="Smallest value (positive).")
    high: float = Field(gt=0, description="Largest value.")

    @model_validator(mode="after")
    def _ordered(self) -> LogUniform:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class Uniform(SpecModel):
    """A float sampled uniformly."""

    type: Literal["uniform"]
    low: float = Field(description="Smallest value.")
    high: float = Field(description="Largest value.")

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class IntRange(SpecModel):
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


class Categorical(SpecModel):
    """One of a list of values."""

    type: Literal["categorical"]
    choices: list[int | float] = Field(min_length=1, description="The values to choose from.")


Distribution = Annotated[LogUniform | Uniform | IntRange | Categorical, Field(discriminator="type")]


def bounds(value: float | Distribution) -> list[float]:
    """Every value a fixed number or a distribution can take at its edges (for range checks)."""
    if isinstance(value, Categorical):
        return list(value.choices)
    if isinstance(value, LogUniform | Uniform | IntRange):
        return [value.low, value.high]
    return [value]


def middle(value: float | Distribution) -> float:
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
