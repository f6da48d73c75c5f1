"""The model and its parameter-budget architecture grid. Knows nothing of Optuna or Kubernetes.

The names below load lazily: the grid (parameter counts) imports no torch, so a worker reaches
its first reservation before torch loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finscale.lazy import lazy_exports

# Each public name and the module that defines it: the one list (`__all__` follows from it).
_WHERE = {
    "Arch": "grid",
    "ArchSpace": "grid",
    "PatchTST": "patchtst",
    "PatchTSTConfig": "patchtst",
    "budget_label": "finscale.param_budget",
    "build_grid": "grid",
    "extreme_archs": "grid",
    "find_arch": "grid",
    "nearest_budgets": "grid",
    "param_count": "grid",
    "parse_arch_id": "grid",
    "parse_budget": "finscale.param_budget",
    "space_archs": "grid",
}

__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # the same names for type checkers
    from finscale.model.grid import Arch as Arch
    from finscale.model.grid import ArchSpace as ArchSpace
    from finscale.model.grid import build_grid as build_grid
    from finscale.model.grid import extreme_archs as extreme_archs
    from finscale.model.grid import find_arch as find_arch
    from finscale.model.grid import nearest_budgets as nearest_budgets
    from finscale.model.grid import param_count as param_count
    from finscale.model.grid import parse_arch_id as parse_arch_id
    from finscale.model.grid import space_archs as space_archs
    from finscale.model.patchtst import PatchTST as PatchTST
    from finscale.model.patchtst import PatchTSTConfig as PatchTSTConfig
    from finscale.param_budget import budget_label as budget_label
    from finscale.param_budget import parse_budget as parse_budget


__getattr__ = lazy_exports("finscale.model", _WHERE)
