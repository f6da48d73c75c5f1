"""Run studies on this machine: N worker processes per study, the same entry point a Job's pods
run (`finscale worker`), with live progress.

`finscale run` supervises its workers: it never returns or raises while one lives. On a signal
or an error of its own it sends them SIGTERM (each hands its running trial back) and waits; a
storage outage only pauses its progress display, since the workers ride it out themselves.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from finscale.errors import (
    ExitCode,
    Interrupted,
    LocalFileError,
    SpecError,
    StorageUnavailableError,
    WorkerFailedError,
)
from finscale.hpo.join import join_study
from finscale.hpo.processes import (
    STOP_MARGIN_S,
    StopRequested,
    WorkerProcess,
    exit_text,
    stop_workers,
    worker_environment,
)
from finscale.hpo.read import StudySummary, summarize
from finscale.hpo.run_logs import RunLogs
from finscale.hpo.storage import with_retries
from finscale.hpo.trial_budget import budget_state
from finscale.json_lines import readable
from finscale.settings import Settings
from finscale.spec import StudySpec

T = TypeVar("T")

# Progress reads give up quickly: an outage pauses the display, not the study.
_PROGRESS_DEADLINE_S = 5.0


@dataclass(frozen=True)
class RunProgress:
    """One look at a running study: its summary (None while the storage does not answer) and
    how many of its workers are alive."""

    spec: StudySpec
    summary: StudySummary | None
    alive: int
    workers: int


class RunDisplay(Protocol):
    """Where `run_study` reports: the caller draws."""

    def started(self, text: str) -> None:
        """The workers started (`text` says how many and where their logs are)."""

    def progress(self, progress: RunProgress) -> None:
        """A new look at the study, twice a second while it runs."""

    def stopped(self) -> None:
        """The workers are gone (also when they never started)."""

    def warn(self, text: str) -> None:
        """Something the caller should know that does not fail the run."""


def _tail(path: Path, lines: int = 15) -> str:
    """The last lines of a worker's log, its log records shown as text (events as they are)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(readable(line) for line in text.splitlines()[-lines:])


def _start_workers(
    procs: list[WorkerProcess],
    spec_path: Path,
    spec: StudySpec,
    *,
    workers: int,
    settings: Settings,
    logs: RunLogs,
) -> None:
    """Start the workers, appending each to `procs` as it starts (so that a failure half-way
    still leaves every started one supervised). Each appends to its own log of this run, and
    ends when this process does, however it dies (`hpo/lifeline.py`)."""
    env = worker_environment(settings)
    for index in range(workers):
        log_path = logs.path(index)
        command = [
            sys.executable, "-m", "finscale", "worker", str(spec_path),
            "--study", spec.name, "--index", str(index),
        ]  # fmt: skip
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        procs.append(WorkerProcess(index, process, log_path))


def _close_logs(procs: list[WorkerProcess], logs: RunLogs) -> dict[int, str]:
    """End each worker's log with how it ended; why each log that refused it did."""
    refused = {}
    for w in procs:
        cause = logs.close(w.index, w.process.returncode)
        if cause is not None:
            refused[w.index] = cause
    return refused


def run_study(
    spec_path: Path,
    spec: StudySpec,
    *,
    workers: int,
    settings: Settings,
    display: RunDisplay,
) -> StudySummary:
    """Set up one study, run `workers` worker processes on it, and report its progress to
    `display` until done.

    The workers are supervised: this function neither returns nor raises while one lives. On
    a signal, or on any error of this process, they are sent SIGTERM first (they hand their
    trials back) and waited for (killed after the storage deadline and a margin). A storage
    outage pauses the progress display; the workers ride it out, or exit 3 after handing back.

    Raises:
        FinscaleError: set-up failed (bad spec or data, another study of that name, storage
            down), or a worker failed (the message quotes its log); a worker that failed while
            the others finished the study is only reported.
        Interrupted: Ctrl-C or SIGTERM; the workers hand their trials back first.
    """
    if workers < 1:
        raise SpecError(f"--workers must be at least 1, got {workers}")
    # The logs first: a runs folder that cannot be written fails before any study is set up.
    logs = RunLogs.create(settings.runs_dir, spec.name, workers=workers)
    try:
        joined = join_study(spec, settings, index=0)
    except BaseException:
        logs.discard()
        raise
    stop = StopRequested()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    procs: list[WorkerProcess] = []
    try:
        _start_workers(procs, spec_path, spec, workers=workers, settings=settings, logs=logs)
        display.started(f"{spec.name}: {workers} workers, logs in {logs.folder}")
        while True:
            summary: StudySummary | None
            try:
                summary = with_retries(
                    lambda: summarize(joined.study),
                    what="reading progress",
                    url=settings.storage_url,
                    deadline_s=min(_PROGRESS_DEADLINE_S, settings.storage_deadline_s),
                )
            except StorageUnavailableError:
                summary = None
            alive = sum(w.process.poll() is None for w in procs)
            display.progress(RunProgress(spec, summary, alive, len(procs)))
            if stop.received:
                raise Interrupted(
                    f"{stop.received} received; running trials of {spec.name} were handed "
                    "back to the queue"
                )
            if all(w.process.poll() is not None for w in procs):
                break
            time.sleep(0.5)
    finally:
        stop_workers(procs, timeout_s=settings.storage_deadline_s + STOP_MARGIN_S)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        refused = _close_logs(procs, logs)
        display.stopped()

    def read(what: str, call: Callable[[], T]) -> T:
        return with_retries(
            call, what=what, url=settings.storage_url, deadline_s=settings.storage_deadline_s
        )

    failed = [w for w in procs if w.process.returncode != 0]
    done = False
    if failed:  # did the others finish the study? (not knowing it means no)
        with contextlib.suppress(StorageUnavailableError):
            done = read("counting trials", lambda: budget_state(joined.study, spec.n_trials)).done
    for w in failed:
        code = w.process.returncode
        ended = f"worker {w.index} (pid {w.process.pid}) of {spec.name} {exit_text(code)}"
        if w.index in refused:  # the log could not say why: its disk or folder is the cause
            raise LocalFileError(f"{ended}; its log {w.log} cannot be written: {refused[w.index]}")
        message = f"{ended}; the end of {w.log}:\n{_tail(w.log)}"
        if code == ExitCode.BAD_INPUT or not done:
            passed_on = code in (ExitCode.BAD_INPUT, ExitCode.STORAGE_UNAVAILABLE)
            raise WorkerFailedError(message, exit_code=code if passed_on else ExitCode.ERROR)
        display.warn(f"{message}\n(the other workers finished the study)")
    for index, cause in refused.items():
        display.warn(f"the log of worker {index}, {logs.path(index)}, is incomplete: {cause}")
    return read("reading the results", lambda: summarize(joined.study))
