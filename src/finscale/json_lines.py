"""A worker's output: one JSON object per line, whoever wrote it (a trial event, a run's start or
end, a log record), each with its `time` in ISO 8601, UTC, to the millisecond
(`2026-12-03T16:52:57.123+00:00`), so that a log collector or `jq` reads every line of a pod or
of a `finscale run` log alike.

- events: `{"time", "event", "study", "worker", …}` (`finscale.hpo.events`, `hpo/run_logs.py`);
- log records: `{"time", "level", "logger", "message"}`, and `exception` with a traceback.

Every string a line carries has its passwords masked before it is encoded (masking the encoded
line could cut an escaped quote in two and break the JSON).
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from finscale.redaction import MaskingFormatter, mask_secrets

# The one time field of every line.
TIME = "time"


def iso_time(seconds: float) -> str:
    """`seconds` since the epoch as ISO 8601 in UTC with milliseconds and the offset."""
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


def _plain(value: Any) -> Any:
    """JSON-ready: NaN and infinity become null (JSON has neither); strings are masked."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def json_line(fields: Mapping[str, Any], *, at: float | None = None) -> str:
    """One line (without its newline): `time` (now, or `at` in epoch seconds), then `fields`."""
    record = {TIME: iso_time(time.time() if at is None else at), **fields}
    return json.dumps(_plain(record))


class JsonLinesFormatter(MaskingFormatter):
    """A log record as one JSON line, its secrets masked."""

    def __init__(self) -> None:
        super().__init__(logging.Formatter())

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            fields["exception"] = self.inner.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = record.stack_info
        return json_line(fields, at=record.created)


def _log_thread_error(args: threading.ExceptHookArgs) -> None:
    """A thread's uncaught exception as a log record, not a traceback in plain text."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread else "?"
    logging.getLogger("finscale").error("thread %s failed", name, exc_info=args.exc_value)


def log_json_lines(level: int) -> None:
    """Send this process's logging, Python's warnings and its threads' uncaught exceptions to
    standard error as JSON lines (replacing any handler set before)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_error


def readable(line: str) -> str:
    """A line of a worker's log as a person reads it: a log record as
    `16:52:57 INFO finscale.hpo.worker: message` (and its traceback); any other line as it is."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or not {TIME, "level", "logger", "message"} <= set(record):
        return line
    text = f"{str(record[TIME])[11:19]} {record['level']} {record['logger']}: {record['message']}"
    exception = record.get("exception")
    return f"{text}\n{exception}" if exception else text
