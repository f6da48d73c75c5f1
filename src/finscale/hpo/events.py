"""One JSON line per trial event (start, epoch, end), for log collectors and people alike."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any, TextIO

from finscale.redaction import mask_secrets

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class EventLog:
    """Writes `{"ts": …, "event": …, "study": …, "worker": …, …}` lines to a stream, any
    password a message quotes masked.

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
        record = {"ts": round(time.time(), 3), "event": event}
        record.update(study=self.study, worker=self.worker)
        record.update(_plain(fields))
        line = mask_secrets(json.dumps(record, sort_keys=False))
        try:
            print(line, file=self.stream or sys.stdout, flush=True)
        except OSError as e:
            if not self.dropped:
                log.error("event lines cannot be written (%s); dropping them", e.strerror or e)
            self.dropped += 1
