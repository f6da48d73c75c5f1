"""The HPO engine: studies in Optuna storage, the architectural objective, workers.

The only package that talks to Optuna storage.
"""

from finscale.hpo.local import results_table, run_study
from finscale.hpo.study import (
    BudgetState,
    StudySummary,
    budget_state,
    create_or_load_study,
    open_storage,
    summarize,
    summarize_storage,
)
from finscale.hpo.worker import WorkerReport, join_study, run_worker

__all__ = [
    "BudgetState",
    "StudySummary",
    "WorkerReport",
    "budget_state",
    "create_or_load_study",
    "join_study",
    "open_storage",
    "results_table",
    "run_study",
    "run_worker",
    "summarize",
    "summarize_storage",
]
