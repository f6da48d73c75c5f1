"""Worker processes supervised by this process: their environment, their handle, and how they
are stopped. `finscale run` (`hpo/local.py`) and a pod of several workers (`hpo/pod.py`) share
it: neither ever leaves a worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from finscale.settings import ENV_PREFIX, Settings

# How long a stopped worker may take to hand its trial back beyond the storage deadline (its
# hand-back may wait that long for the storage) before it is killed.
STOP_MARGIN_S = 60

# The supervisor's process id, in its workers' environment: a worker ends when that process
# does (`hpo/lifeline.py`), however it dies.
PARENT_PID_VARIABLE = "FINSCALE_PARENT_PID"


def worker_environment(settings: Settings) -> dict[str, str]:
    """The process environment with `settings` spelled as FINSCALE_* variables, so that a
    worker process sees exactly the settings of its parent, and this process named as the
    parent it must not outlive."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    env[PARENT_PID_VARIABLE] = str(os.getpid())
    return env


def exit_text(code: int) -> str:
    """How a process ended, from its return code: `exited with code 3`, or `was killed by
    SIGKILL` (a negative code is the signal that ended it)."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def exit_status(code: int) -> int:
    """A return code as a shell reports it: a process killed by signal N is 128 + N."""
    return 128 - code if code < 0 else code


@dataclass
class WorkerProcess:
    index: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def status(self) -> str:
        code = self.process.poll()
        return "running" if code is None else f"exit {code}"


class StopRequested:
    """SIGTERM and SIGINT only set a flag that the progress loop checks (raising from a signal
    handler could land inside a storage call or a finalizer that swallows it)."""

    def __init__(self) -> None:
        self.received: str | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        self.received = signal.Signals(signum).name


def stop_workers(procs: list[WorkerProcess], *, timeout_s: float) -> None:
    """SIGTERM every live worker (each hands its running trial back), wait for them, and kill
    those still alive after `timeout_s`: `finscale run` never leaves a worker behind."""
    for w in procs:
        if w.process.poll() is None:
            w.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for w in procs:
        try:
            w.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.process.kill()
            w.process.wait()
