"""A worker keeps UTC. Optuna stores a trial's start and end as naive local times
(`datetime.now()`), so a worker sets its own time zone to UTC before it touches a study: every
stored time then means UTC, wherever the worker ran (a laptop, a pod), and the report writes it
with its offset (`+00:00`)."""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping

# POSIX spelling: UTC with no offset, understood without a time zone database.
UTC_TZ = "UTC0"


def keep_utc(environ: MutableMapping[str, str] = os.environ) -> None:
    """Make this process's local time UTC (and its children's, through `TZ`)."""
    environ["TZ"] = UTC_TZ
    if hasattr(time, "tzset"):  # POSIX; elsewhere the variable alone
        time.tzset()
