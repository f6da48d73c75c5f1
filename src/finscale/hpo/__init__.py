"""The HPO engine: studies in Optuna storage, the architectural objective, workers.

The only package that talks to Optuna storage. By concern: `storage` (URLs, credentials,
retries, locks, opening), `study` (set-up, fingerprint, sampler and pruner), `budget`
(counting, reservation, hand-back), `read` (views for people and the report), `inputs` (the one
adapter from a spec to the ML core), `objective`, `worker`, `local` (`finscale run`), `replay`
(`finscale train`).
"""

from finscale.hpo.local import results_table, run_study
from finscale.hpo.worker import WorkerReport, run_worker

__all__ = ["WorkerReport", "results_table", "run_study", "run_worker"]
