"""The model and its parameter-budget architecture grid. Knows nothing of Optuna or Kubernetes."""

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
from finscale.param_budget import budget_label, parse_budget

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
