"""`finscale grid` and `finscale render`: the architectures of a budget, and the Jobs of a spec."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from finscale import defaults
from finscale.cli import views
from finscale.cli.bounds import bounded
from finscale.cli.choices import DataFrom, PullPolicy
from finscale.cli.common import _ok, _problem, _state, err, out
from finscale.errors import ExitCode, SpecError
from finscale.tiers import DATASETS, features_help

if TYPE_CHECKING:
    from finscale.spec import StudySpec


def grid_command(
    ctx: typer.Context,
    budget: Annotated[
        str | None,
        typer.Argument(help="Parameter budget: 2M, 20M, 200M, 2B, 50K, … (or --spec)."),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            help="An experiment spec: each study's grid, with its space, tolerance and model "
            "(its dataset's feature count, from the data when built)."
        ),
    ] = None,
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
    """The architectures of a parameter budget (or of each study of a spec), with exact
    parameter counts."""
    import json

    from finscale.model import budget_label, build_grid, parse_budget

    if spec is not None:
        if budget is not None:
            raise typer.BadParameter("give a budget or --spec, not both", param_hint="BUDGET")
        _spec_grids(ctx, spec, as_json=as_json)
        return
    if budget is None:
        raise typer.BadParameter("give a budget (e.g. 2M) or --spec SPEC", param_hint="BUDGET")
    try:
        count = parse_budget(budget)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="BUDGET") from None
    grid = build_grid(count, num_features=features, tolerance=tolerance)
    if not grid:
        from finscale.model import nearest_budgets, space_archs

        near = nearest_budgets(count, space_archs(num_features=features), tolerance=tolerance)
        raise typer.BadParameter(
            f"no architecture of the default space has {budget} ± {tolerance:.0%} parameters "
            f"with {features} features; nearest budgets with architectures: {' and '.join(near)}",
            param_hint="BUDGET",
        )
    if as_json:
        rows = [{"id": a.id, **a.dims(), "param_count": a.param_count} for a in grid]
        typer.echo(json.dumps(rows, indent=2))
        return
    title = (
        f"{budget_label(count)}: {len(grid)} architectures ({features} features, ±{tolerance:.0%})"
    )
    views.show(out, views.grid_table(grid, title=title, width=out.width))


def _spec_grids(ctx: typer.Context, spec: Path, *, as_json: bool) -> None:
    """`grid --spec`: each study's grid; exit 2 naming every study whose grid is empty."""
    import json

    from finscale.hpo.preflight import check_study
    from finscale.spec import load_studies

    settings = _state(ctx).settings
    checks = [check_study(s, settings) for s in load_studies(spec)]
    if as_json:
        rows = {
            c.name: [{"id": a.id, **a.dims(), "param_count": a.param_count} for a in c.grid]
            for c in checks
        }
        typer.echo(json.dumps(rows, indent=2))
    else:
        for c in (c for c in checks if c.grid):
            title = f"{c.name}: {len(c.grid)} architectures ({c.num_features} features)"
            views.show(out, views.grid_table(list(c.grid), title=title, width=out.width))
    empty = [f"study {c.name}: {c.problems[0]}" for c in checks if not c.grid and c.problems]
    if empty:
        raise SpecError("\n".join(empty))


def _namespace(name: str | None) -> str | None:
    from finscale.spec import NAME_LIMIT
    from finscale.spec.base import DNS1123, shorten

    if name is None:
        return None
    if len(name) > NAME_LIMIT or not DNS1123.match(name):
        raise typer.BadParameter(
            f"{shorten(name)} is not a DNS-1123 name of at most {NAME_LIMIT} characters "
            "(lower-case letters, digits and '-')"
        )
    return name


# The options of rendered objects that `render` and `submit` share.
STORAGE_URL = "postgresql://finscale@finscale-postgres:5432/finscale"
StorageUrl = Annotated[str, typer.Option(help="Storage URL the workers use (no password).")]
Registry = Annotated[
    str | None,
    typer.Option(
        help="Your registry and path (registry.example.com/team): every image is pulled "
        "from there, its name and tag kept."
    ),
]
PullPolicyOption = Annotated[
    PullPolicy,
    typer.Option(
        help="imagePullPolicy: IfNotPresent (digests, a tag per build) or Always (a tag "
        "that moves)."
    ),
]
DataFromOption = Annotated[
    DataFrom,
    typer.Option(
        help="Where a data Job gets a dataset the image lacks: local (the bars it was built "
        "from in the data directory, shipped and rebuilt on the cluster, its sha256 checked "
        "and pinned by the studies) or download (Yahoo Finance on the cluster; the studies "
        "pin what it built)."
    ),
]


def render_command(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder of the manifests.")] = Path("jobs"),
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the folder differs; write nothing.")
    ] = False,
    namespace: Annotated[
        str, typer.Option(help="Namespace of the rendered objects.", callback=_namespace)
    ] = "finscale",
    storage_url: StorageUrl = STORAGE_URL,
    registry: Registry = None,
    pull_policy: PullPolicyOption = PullPolicy.IfNotPresent,
    data_from: DataFromOption = DataFrom.local,
) -> None:
    """One Job (and the ConfigMap holding its StudySpec) per study, into --out; a data Job per
    ticker whose datasets the image lacks."""
    from finscale.hpo.preflight import check_grids
    from finscale.k8s import ClusterOptions, drift, render, write
    from finscale.spec import load_studies

    # A Job for a budget without architectures would only fail on the cluster, after its pods
    # were scheduled: refused here (the feature count from the dataset's kind).
    problems = check_grids(load_studies(spec))
    if problems:
        raise SpecError("\n".join(problems))
    options = ClusterOptions(
        namespace=namespace,
        storage_url=storage_url,
        registry=registry,
        pull_policy=str(pull_policy),
    )
    data_dir = _state(ctx).settings.data_dir
    files = render(spec, options=options, data_from=data_from.value, data_dir=data_dir)
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
    folders = sorted({str(Path(name).parent) for name in files})
    changed = f"{len(written)} files changed" if written else "nothing changed"
    out.print(
        f"{len(files)} manifests of {spec} in {out_dir} ({', '.join(folders)}; kustomizations "
        f"beside them); {changed}",
        highlight=False,
        soft_wrap=True,
    )
    for path in written:
        out.print(f"  {path}", highlight=False)
    for note in _idle_gpu_notes(load_studies(spec)):
        err.print(f"note: {note}", highlight=False, soft_wrap=True)


def _idle_gpu_notes(studies: list[StudySpec]) -> list[str]:
    """A study whose model is too small to keep a GPU busy but asks for GPUs: said, since it
    would hold them (and wait for them in a queue) for no speed."""
    notes = []
    for s in studies:
        r = s.resources
        if r.gpus > 0 and s.budget_params < defaults.SMALL_FOR_A_GPU:
            notes.append(
                f"{s.name} ({s.budget} parameters) asks {s.workers} pods × {r.gpus} GPU × "
                f"{r.memory_request} memory; a model this small leaves a GPU idle: "
                "`resources: {gpus: 0}` with the CPU image runs it on CPU nodes"
            )
    return notes
