"""What `finscale run` shows while a study runs: a live table on a terminal, stamped lines of
text elsewhere (a file, a pipe, a CI log)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

from finscale.cli.views import NONE, Column, _best, _Wrapped, table

if TYPE_CHECKING:
    from finscale.hpo.local import RunProgress


def progress_table(progress: RunProgress, *, width: int) -> Table:
    """`finscale run`'s live view of one study."""
    spec, summary = progress.spec, progress.summary
    alive = f"{progress.alive}/{progress.workers} alive"
    if summary is None:
        title = f"{spec.name}: storage unreachable; the workers retry"
        return table((Column("workers"),), [[alive]], width=width, title=title)
    columns = (
        Column("finished"),
        Column("running", drop=4),
        Column("waiting", drop=1),
        Column("complete", drop=3),
        Column("pruned", drop=2),
        Column("failed"),
        Column(f"best {spec.objective.metric}"),
        Column("best arch", whole=True),
        Column("workers", drop=5),
    )
    s = summary.states
    row = [
        f"{summary.finished}/{spec.n_trials}",
        *(str(s.get(k, 0)) for k in ("RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL")),
        _best(summary.best_value, summary.best_trial),
        summary.best_arch or NONE,
        alive,
    ]
    title = f"{spec.name}: {spec.budget} parameters, horizon {spec.horizon}"
    return table(columns, [row], width=width, title=title)


class LiveProgress:
    """What `finscale run` shows while a study runs: where the logs go, then a table redrawn
    twice a second, left in place when the study ends, then any warning."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None

    def started(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False)
        self._live = Live(console=self._console, refresh_per_second=2, transient=False)
        self._live.start()

    def progress(self, progress: RunProgress) -> None:
        if self._live is not None:
            self._live.update(_Wrapped(progress_table(progress, width=self._console.width)))

    def stopped(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._console.print()

    def warn(self, text: str) -> None:
        self._console.print(f"warning: {text}", markup=False)


class PlainProgress:
    """What `finscale run` writes where no one watches a terminal (a file, a pipe, a CI log):
    a line whenever a trial starts or ends, with the study's progress, its best value, the time
    elapsed and an estimate of the time left, and a line at least every `quiet_s` seconds while
    nothing changes. No cursor movement: every line stays readable in a log."""

    def __init__(
        self,
        console: Console,
        *,
        quiet_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._console = console
        self._quiet_s = quiet_s
        self._clock = clock
        self._start = 0.0
        self._said = 0.0
        self._last: tuple[int, int, int] | None = None

    def _line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self._console.print(f"{stamp} {text}", markup=False, highlight=False, soft_wrap=True)
        self._said = self._clock()

    def started(self, text: str) -> None:
        self._start = self._said = self._clock()
        self._last = None
        self._line(text)

    def progress(self, progress: RunProgress) -> None:
        summary = progress.summary
        if summary is None:
            return
        running = summary.states.get("RUNNING", 0)
        now = (summary.finished, running, progress.alive)
        changed = now != self._last
        if not changed and self._clock() - self._said < self._quiet_s:
            return
        self._last = now
        self._line(progress_line(progress, elapsed_s=self._clock() - self._start))

    def stopped(self) -> None:
        self._last = None

    def warn(self, text: str) -> None:
        self._console.print(f"warning: {text}", markup=False, soft_wrap=True)


def progress_line(progress: RunProgress, *, elapsed_s: float) -> str:
    """One line of a running study: `name: 3/8 finished (…), 2 running, best …, 4m10s elapsed,
    about 6m left` (the time left from the mean time per finished trial so far)."""
    s = progress.summary
    assert s is not None
    states = ", ".join(
        f"{n} {k.lower()}" for k in ("COMPLETE", "PRUNED", "FAIL") if (n := s.states.get(k, 0))
    )
    budget = f"{s.finished}/{s.n_trials}" if s.n_trials else str(s.finished)
    parts = [f"{budget} finished" + (f" ({states})" if states else "")]
    parts.append(f"{s.states.get('RUNNING', 0)} running")
    if s.best_value is not None:
        parts.append(f"best {_best(s.best_value, s.best_trial)} {s.best_arch or ''}".rstrip())
    parts.append(f"{_duration(elapsed_s)} elapsed")
    if s.n_trials and 0 < s.finished < s.n_trials:
        left = elapsed_s / s.finished * (s.n_trials - s.finished)
        parts.append(f"about {_duration(left)} left")
    parts.append(f"workers {progress.alive}/{progress.workers} alive")
    return f"{progress.spec.name}: " + ", ".join(parts)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
