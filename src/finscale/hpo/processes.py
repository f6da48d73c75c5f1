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


def worker_environment(settings: Settings) -> dict[str, str]:
    """The process environment with `settings` spelled as FINSCALE_* variables, so that a
    worker process sees exactly the settings of its parent."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    return env


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
