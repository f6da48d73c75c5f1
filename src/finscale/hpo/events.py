"""One JSON line per trial event (start, epoch, end), for log collectors and people alike."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from finscale.json_lines import json_line

log = logging.getLogger(__name__)


class EventLog:
    """Writes `{"time": …, "event": …, "study": …, "worker": …, …}` lines to a stream
    (`finscale.json_lines`: NaN as null, any password a message quotes masked).

    A line that cannot be written (the log's disk is full) never fails the trial that emits it:
    the storage holds the trial; the first such failure is logged, the lines are dropped, and
    `finscale run` reports the log's disk when it closes the log.
    """

    def __init__(self, *, study: str, worker: int, stream: TextIO | None = None) -> None:
        self.study = study
        self.worker = worker
        self.stream = stream
        self.dropped = 0

    def emit(self, event: str, **fields: Any) -> None:
        line = json_line({"event": event, "study": self.study, "worker": self.worker, **fields})
        try:
            print(line, file=self.stream or sys.stdout, flush=True)
        except OSError as e:
            if not self.dropped:
                log.error("event lines cannot be written (%s); dropping them", e.strerror or e)
            self.dropped += 1
