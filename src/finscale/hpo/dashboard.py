"""optuna-dashboard on the configured storage (`finscale dashboard`): its WSGI app on the storage
as readers open it, refusing every request that would write, served by the standard library's
WSGI server until Ctrl-C.

Read-only because the dashboard's buttons can delete or rename a study and tell trials values:
finscale's studies are changed by its workers alone.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from finscale.errors import MissingExtraError, StudyNotFoundError
from finscale.hpo.storage import display_url, open_for_reading
from finscale.redaction import mask_secrets
from finscale.settings import Settings

log = logging.getLogger(__name__)

INSTALL = "pip install 'finscale[dashboard]'"
# What a read-only dashboard answers; everything else is refused.
_READS = frozenset({"GET", "HEAD"})


def _wsgi() -> Any:
    """optuna-dashboard's `wsgi` factory.

    Raises:
        MissingExtraError: optuna-dashboard is not installed (exit 2).
    """
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise MissingExtraError(
            f"finscale dashboard needs optuna-dashboard, an optional dependency: {INSTALL}"
        ) from None
    return wsgi


def read_only(app: WSGIApplication) -> WSGIApplication:
    """`app` answering GET and HEAD; any other method gets 405 with a JSON reason, the form
    optuna-dashboard's own errors take."""

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        if environ.get("REQUEST_METHOD", "GET") in _READS:
            return app(environ, start_response)
        body = json.dumps(
            {"reason": "finscale dashboard is read-only: the studies change through finscale"}
        ).encode()
        start_response(
            "405 Method Not Allowed",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Allow", ", ".join(sorted(_READS))),
            ],
        )
        return [body]

    return guarded


def dashboard_app(settings: Settings) -> WSGIApplication:
    """The read-only dashboard on the configured storage, opened as `finscale status` opens it
    (nothing created, its connection timeouts, retried until `FINSCALE_STORAGE_DEADLINE_S`).

    Raises:
        MissingExtraError: optuna-dashboard is not installed, checked first (exit 2).
        StudyNotFoundError: no storage yet: the SQLite file or Optuna's tables are missing
            (exit 2).
        StorageConfigError: a bad URL, authentication failure, missing database (exit 2).
        StorageUnavailableError: the storage did not answer by the deadline (exit 3).
    """
    wsgi = _wsgi()
    storage = open_for_reading(settings)
    if storage is None:
        raise StudyNotFoundError(
            f"no studies in {display_url(settings.storage_url)}: nothing to show until a study "
            "is created there (finscale run SPEC, or a study's Jobs)"
        )
    app: WSGIApplication = wsgi(storage)
    return read_only(app)


class _MaskedStderr:
    """Standard error with its secrets masked: the WSGI error stream, where the server and the
    dashboard print the tracebacks of requests that failed."""

    def write(self, text: str) -> int:
        return sys.stderr.write(mask_secrets(text))

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        sys.stderr.flush()


class _Handler(WSGIRequestHandler):
    """Request lines go to the debug log, not to the terminal: the dashboard polls."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def get_stderr(self) -> Any:
        return _MaskedStderr()


def dashboard_server(app: WSGIApplication, *, host: str, port: int) -> WSGIServer:
    """A server for `app` bound to `host:port` (port 0: a free one, `server_port` says which),
    accepting connections once it returns.

    Raises:
        OSError: the address is in use, not this machine's, or not a host name.
    """
    return make_server(host, port, app, handler_class=_Handler)


def serve_dashboard(server: WSGIServer) -> None:
    """Answer requests until Ctrl-C (SIGINT), then close the server.

    Requests are answered in a thread of their own: the standard library's WSGI handler catches
    every exception a request raises, KeyboardInterrupt included, so a Ctrl-C that lands in the
    middle of a request (the dashboard polls) would be swallowed by it. The main thread, which
    receives the signal, only waits.
    """
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            # a timed wait: were SIGINT delivered to another thread, a wait without end would
            # never return to let the main thread run its handler
            thread.join(timeout=0.5)
    except KeyboardInterrupt:
        log.debug("dashboard stopped by SIGINT")
    finally:
        server.shutdown()  # waits for the request being answered
        server.server_close()
