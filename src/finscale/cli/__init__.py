"""The `finscale` command: parse, build settings, call one function, map the outcome to an exit
code. No logic lives here. One module per command group; this one lists the commands (in the
order `--help` shows them) and holds the entry point."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import typer
from rich.text import Text

from finscale.cli.check import check_command
from finscale.cli.cluster import cancel_command, submit_command, watch_command
from finscale.cli.common import DISK_ERRORS, _State, app, err, log, runs_a_worker, size_consoles
from finscale.cli.dashboard import dashboard_command
from finscale.cli.data import data_app
from finscale.cli.plan import plan_command
from finscale.cli.render import grid_command, render_command
from finscale.cli.report import compare_command, report_command, status_command
from finscale.cli.run import evaluate_command, run_command, train_command, worker_command
from finscale.errors import FinscaleError
from finscale.json_lines import log_json_lines
from finscale.redaction import mask_secrets
from finscale.settings import load_settings

app.add_typer(data_app, name="data")
app.command("check")(check_command)
app.command("plan")(plan_command)
app.command("grid")(grid_command)
app.command("train")(train_command)
app.command("render")(render_command)
app.command("worker")(worker_command)
app.command("run")(run_command)
app.command("evaluate")(evaluate_command)
app.command("status")(status_command)
app.command("report")(report_command)
app.command("compare")(compare_command)
app.command("submit")(submit_command)
app.command("watch")(watch_command)
app.command("cancel")(cancel_command)
app.command("dashboard")(dashboard_command)

__all__ = ["app", "main"]


def _print_error(message: str, *, json_lines: bool) -> None:
    """`error: MESSAGE`, the message as it is (no markup, no highlighting) but for the
    passwords it may quote, which are masked; a worker logs it, a JSON line like its others."""
    if json_lines:
        log.error("%s", message)
        return
    err.print(
        Text.assemble(("error:", "red"), " ", mask_secrets(message)),
        highlight=False,
        soft_wrap=True,
    )


def _print_traceback(*, json_lines: bool) -> None:
    """The traceback of the error being handled, its secrets masked."""
    if json_lines:
        kind, value, _ = sys.exc_info()
        log.error(
            "%s", "".join(traceback.format_exception_only(kind, value)).strip(), exc_info=True
        )
        return
    err.print(mask_secrets(traceback.format_exc()).rstrip(), highlight=False, soft_wrap=True)


def plain_help(command: Any) -> None:
    """Help as a person reads it: a flag shows no `<bool>`, an argument its name in capitals
    (`SPEC`, not `{spec}`), and a command's line in the list is its first paragraph joined
    (the docstrings' own line breaks are for the source, not for the terminal)."""
    # Typer's own copy of click: its classes are known by their kind, not by click's types.
    for param in command.params:
        kind = getattr(param, "param_type_name", "")
        if kind == "option" and param.is_flag and param.metavar is None:
            param.metavar = ""
        elif kind == "argument" and param.metavar is None and param.name:
            param.metavar = param.name.upper() + ("..." if param.nargs != 1 else "")
    if command.help and command.short_help is None:
        command.short_help = " ".join(command.help.split("\n\n")[0].split())
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)


def debug_first(argv: list[str]) -> list[str]:
    """`--debug` wherever a person typed it (`finscale run SPEC --debug`), moved before the
    command, where it is defined; one after `--` is left alone."""
    end = argv.index("--") if "--" in argv else len(argv)
    if "--debug" not in argv[1:end]:
        return argv
    return ["--debug", *(a for i, a in enumerate(argv) if a != "--debug" or i >= end)]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `finscale` console script: builds the settings, runs the app, and
    turns a `FinscaleError` into its message and exit code (a traceback only with `--debug`).

    A file that cannot be read or written (an output folder without permission, a spec path
    that is a folder, a full disk) is bad input too: one line and exit 2.
    """
    state: _State | None = None
    argv = debug_first(sys.argv[1:] if argv is None else argv)
    size_consoles()
    json_lines = runs_a_worker(argv)
    if json_lines:  # from the first line on, a settings error included
        log_json_lines(logging.INFO)
    try:
        state = _State(settings=load_settings(), json_lines=json_lines)
        command = typer.main.get_command(app)
        plain_help(command)
        command.main(args=argv, prog_name="finscale", obj=state)
    except FinscaleError as e:
        if state is not None and state.debug:
            _print_traceback(json_lines=json_lines)
        _print_error(str(e), json_lines=json_lines)
        sys.exit(e.exit_code)
    except OSError as e:
        if e.filename is None and e.errno not in DISK_ERRORS:  # a bug, with its traceback
            _print_traceback(json_lines=json_lines)
            sys.exit(1)
        if state is not None and state.debug:
            _print_traceback(json_lines=json_lines)
        where = e.filename if e.filename is not None else "writing a file"
        _print_error(f"{where}: {e.strerror or e}", json_lines=json_lines)
        sys.exit(2)
    except Exception:  # a bug: its traceback, with any password masked
        _print_traceback(json_lines=json_lines)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
