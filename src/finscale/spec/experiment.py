"""An experiment: the settings its studies share and its matrix of budgets × horizons."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from finscale.errors import SpecError
from finscale.param_budget import parse_budget
from finscale.spec.base import DNS1123, describe_errors
from finscale.spec.study import StudyFields, StudySpec, deep_merge


class ExperimentSpec(StudyFields):
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
        if not DNS1123.match(name):
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
                        fields = deep_merge(fields, changes)
                fields.update(name=name, experiment=self.name, budget=label, horizon=horizon)
                try:
                    studies.append(StudySpec.model_validate(fields))
                except ValidationError as e:
                    raise SpecError(describe_errors(e, f"study {name}")) from None
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
