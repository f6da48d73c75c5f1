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

from finscale.errors import Interrupted, WorkerFailedError
from finscale.hpo import study as studies
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


def _progress(spec: StudySpec, summary: studies.StudySummary, workers: list[_Worker]) -> Table:
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


def run_study(
    spec_path: Path,
    spec: StudySpec,
    *,
    workers: int,
    settings: Settings,
    console: Console,
) -> studies.StudySummary:
    """Set up one study, run `workers` worker processes on it, and show progress until done.

    Raises:
        FinscaleError: set-up failed (bad spec or data, another study of that name, storage
            down), or a worker failed (the message quotes its log).
        Interrupted: Ctrl-C or SIGTERM; the workers hand their trials back first.
    """
    joined = join_study(spec, settings, index=0)
    log_dir = settings.runs_dir / spec.name
    log_dir.mkdir(parents=True, exist_ok=True)
    env = worker_environment(settings)
    procs: list[_Worker] = []
    for index in range(workers):
        log_path = log_dir / f"worker-{index}.log"
        command = [
            sys.executable,
            "-m",
            "finscale",
            "worker",
            str(spec_path),
            "--study",
            spec.name,
            "--index",
            str(index),
        ]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        procs.append(_Worker(index, process, log_path))
    console.print(f"{spec.name}: {workers} workers, logs in {log_dir}", highlight=False)
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            while True:
                summary = studies.with_retries(
                    lambda: studies.summarize(joined.study),
                    what="reading progress",
                    attempts=settings.storage_attempts,
                    url=settings.storage_url,
                )
                live.update(_progress(spec, summary, procs))
                if all(w.process.poll() is not None for w in procs):
                    break
                time.sleep(0.5)
    except KeyboardInterrupt:
        for w in procs:
            if w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        for w in procs:
            w.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        raise Interrupted(
            f"stopped; running trials of {spec.name} were handed back to the queue"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
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
    return studies.summarize(joined.study)


def _raise_keyboard_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def results_table(specs: list[StudySpec], summaries: list[studies.StudySummary]) -> Table:
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
