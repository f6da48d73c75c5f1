"""`finscale check`: every study of a spec checked before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finscale.cli import views
from finscale.cli.common import _ok, _problem, _select, _state, err, out
from finscale.errors import ExitCode


def check_command(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML), or a study spec.")],
    study: Annotated[
        list[str] | None, typer.Option(help="Check only these studies (repeatable).")
    ] = None,
) -> None:
    """Check a spec before it runs: every study's budget has architectures (else the nearest
    budgets that do), its dataset is built (the pinned version), the storage answers, and a
    stored study has the same search and code. Creates nothing; exit 2 lists every problem."""
    from finscale.spec import load_studies

    settings = _state(ctx).settings
    specs = _select(load_studies(spec), study)
    from finscale.hpo.preflight import check_specs

    check = check_specs(spec, specs, settings)
    views.show(out, views.check_table(check, width=out.width))
    out.print(f"storage {check.storage}", highlight=False, soft_wrap=True)
    problems = check.all_problems
    for problem in problems:
        err.print(_problem(problem), highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(code=ExitCode.BAD_INPUT)
    out.print(_ok(f"{spec}: ready to run"), highlight=False)
