"""A study: the fields every study has, its cell (budget, horizon) and name, and the
fingerprint of what it searches."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from finscale import defaults
from finscale.errors import SpecError
from finscale.param_budget import parse_budget
from finscale.spec.base import DNS1123, NAME_LIMIT, SpecModel, describe_errors
from finscale.spec.resources import ResourcesSpec
from finscale.spec.sections import (
    ArchitectureSpec,
    DataSpec,
    EarlyStoppingSpec,
    ModelSpec,
    ObjectiveSpec,
    PrunerSpec,
    SamplerSpec,
    SplitSpec,
)
from finscale.spec.training import TrainingSpec

_EXECUTION_FIELDS = frozenset({"n_trials", "workers", "max_retries", "resources", "description"})


class StudyFields(SpecModel):
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
        default=50,
        ge=1,
        le=defaults.MAX_TRIALS,
        description="Finished trials of the study (all workers).",
    )
    max_retries: int = Field(
        default=2,
        ge=0,
        le=defaults.MAX_RETRIES,
        description="Reruns, with the same parameters, of a trial whose worker died.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=defaults.MAX_WORKERS,
        description="Worker processes or pods sharing the study.",
    )
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, description="Per worker pod.")


class StudySpec(StudyFields):
    """One study: a (budget, horizon) cell of an experiment."""

    name: str = Field(description="Study name (DNS-1123): <experiment>-<budget>-h<horizon>.")
    experiment: str = Field(description="Name of the experiment the study belongs to.")
    budget: str = Field(description="Parameter budget label, e.g. 2M.")
    horizon: int = Field(
        ge=1, le=defaults.MAX_HORIZON, description="Days ahead that decide the label."
    )

    @field_validator("name")
    @classmethod
    def _dns1123(cls, name: str) -> str:
        if len(name) > NAME_LIMIT or not DNS1123.match(name):
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
            return StudySpec.model_validate(deep_merge(self.model_dump(), changes))
        except ValidationError as e:
            raise SpecError(describe_errors(e, f"study {self.name}")) from None

    def for_build(self, code_digest: str) -> StudySpec:
        """This study as one build runs it (`FINSCALE_STUDY_PER_BUILD`, a dev loop): its
        experiment `<experiment>-<8 hex>`, the hex digits the sha256 of `code_digest` and the
        study's search definition, and the study named after that experiment. Each change of
        the code or the search gets a study of its own; a rebuild of the same code rejoins it.

        Raises:
            SpecError: the name grows past 63 characters.
        """
        definition = fingerprint(fingerprint_fields(self.search_definition()))
        tag = hashlib.sha256(f"{code_digest}\0{definition}".encode()).hexdigest()[:8]
        experiment = f"{self.experiment}-{tag}"
        if self.name.startswith(f"{self.experiment}-"):
            name = experiment + self.name[len(self.experiment) :]
        else:
            name = f"{self.name}-{tag}"
        if len(name) > NAME_LIMIT:
            raise SpecError(
                f"study {self.name}: as one build's study it would be named {name!r}, past the "
                f"{NAME_LIMIT} characters of a name; shorten the experiment's name"
            )
        return self.with_changes({"name": name, "experiment": experiment})

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


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
