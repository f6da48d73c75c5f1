"""The HPO engine: studies in Optuna storage, the architectural objective, workers.

The only package that talks to Optuna storage. By concern: `storage` (URLs, credentials,
retries, locks, opening), `study` (set-up, fingerprint, sampler and pruner), `budget`
(counting, reservation, hand-back), `read` (views for people and the report), `inputs` (the one
adapter from a spec to the ML core), `objective`, `worker`, `local` (`finscale run`, a pod of
several workers), `replay` (`finscale train`), `evaluate` (`finscale evaluate`).

The names below are what other packages use. They load lazily: `finscale status` reads the
storage without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "ATTR_BASELINES": "study",
    "ATTR_EVAL_PREFIX": "study",
    "ATTR_FIELDS": "study",
    "ATTR_N_TRIALS": "study",
    "ATTR_SPEC": "study",
    "ATTR_WINDOWS": "study",
    "EvalRun": "evaluate",
    "SYSTEM_REQUEUED_FROM": "trial_budget",
    "StoredStudy": "read",
    "base_rate_bce": "replay",
    "counted": "trial_budget",
    "default_spec": "replay",
    "display_url": "storage",
    "evaluate_study": "evaluate",
    "open_for_reading": "storage",
    "plan_training": "replay",
    "read_studies": "read",
    "results_table": "local",
    "retrain": "replay",
    "run_pod": "pod",
    "run_study": "local",
    "run_worker": "worker",
    "summarize_storage": "read",
}

__all__ = [
    "ATTR_BASELINES",
    "ATTR_EVAL_PREFIX",
    "ATTR_FIELDS",
    "ATTR_N_TRIALS",
    "ATTR_SPEC",
    "ATTR_WINDOWS",
    "SYSTEM_REQUEUED_FROM",
    "EvalRun",
    "StoredStudy",
    "base_rate_bce",
    "counted",
    "default_spec",
    "display_url",
    "evaluate_study",
    "open_for_reading",
    "plan_training",
    "read_studies",
    "results_table",
    "retrain",
    "run_pod",
    "run_study",
    "run_worker",
    "summarize_storage",
]

if TYPE_CHECKING:
    from finscale.hpo.evaluate import EvalRun, evaluate_study
    from finscale.hpo.local import results_table, run_study
    from finscale.hpo.pod import run_pod
    from finscale.hpo.read import StoredStudy, read_studies, summarize_storage
    from finscale.hpo.replay import (
        base_rate_bce,
        default_spec,
        plan_training,
        retrain,
    )
    from finscale.hpo.storage import display_url, open_for_reading
    from finscale.hpo.study import (
        ATTR_BASELINES,
        ATTR_EVAL_PREFIX,
        ATTR_FIELDS,
        ATTR_N_TRIALS,
        ATTR_SPEC,
        ATTR_WINDOWS,
    )
    from finscale.hpo.trial_budget import SYSTEM_REQUEUED_FROM, counted
    from finscale.hpo.worker import run_worker


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'finscale.hpo' has no attribute {name!r}")
    return getattr(importlib.import_module(f"finscale.hpo.{_WHERE[name]}"), name)
