"""A worker keeps UTC, so that the naive times Optuna stores for its trials mean UTC."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

_SHOW = (
    "import datetime, time\n"
    "from finscale.hpo.clock import keep_utc\n"
    "before = time.timezone\n"
    "keep_utc()\n"
    "print(before, time.timezone, datetime.datetime.now().isoformat())\n"
)


def test_a_worker_on_a_machine_five_hours_behind_stores_utc() -> None:
    # Given a machine whose local time is five hours behind UTC (POSIX: no tz database needed),
    env = {**os.environ, "TZ": "EST+5"}
    # when a process keeps UTC,
    shown = subprocess.run(
        [sys.executable, "-c", _SHOW], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    # then its naive local time, what Optuna stores, is UTC (and was not before).
    before, after, now = int(shown[0]), int(shown[1]), datetime.fromisoformat(shown[2])
    assert (before, after) == (5 * 3600, 0)
    assert abs(now - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=5)
