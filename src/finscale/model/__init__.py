"""The model and its parameter-budget architecture grid. Knows nothing of Optuna or Kubernetes."""

from finscale.budgets import budget_label, parse_budget
from finscale.model.grid import (
    Arch,
    ArchSpace,
    build_grid,
    extreme_archs,
    find_arch,
    param_count,
    parse_arch_id,
)
from finscale.model.patchtst import PatchTST, PatchTSTConfig

__all__ = [
    "Arch",
    "ArchSpace",
    "PatchTST",
    "PatchTSTConfig",
    "budget_label",
    "build_grid",
    "extreme_archs",
    "find_arch",
    "param_count",
    "parse_arch_id",
    "parse_budget",
]
