"""`finscale grid` and `finscale render`: the architectures of a budget, and the Jobs of a spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finscale import defaults
from finscale.cli import views
from finscale.cli.bounds import bounded
from finscale.cli.common import (
    _ok,
    _problem,
    err,
    out,
)
from finscale.errors import ExitCode
from finscale.tiers import DATASETS, features_help


def grid_command(
    budget: Annotated[str, typer.Argument(help="Parameter budget: 2M, 20M, 200M, 2B, 50K, …")],
    features: Annotated[
        int,
        typer.Option(
            help=f"Features per day ({features_help()}).",
            callback=bounded(1, defaults.MAX_FEATURES),
        ),
    ] = DATASETS["a25"].num_features,
    tolerance: Annotated[
        float,
        typer.Option(
            help="Accepted distance from the budget, as a fraction.",
            callback=bounded(0, 1, above=True, below=True),
        ),
    ] = 0.25,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """The architectures of a parameter budget, with exact parameter counts."""
    import json

    from finscale.model import budget_label, build_grid, parse_budget

    try:
        count = parse_budget(budget)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="BUDGET") from None
    grid = build_grid(count, num_features=features, tolerance=tolerance)
    if as_json:
        rows = [{"id": a.id, **a.dims(), "param_count": a.param_count} for a in grid]
        typer.echo(json.dumps(rows, indent=2))
        return
    title = (
        f"{budget_label(count)}: {len(grid)} architectures ({features} features, ±{tolerance:.0%})"
    )
    views.show(out, views.grid_table(grid, title=title, width=out.width))


def _namespace(name: str) -> str:
    from finscale.spec import NAME_LIMIT
    from finscale.spec.base import DNS1123, shorten

    if len(name) > NAME_LIMIT or not DNS1123.match(name):
        raise typer.BadParameter(
            f"{shorten(name)} is not a DNS-1123 name of at most {NAME_LIMIT} characters "
            "(lower-case letters, digits and '-')"
        )
    return name


def render_command(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder of the manifests.")] = Path("jobs"),
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the folder differs; write nothing.")
    ] = False,
    namespace: Annotated[
        str, typer.Option(help="Namespace of the rendered objects.", callback=_namespace)
    ] = "finscale",
    storage_url: Annotated[
        str, typer.Option(help="Storage URL the workers use (no password).")
    ] = "postgresql://finscale@finscale-postgres:5432/finscale",
) -> None:
    """One Job (and the ConfigMap holding its StudySpec) per study, into --out."""
    from finscale.k8s import ClusterOptions, drift, render, write

    files = render(spec, options=ClusterOptions(namespace=namespace, storage_url=storage_url))
    if check:
        problems = drift(files, out_dir)
        for problem in problems:
            err.print(_problem(problem), highlight=False)
        if problems:
            err.print(f"re-render with: finscale render {spec} --out {out_dir}", highlight=False)
            raise typer.Exit(code=ExitCode.ERROR)
        out.print(_ok(f"{out_dir} matches {spec} ({len(files)} files)"), highlight=False)
        return
    written = write(files, out_dir)
    out.print(
        f"{len(files)} manifests of {spec} in {out_dir}; {len(written)} changed", highlight=False
    )
    for path in written:
        out.print(f"  {path}", highlight=False)
