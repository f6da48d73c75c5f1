"""A worker started by a supervisor (`finscale run`, a pod of several workers) ends with it,
however the supervisor dies, SIGKILL included: it gets SIGTERM, as on a user's stop, so it hands
its running trial back and exits 143 instead of finishing the study alone under PID 1.

The supervisor names itself in the worker's environment (`FINSCALE_PARENT_PID`). On Linux the
kernel sends the signal when the parent dies (`prctl(PR_SET_PDEATHSIG)`); everywhere, a watchdog
thread also notices that the parent changed (the orphan was adopted) and sends it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping

from finscale.hpo.processes import PARENT_PID_VARIABLE

log = logging.getLogger(__name__)

# prctl(2): the signal this process gets when its parent dies.
_PR_SET_PDEATHSIG = 1

# How often the watchdog looks at the parent: a dead supervisor's workers stop within this.
WATCH_INTERVAL_S = 1.0


def _death_signal(signum: signal.Signals) -> bool:
    """Ask Linux to send `signum` to this process when its parent dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0
    except (OSError, AttributeError):  # no libc prctl: the watchdog alone
        return False


def _stop(parent: int) -> None:
    log.warning("the process that started this worker (pid %d) is gone; stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)


def _watch(parent: int, interval_s: float) -> None:
    stopped = threading.Event()
    while os.getppid() == parent:
        stopped.wait(interval_s)
    _stop(parent)


def follow_parent(environ: Mapping[str, str], *, interval_s: float = WATCH_INTERVAL_S) -> bool:
    """End this process with SIGTERM when the process named by `FINSCALE_PARENT_PID` dies.

    Call it first thing in a worker: a parent that died before the call is noticed too (this
    process was adopted, so its parent pid is no longer the one named).

    Returns:
        Whether a parent is followed (False when the variable is unset or not a pid).
    """
    value = environ.get(PARENT_PID_VARIABLE, "")
    if not value.isdigit():
        if value:
            log.warning(
                "%s=%r is not a process id; not following a parent", PARENT_PID_VARIABLE, value
            )
        return False
    parent = int(value)
    _death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # it died before the kernel was asked to tell
        _stop(parent)
        return True
    watchdog = threading.Thread(
        target=_watch, args=(parent, interval_s), name="parent-watchdog", daemon=True
    )
    watchdog.start()
    return True
