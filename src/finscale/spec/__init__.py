"""Typed experiment and study specs.

An `ExperimentSpec` (one YAML file) holds the settings shared by its studies and a matrix of
budgets × horizons; `expand()` turns it into one `StudySpec` per cell, named
`<experiment>-<budget>-h<horizon>` (e.g. `phase6a-2m-h1`). A study spec says *what* is searched;
where and how a process runs is `Settings`' business.

Every model forbids unknown keys and is frozen: a typo in the YAML is an error, never a silent
default. A bad file fails when it is loaded, with the file, the field path and the value.

The modules, leaf first: `base` (the model base, error lines), `distributions`, `training` (the
table of training parameters), `sections`, `resources`, `study` (a study and its fingerprint),
`experiment`, `loading` (spec files) and `overrides` (`--set` assignments).

This package imports no torch, optuna or kubernetes.
"""

from finscale.spec.base import NAME_LIMIT
from finscale.spec.distributions import Categorical, Distribution, IntRange, LogUniform, Uniform
from finscale.spec.experiment import ExperimentSpec
from finscale.spec.loading import load_spec, load_studies, load_study, select_studies
from finscale.spec.overrides import parse_assignments, train_changes
from finscale.spec.resources import Quantity, ResourcesSpec, Toleration
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
from finscale.spec.study import StudySpec, fingerprint, fingerprint_fields
from finscale.spec.training import PARAMS_BY_NAME, TRAINING_PARAMS, TrainingParam, TrainingSpec

__all__ = [
    "NAME_LIMIT",
    "PARAMS_BY_NAME",
    "TRAINING_PARAMS",
    "ArchitectureSpec",
    "Categorical",
    "DataSpec",
    "Distribution",
    "EarlyStoppingSpec",
    "ExperimentSpec",
    "IntRange",
    "LogUniform",
    "ModelSpec",
    "ObjectiveSpec",
    "PrunerSpec",
    "Quantity",
    "ResourcesSpec",
    "SamplerSpec",
    "SplitSpec",
    "StudySpec",
    "Toleration",
    "TrainingParam",
    "TrainingSpec",
    "Uniform",
    "fingerprint",
    "fingerprint_fields",
    "load_spec",
    "load_studies",
    "load_study",
    "parse_assignments",
    "select_studies",
    "train_changes",
]
