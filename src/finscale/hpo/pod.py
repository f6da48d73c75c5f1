"""A pod of several workers: N worker processes of one study share this process's device (a Job's
`resources.trials_per_pod`), each planning its memory within its share."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from finscale.errors import ExitCode, SpecError
from finscale.hpo.processes import (
    STOP_MARGIN_S,
    StopRequested,
    WorkerProcess,
    exit_status,
    exit_text,
    stop_workers,
    worker_environment,
)
from finscale.settings import Settings

log = logging.getLogger(__name__)

# Exit codes of a pod's worker processes, most telling first: a bad input ends the pod's Job
# (never retried), an unreachable storage is retried, a signal hands trials back.
_POD_CODES = (ExitCode.BAD_INPUT, ExitCode.STORAGE_UNAVAILABLE, ExitCode.INTERRUPTED)

# done: stay until no trial of the study runs; idle: leave when nothing is left to start.
Until = Literal["done", "idle"]


def worker_index(given: int | None, environ: Mapping[str, str]) -> int:
    """A worker's index: `--index` when given, else the Job's `JOB_COMPLETION_INDEX` (an
    Indexed Job gives each pod its own), else 0.

    Raises:
        SpecError: JOB_COMPLETION_INDEX is not a whole number.
    """
    if given is not None:
        return given
    value = environ.get("JOB_COMPLETION_INDEX", "0")
    if not value.isdigit():
        raise SpecError(f"JOB_COMPLETION_INDEX={value!r}: expected an index 0, 1, 2, …")
    return int(value)


def worker_until(until: Until, *, index: int, closer: int | None) -> Until:
    """When a worker leaves: the closer (the worker whose index is `closer`) stays until the
    study is done, whatever `until` says, so that one worker always sees the study end."""
    return "done" if closer is not None and index == closer else until


def run_pod(
    spec_path: Path,
    study: str,
    *,
    index: int,
    processes: int,
    until: Until,
    closer: int | None,
    settings: Settings,
) -> int:
    """Run `processes` workers of one study in this process's place: a pod that shares its
    device among several trials.

    Worker j of pod `index` has worker index `index * processes + j`; each plans its memory
    within `1 / processes` of the device (`FINSCALE_MEMORY_SHARE`) and gets that share of the
    pod's math threads. A signal is passed on to every worker (each hands its running trial
    back); the pod ends when all its workers have.

    Returns:
        The pod's exit code: 0 when every worker exited 0, else the most telling of theirs
        (2, then 3, then 143, else the first failure's, 128 + N for a worker killed by signal
        N); the last line on standard error names that worker, its pid and how it ended.
    """
    if processes < 1:
        raise SpecError(f"--processes must be at least 1, got {processes}")
    env = worker_environment(
        settings.model_copy(update={"memory_share": settings.memory_share / processes})
    )
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    env["OMP_NUM_THREADS"] = str(max(1, threads // processes))
    stop = StopRequested()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    procs: list[WorkerProcess] = []
    try:
        for j in range(processes):
            command = [
                sys.executable, "-m", "finscale", "worker", str(spec_path), "--study", study,
                "--index", str(index * processes + j), "--until", until,
            ]  # fmt: skip
            if closer is not None:
                command += ["--closer", str(closer * processes)]
            # Output goes to the pod's own: one JSON event stream for the log collector.
            process = subprocess.Popen(command, env=env)
            procs.append(WorkerProcess(index * processes + j, process, Path("-")))
        while any(w.process.poll() is None for w in procs) and not stop.received:
            time.sleep(0.2)
    finally:
        stop_workers(procs, timeout_s=settings.storage_deadline_s + STOP_MARGIN_S)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop.received:
        return ExitCode.INTERRUPTED
    return _pod_outcome(procs, pod=index)


def _pod_outcome(procs: list[WorkerProcess], *, pod: int) -> int:
    """The pod's exit code from its workers': 0 when all exited 0, else the most telling one
    (2, then 3, then 143, else the first failure's; a worker killed by signal N counts as
    128 + N). Each failed worker gets a line on standard error, the one that decided last."""
    failed = [w for w in procs if w.process.returncode != ExitCode.OK]
    if not failed:
        return ExitCode.OK
    status = {w.index: exit_status(w.process.returncode) for w in failed}
    code = next((c for c in _POD_CODES if c in status.values()), status[failed[0].index])
    decider = next(w for w in failed if status[w.index] == code)
    for w in [*(w for w in failed if w is not decider), decider]:
        log.error(
            "pod %d: worker %d (process %d of %d, pid %d) %s; the pod exits %d",
            pod, w.index, procs.index(w) + 1, len(procs), w.process.pid,
            exit_text(w.process.returncode), code,
        )  # fmt: skip
    return code
