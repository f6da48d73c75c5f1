"""A worker's lines: JSON objects with one ISO time field, passwords masked field by field, and
`finscale run`'s quotes of a failed worker's log shown as text."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from finscale.hpo.events import EventLog
from finscale.json_lines import JsonLinesFormatter, iso_time, json_line, readable

ISO_MS_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"


def test_the_time_is_iso_8601_in_utc_to_the_millisecond() -> None:
    moment = datetime(2026, 12, 3, 16, 52, 57, 123456, tzinfo=UTC)
    assert iso_time(moment.timestamp()) == "2026-12-03T16:52:57.123+00:00"
    line = json.loads(json_line({"event": "run_start", "value": float("nan")}))
    assert list(line) == ["time", "event", "value"] and line["value"] is None
    assert re.fullmatch(ISO_MS_UTC, line["time"])


def _record(message: str, *, failed: bool = False) -> logging.LogRecord:
    exc_info = None
    if failed:
        try:
            raise ConnectionError(f"refused: {message}")
        except ConnectionError:
            exc_info = sys.exc_info()
    return logging.LogRecord(
        "finscale.hpo.worker", logging.WARNING, __file__, 1, "%s", (message,), exc_info
    )


def test_a_log_record_is_one_json_line_with_its_password_masked() -> None:
    # A quoted libpq password: JSON escapes its quotes, so masking the encoded line would miss it.
    message = 'connecting to host=db password="hunter 2" and postgresql://u:pw2@db/x'
    line = JsonLinesFormatter().format(_record(message, failed=True))
    assert "\n" not in line and "hunter" not in line and "pw2" not in line
    record = json.loads(line)
    assert set(record) == {"time", "level", "logger", "message", "exception"}
    assert (record["level"], record["logger"]) == ("WARNING", "finscale.hpo.worker")
    assert record["message"] == "connecting to host=db password=*** and postgresql://u:***@db/x"
    assert record["exception"].startswith("Traceback") and "ConnectionError" in record["exception"]
    assert re.fullmatch(ISO_MS_UTC, record["time"])


def test_an_event_line_keeps_its_fields_with_the_time_first() -> None:
    stream = io.StringIO()
    EventLog(study="it-30k-h1", worker=2, stream=stream).emit(
        "trial_end",
        trial=7,
        reason="storage at host=db password=hunter2 refused",
        value=float("inf"),
    )
    record = json.loads(stream.getvalue())
    assert list(record)[:4] == ["time", "event", "study", "worker"]
    assert (record["trial"], record["value"]) == (7, None)
    assert record["reason"] == "storage at host=db password=*** refused"


def test_a_quoted_log_shows_records_as_text_and_events_as_they_are() -> None:
    record = JsonLinesFormatter().format(_record("worker 0 joined study it-30k-h1", failed=True))
    shown = readable(record).splitlines()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d WARNING finscale.hpo.worker: worker 0 joined study it-30k-h1", shown[0]
    )
    assert shown[1] == "Traceback (most recent call last):"
    event = json_line({"event": "trial_end", "trial": 0})
    assert readable(event) == event
    assert readable("Segmentation fault") == "Segmentation fault"


def test_optunas_warnings_go_through_finscales_logging(tmp_path: Path) -> None:
    # Once a storage is open, Optuna's warnings reach the root logger's handlers (a worker's
    # JSON lines, masked) instead of Optuna's own handler writing text of its own.
    import optuna

    from finscale.hpo.storage import open_storage

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = open_storage(url, heartbeat_interval_s=5, heartbeat_grace_s=10, max_retries=0)
    storage.engine.dispose()
    seen: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        optuna.logging.get_logger("optuna.study").warning("a warning of Optuna's")
    finally:
        logging.getLogger().removeHandler(handler)
    assert [r.getMessage() for r in seen] == ["a warning of Optuna's"]
