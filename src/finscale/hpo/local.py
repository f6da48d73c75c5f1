"""Run studies on this machine: N worker processes per study, the same entry point a Job's pods
run (`finscale worker`), with live progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from finscale.errors import Interrupted, SpecError, WorkerFailedError
from finscale.hpo.read import StudySummary, summarize
from finscale.hpo.storage import with_retries
from finscale.hpo.worker import join_study
from finscale.settings import ENV_PREFIX, Settings
from finscale.spec import StudySpec

_STOP_TIMEOUT_S = 120


def worker_environment(settings: Settings) -> dict[str, str]:
    """The process environment with `settings` spelled as FINSCALE_* variables, so that a
    worker process sees exactly the settings of its parent."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    return env


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def status(self) -> str:
        code = self.process.poll()
        return "running" if code is None else f"exit {code}"


def _progress(spec: StudySpec, summary: StudySummary, workers: list[_Worker]) -> Table:
    table = Table(
        title=f"{spec.name}: {spec.budget} parameters, horizon {spec.horizon}", title_justify="left"
    )
    for column in (
        "finished",
        "running",
        "waiting",
        "complete",
        "pruned",
        "failed",
        f"best {spec.objective.metric}",
        "best arch",
        "workers",
    ):
        table.add_column(column)
    s = summary.states
    best = (
        "—" if summary.best_value is None else f"{summary.best_value:.4f} (#{summary.best_trial})"
    )
    alive = sum(w.process.poll() is None for w in workers)
    table.add_row(
        f"{summary.finished}/{spec.n_trials}",
        str(s.get("RUNNING", 0)),
        str(s.get("WAITING", 0)),
        str(s.get("COMPLETE", 0)),
        str(s.get("PRUNED", 0)),
        str(s.get("FAIL", 0)),
        best,
        summary.best_arch or "—",
        f"{alive}/{len(workers)} alive",
    )
    return table


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class _StopRequested:
    """SIGTERM and SIGINT only set a flag that the progress loop checks (raising from a signal
    handler could land inside a storage call or a finalizer that swallows it)."""

    def __init__(self) -> None:
        self.received: str | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        self.received = signal.Signals(signum).name


def _start_workers(
    spec_path: Path, spec: StudySpec, *, workers: int, settings: Settings, log_dir: Path
) -> list[_Worker]:
    env = worker_environment(settings)
    procs: list[_Worker] = []
    for index in range(workers):
        log_path = log_dir / f"worker-{index}.log"
        command = [
            sys.executable, "-m", "finscale", "worker", str(spec_path),
            "--study", spec.name, "--index", str(index),
        ]  # fmt: skip
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        procs.append(_Worker(index, process, log_path))
    return procs


def stop_workers(procs: list[_Worker], *, timeout_s: float = _STOP_TIMEOUT_S) -> None:
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


def run_study(
    spec_path: Path,
    spec: StudySpec,
    *,
    workers: int,
    settings: Settings,
    console: Console,
) -> StudySummary:
    """Set up one study, run `workers` worker processes on it, and show progress until done.

    The workers are supervised: on a signal, or on any error of this process (the storage
    unreachable while reading progress), they are stopped first — they hand their trials back
    — and only then does this function raise.

    Raises:
        FinscaleError: set-up failed (bad spec or data, another study of that name, storage
            down), or a worker failed (the message quotes its log).
        Interrupted: Ctrl-C or SIGTERM; the workers hand their trials back first.
    """
    if workers < 1:
        raise SpecError(f"--workers must be at least 1, got {workers}")
    joined = join_study(spec, settings, index=0)
    log_dir = settings.runs_dir / spec.name
    log_dir.mkdir(parents=True, exist_ok=True)
    stop = _StopRequested()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    procs: list[_Worker] = []
    try:
        procs = _start_workers(spec_path, spec, workers=workers, settings=settings, log_dir=log_dir)
        console.print(f"{spec.name}: {workers} workers, logs in {log_dir}", highlight=False)
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            while True:
                summary = with_retries(
                    lambda: summarize(joined.study),
                    what="reading progress",
                    attempts=settings.storage_attempts,
                    url=settings.storage_url,
                )
                live.update(_progress(spec, summary, procs))
                if stop.received:
                    raise Interrupted(
                        f"{stop.received} received; running trials of {spec.name} were handed "
                        "back to the queue"
                    )
                if all(w.process.poll() is not None for w in procs):
                    break
                time.sleep(0.5)
    finally:
        stop_workers(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        console.print()
    failed = [w for w in procs if w.process.returncode != 0]
    if failed:
        w = failed[0]
        code = w.process.returncode
        raise WorkerFailedError(
            f"worker {w.index} of {spec.name} exited with code {code}; "
            f"the end of {w.log}:\n{_tail(w.log)}",
            exit_code=code if code in (2, 3) else 1,
        )
    return with_retries(
        lambda: summarize(joined.study),
        what="reading the results",
        attempts=settings.storage_attempts,
        url=settings.storage_url,
    )


def results_table(specs: list[StudySpec], summaries: list[StudySummary]) -> Table:
    """One row per study: budget progress, outcome counts and the best trial."""
    table = Table(title="Results", title_justify="left")
    for column in (
        "study",
        "finished",
        "complete",
        "pruned",
        "failed",
        "metric",
        "best",
        "best arch",
        "best params",
    ):
        table.add_column(column)
    for spec, s in zip(specs, summaries, strict=True):
        params = {k: v for k, v in s.best_params.items() if k != "arch"}
        shown = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
        )
        table.add_row(
            s.name,
            f"{s.finished}/{s.n_trials}",
            str(s.states.get("COMPLETE", 0)),
            str(s.states.get("PRUNED", 0)),
            str(s.states.get("FAIL", 0)),
            spec.objective.metric,
            "—" if s.best_value is None else f"{s.best_value:.4f}",
            s.best_arch or "—",
            shown or "—",
        )
    return table
