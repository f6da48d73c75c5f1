"""The HPO engine: studies in Optuna storage, the architectural objective, workers.

The only package that talks to Optuna storage. By concern: `storage` (URLs, credentials,
retries, locks, opening), `study` (set-up, fingerprint, sampler and pruner), `budget`
(counting, reservation, hand-back), `read` (views for people and the report), `inputs` (the one
adapter from a spec to the ML core), `fit` (training one trial, for the objective,
`finscale train` and `evaluate`), `objective`, `worker`, `local` (`finscale run`), `pod` (several
workers), `train_one` (`finscale train`), `evaluate` (`finscale evaluate`), `dashboard`
(`finscale dashboard`).

The names below are what other packages use. They load lazily: `finscale status` reads the
storage without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finscale.lazy import lazy_exports

# Each public name and the module that defines it: the one list (`__all__` follows from it).
_WHERE = {
    "DoesNotFitError": "fit",
    "check_inputs": "preflight",
    "check_study_inputs": "inputs",
    "dashboard_app": "dashboard",
    "dashboard_server": "dashboard",
    "default_spec": "train_one",
    "display_url": "storage",
    "evaluate_study": "evaluate",
    "fit_trial": "fit",
    "follow_parent": "lifeline",
    "keep_utc": "clock",
    "open_for_reading": "storage",
    "plan_training": "train_one",
    "read_studies": "read",
    "retrain": "train_one",
    "run_pod": "pod",
    "run_study": "local",
    "run_worker": "worker",
    "serve_dashboard": "dashboard",
    "summarize_storage": "read",
    "worker_index": "pod",
    "worker_until": "pod",
}

__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # the same names for type checkers (tests/unit/test_layering.py compares)
    from finscale.hpo.clock import (
        keep_utc as keep_utc,
    )
    from finscale.hpo.dashboard import (
        dashboard_app as dashboard_app,
    )
    from finscale.hpo.dashboard import (
        dashboard_server as dashboard_server,
    )
    from finscale.hpo.dashboard import (
        serve_dashboard as serve_dashboard,
    )
    from finscale.hpo.evaluate import (
        evaluate_study as evaluate_study,
    )
    from finscale.hpo.fit import (
        DoesNotFitError as DoesNotFitError,
    )
    from finscale.hpo.fit import (
        fit_trial as fit_trial,
    )
    from finscale.hpo.inputs import (
        check_study_inputs as check_study_inputs,
    )
    from finscale.hpo.lifeline import (
        follow_parent as follow_parent,
    )
    from finscale.hpo.local import (
        run_study as run_study,
    )
    from finscale.hpo.pod import (
        run_pod as run_pod,
    )
    from finscale.hpo.pod import (
        worker_index as worker_index,
    )
    from finscale.hpo.pod import (
        worker_until as worker_until,
    )
    from finscale.hpo.preflight import (
        check_inputs as check_inputs,
    )
    from finscale.hpo.read import (
        read_studies as read_studies,
    )
    from finscale.hpo.read import (
        summarize_storage as summarize_storage,
    )
    from finscale.hpo.storage import (
        display_url as display_url,
    )
    from finscale.hpo.storage import (
        open_for_reading as open_for_reading,
    )
    from finscale.hpo.train_one import (
        default_spec as default_spec,
    )
    from finscale.hpo.train_one import (
        plan_training as plan_training,
    )
    from finscale.hpo.train_one import (
        retrain as retrain,
    )
    from finscale.hpo.worker import (
        run_worker as run_worker,
    )


__getattr__ = lazy_exports("finscale.hpo", _WHERE)
