"""The worker logs of one `finscale run`: a folder of its own per run, named by the run's id
(`<runs>/<study>/run-<time>-<pid>/worker-<i>.log`), so that a rerun keeps the logs that
explained the last exit and two runs of one spec never write into one file.

Each log opens with a `run_start` line and ends with a `run_end` line saying how its worker
ended: JSON lines with their `time`, like every line the worker writes between them
(`finscale.json_lines`). Both are written and synced by `finscale run`
itself: a runs folder on a full disk or without permission is reported where the user sees it,
naming the file and the cause, instead of silencing the workers that would have said so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finscale.errors import LocalFileError
from finscale.hpo.processes import exit_text
from finscale.json_lines import json_line


def new_run_id() -> str:
    """A run's id: when it started and its process id (sortable, unique on one machine)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def _append(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to `path` and sync it to disk (a full disk fails here, not later).

    Raises:
        OSError: the line cannot be written.
    """
    line = json_line(record) + "\n"
    with path.open("ab") as handle:
        handle.write(line.encode())
        handle.flush()
        os.fsync(handle.fileno())


def _refusal(path: Path, error: OSError, doing: str) -> LocalFileError:
    cause = error.strerror or str(error)
    return LocalFileError(f"{path}: cannot {doing}: {cause}")


def _new_folder(parent: Path, run_id: str) -> Path:
    """`parent/run-<run_id>`, created now: never one that exists (a second run of this process
    in the same second gets `-2`)."""
    for n in range(1, 1000):
        folder = parent / (f"run-{run_id}" if n == 1 else f"run-{run_id}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(errno.EEXIST, "too many runs in one second", str(parent))


@dataclass(frozen=True)
class RunLogs:
    """The log files of one run's workers."""

    run_id: str
    study: str
    folder: Path
    created: Path  # the outermost folder this run created (removed by `discard` when empty)

    @classmethod
    def create(cls, runs_dir: Path, study: str, *, workers: int) -> RunLogs:
        """Create the run's folder and its workers' logs, each with its `run_start` line.

        Raises:
            LocalFileError: a folder or a log cannot be written (a full disk, no permission,
                a path through a file); names the path and the cause.
        """
        parent = runs_dir / study
        missing = [p for p in (parent, *parent.parents) if not p.exists()]
        try:
            parent.mkdir(parents=True, exist_ok=True)
            folder = _new_folder(parent, new_run_id())
        except OSError as e:
            raise _refusal(Path(e.filename or parent), e, "create the run's log folder") from None
        logs = cls(
            folder.name.removeprefix("run-"), study, folder, missing[-1] if missing else folder
        )
        for index in range(workers):
            try:
                _append(logs.path(index), logs._record("run_start", index))
            except OSError as e:
                logs.discard()
                raise _refusal(logs.path(index), e, "write a worker's log") from None
        return logs

    def path(self, index: int) -> Path:
        return self.folder / f"worker-{index}.log"

    def _record(self, event: str, index: int) -> dict[str, Any]:
        return {"event": event, "run": self.run_id, "study": self.study, "worker": index}

    def close(self, index: int, code: int) -> str | None:
        """Append the `run_end` line of worker `index`, which ended with return `code`.

        Returns:
            Why the line could not be written (`No space left on device`), or None.
        """
        record = {**self._record("run_end", index), "exit": code, "ended": exit_text(code)}
        try:
            _append(self.path(index), record)
        except OSError as e:
            return e.strerror or str(e)
        return None

    def discard(self) -> None:
        """Remove this run's logs, and the folders above them that it created and that hold
        nothing else (a run that never started leaves nothing behind)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        folder = self.folder
        while folder != self.created:
            folder = folder.parent
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a concurrent run's logs stay
