"""Secrets kept out of every output: the one masking function that messages, logs, the status
title and the report use, and the removal of a secret file when this process ends.

A storage URL may carry its password three ways, and each is masked (`***`):

- as user information: `postgresql://user:PASSWORD@host/db`;
- as a query parameter: `postgresql://user@host/db?password=PASSWORD` (also `sslpassword`,
  the key of a client certificate; `passfile` names a file and is not a secret);
- in a libpq connection string: `host=db user=u password=PASSWORD` (quoted or not).

Keys are matched in any case and percent-encoded (`%70assword`). Masking errs on the side of
hiding: a value runs to the next `&`, space or quote.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import signal
import threading
from pathlib import Path

MASK = "***"

# libpq keywords (and the environment variable) whose value is a secret.
_SECRET_KEYS = ("sslpassword", "pgpassword", "password")


def _spelled(word: str) -> str:
    """A pattern of `word` with each letter written plainly or percent-encoded."""
    return "".join(f"(?:{re.escape(c)}|%{ord(c):02x})" for c in word)


_KEY = "(?:" + "|".join(_spelled(k) for k in _SECRET_KEYS) + ")"
# `key=value` in a query string or a connection string; a quoted value may hold spaces and
# escaped quotes (libpq's `password='a \' b'`).
_KEY_VALUE = re.compile(
    rf"(?<![\w%])({_KEY})(\s*=\s*)('(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s&'\"]*)",
    re.IGNORECASE,
)
# `scheme://user:password@`: the password runs to the last `@` of the URL (an unencoded `@` in
# a password must not leave its tail shown).
_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://[^\s:/@'\"]*:)[^\s'\"]*@", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """`text` with every password a URL or a connection string in it carries replaced by
    `***`; everything else is left as it is."""
    text = _USERINFO.sub(rf"\g<1>{MASK}@", text)
    return _KEY_VALUE.sub(rf"\g<1>\g<2>{MASK}", text)


def has_secret(text: str) -> bool:
    """Whether `text` carries a password in any form `mask_secrets` masks."""
    return mask_secrets(text) != text


class MaskingFormatter(logging.Formatter):
    """Another formatter's lines (tracebacks included), their secrets masked."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(self.inner.format(record))


def mask_log_handlers(logger: logging.Logger | None = None) -> None:
    """Make every handler of `logger` (the root logger by default) mask secrets, keeping its
    format."""
    for handler in (logger or logging.getLogger()).handlers:
        current = handler.formatter or logging.Formatter()
        if not isinstance(current, MaskingFormatter):
            handler.setFormatter(MaskingFormatter(current))


# --- secret files removed when this process ends ---

_OWNED: set[Path] = set()
_LOCK = threading.Lock()
_REGISTERED: list[int] = []  # the process that registered the exit handler
# 128 + SIGTERM: the exit code of a worker stopped by a signal (`ExitCode.INTERRUPTED`).
_SIGTERM_EXIT = 143


def _remove_owned() -> None:
    if os.getpid() not in _REGISTERED:  # a forked child: the files are its parent's
        return
    with _LOCK:
        for path in list(_OWNED):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            _OWNED.discard(path)


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(_SIGTERM_EXIT)


def remove_at_exit(path: Path) -> None:
    """Delete `path` when this process ends: normally, by an exception, or by SIGTERM (only
    SIGKILL can keep it). SIGTERM is made to end the process through its exit handlers when
    nothing else handles it; a handler installed later (a worker's) ends it the same way."""
    with _LOCK:
        if os.getpid() not in _REGISTERED:
            _REGISTERED[:] = [os.getpid()]
            _OWNED.clear()  # a forked child owns none of its parent's files
            atexit.register(_remove_owned)
        _OWNED.add(path)
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _exit_on_sigterm)
