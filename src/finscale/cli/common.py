"""The app, its consoles and what every command group shares: the global options' state, the
marks of a passed or failed check, plain printing, and the choice of studies."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from finscale.errors import SpecError
from finscale.redaction import mask_log_handlers
from finscale.settings import RENAMED, Settings, unknown_variables

app = typer.Typer(
    name="finscale",
    help="Architectural hyper-parameter search for transformers on daily market data.\n\n"
    "Settings come from the environment (docs/settings.md): FINSCALE_STORAGE_URL (the studies; "
    "default sqlite:///runs/finscale.db), FINSCALE_DATA_DIR (the datasets; default data), "
    "FINSCALE_RUNS_DIR (logs; default runs), FINSCALE_DEVICE (auto, cpu, cuda).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# No markup: paths, values and messages print as they are (`[bold]` in a file name stays
# `[bold]`); styles are explicit. `size_consoles` fits them to where their output goes.
out = Console(markup=False)
err = Console(stderr=True, markup=False)
# The width of tables written to a file or a pipe when COLUMNS does not say.
FILE_WIDTH = 100


def output_width(environ: Mapping[str, str]) -> int:
    """The width of output that is not a terminal: COLUMNS when set, else FILE_WIDTH."""
    columns = environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else FILE_WIDTH


def size_consoles() -> None:
    """A terminal's output follows the terminal. Output to a file or a pipe (CI logs) draws
    tables at `output_width` and never wraps lines of text."""
    for console in (out, err):
        if not console.is_terminal:
            console.width = output_width(os.environ)
            console.soft_wrap = True


log = logging.getLogger("finscale")

# What a write may meet on a disk: full, over quota, read-only, no permission, failing.
DISK_ERRORS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)


@contextlib.contextmanager
def writing_into(path: Path) -> Iterator[None]:
    """A disk error raised inside without a file name (a write that found the disk full) names
    `path`, the folder being written, so that the user learns where and why."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or e.errno not in DISK_ERRORS:
            raise
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e


@dataclass
class _State:
    """What the global options set, for the command and for `main`'s error handler."""

    settings: Settings
    debug: bool = False
    json_lines: bool = False  # a worker: every line it writes is JSON (`finscale.json_lines`)


def runs_a_worker(args: list[str]) -> bool:
    """Whether a command line runs `finscale worker` (the global options are flags only, so the
    first word that is not one names the command)."""
    return next((a for a in args if not a.startswith("-")), None) == "worker"


def _ok(text: str) -> Text:
    return Text.assemble(("✓", "green"), " ", text)


def _problem(text: str) -> Text:
    return Text.assemble(("✗", "red"), " ", text)


def _state(ctx: typer.Context) -> _State:
    state = ctx.find_root().obj
    assert isinstance(state, _State)
    return state


def _print_version(value: bool) -> None:
    if value:
        from finscale import __version__
        from finscale.identity import code_sha256

        _say(f"finscale {__version__} (code {code_sha256()[:12]})")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print finscale's version and code identity, then exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    state = _state(ctx)
    state.debug = debug
    settings = state.settings
    level = logging.DEBUG if debug else getattr(logging, settings.log_level)
    if state.json_lines:  # JSON lines since `main` began (a settings error included)
        logging.getLogger().setLevel(level)
    else:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
            stream=sys.stderr,
            force=True,
        )
        mask_log_handlers()
    for name in unknown_variables():
        if name.upper() in RENAMED:
            log.warning("%s is no longer read; use %s", name, RENAMED[name.upper()])
        else:
            log.warning("%s is set but no finscale setting reads it (a typo?)", name)


def _say(text: str) -> None:
    """Print text as it is: no markup, no highlighting."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def _select(specs: list[Any], names: list[str] | None) -> list[Any]:
    """The studies named (all when none), or a usage error of --study listing the studies."""
    from finscale.spec import select_studies

    try:
        return select_studies(specs, names)
    except SpecError as e:
        raise typer.BadParameter(str(e), param_hint="--study") from None
