"""The one place finscale reaches into Optuna's private attributes.

Checked against Optuna 5.0.0. An ask/tell loop with its own heartbeat thread needs the storage
id of a trial, which `optuna.Trial` keeps in `_trial_id` and exposes through no public name
(the public `Trial.number` is the study-local number, and the storage's calls take the id).
"""

from __future__ import annotations

import optuna


def trial_id(trial: optuna.Trial) -> int:
    """The storage id of a running trial (what `RDBStorage.get_trial` and heartbeats take)."""
    return int(trial._trial_id)
