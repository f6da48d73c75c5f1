"""`finscale status` and `finscale report`: what the storage holds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from finscale import defaults
from finscale.cli import views
from finscale.cli.bounds import bounded
from finscale.cli.cluster import (
    Context,
    Image,
    Kube,
    Kubeconfig,
    KubeNamespace,
    KubeTimeout,
    run_remote,
)
from finscale.cli.common import (
    _say,
    _state,
    out,
    writing_into,
)
from finscale.cli.render import STORAGE_URL, StorageUrl
from finscale.settings import Settings

if TYPE_CHECKING:
    from finscale.records import StoredStudy

# The analysis options `report` and `compare` share (compare passes them to each report).
TopK = Annotated[
    int | None,
    typer.Option(
        help="Cap on m, the trials each budget's point is the expected best of "
        "(default: the fewest finished trials among the budgets).",
        callback=bounded(1, defaults.MAX_TRIALS),
    ),
]
Resamples = Annotated[
    int, typer.Option(help="Bootstrap resamples.", callback=bounded(1, 1_000_000))
]
Seed = Annotated[
    int,
    typer.Option(
        help="Seed of the bootstrap and importances.", callback=bounded(0, defaults.MAX_SEED)
    ),
]
Plots = Annotated[bool, typer.Option(help="Write the PNG figures.")]


def _stored(settings: Settings, names: list[str] | None = None) -> list[StoredStudy]:
    """The studies the storage holds (`names` only, when given); none without a storage."""
    from finscale.hpo import open_for_reading, read_studies

    storage = open_for_reading(settings)
    return read_studies(storage, names, deadline_s=settings.storage_deadline_s) if storage else []


def status_command(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Studies (default: all).")] = None,
    *,
    kube: Kube = False,
    image: Image = None,
    storage_url: StorageUrl = STORAGE_URL,
    namespace: KubeNamespace = "finscale",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    timeout: KubeTimeout = 600,
) -> None:
    """Studies and trials in the storage: counts by state, budget, best value and architecture.
    With --kube, of the cluster's storage (--storage-url, as the workers see it)."""
    from finscale.hpo import display_url, open_for_reading, summarize_storage

    if kube:
        run_remote(
            ["status", *(names or [])],
            image=image,
            storage_url=storage_url,
            namespace=namespace,
            kubeconfig=kubeconfig,
            context=context,
            timeout_s=timeout,
        )
        return
    settings = _state(ctx).settings
    storage = open_for_reading(settings)
    summaries = (
        summarize_storage(storage, names, deadline_s=settings.storage_deadline_s) if storage else []
    )
    if not summaries:
        out.print(f"no studies in {display_url(settings.storage_url)}", highlight=False)
        return
    views.show(
        out, views.status_table(summaries, display_url(settings.storage_url), width=out.width)
    )


def report_command(
    ctx: typer.Context,
    study: Annotated[
        list[str] | None, typer.Option(help="Report only these studies (repeatable).")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Report only the studies of this experiment.")
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(help="Experiment spec: report its studies, naming those not started."),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder of the report (default: RUNS_DIR/report).")
    ] = None,
    top_k: TopK = None,
    resamples: Resamples = 2000,
    seed: Seed = 0,
    plots: Plots = True,
    kube: Kube = False,
    image: Image = None,
    storage_url: StorageUrl = STORAGE_URL,
    namespace: KubeNamespace = "finscale",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    timeout: KubeTimeout = 1800,
) -> None:
    """Studies → trials CSV/JSON, best trials, scaling fit with its uncertainty, architecture
    analysis, PNG plots and a Markdown summary. Reads the storage; never writes to it."""
    from finscale.hpo import display_url
    from finscale.report import write_report
    from finscale.report.lines import answer_lines, closing_lines
    from finscale.spec import load_studies

    settings = _state(ctx).settings
    target = out_dir or settings.runs_dir / "report"
    if kube:
        if spec is not None:
            raise typer.BadParameter("the Job cannot read a local spec: name its --experiment")
        args = _report_args(study, experiment, top_k=top_k, resamples=resamples, seed=seed)
        run_remote(
            [*args, "--plots" if plots else "--no-plots"],
            into=target,
            image=image,
            storage_url=storage_url,
            namespace=namespace,
            kubeconfig=kubeconfig,
            context=context,
            timeout_s=timeout,
        )
        return
    expected = [s.name for s in load_studies(spec)] if spec is not None else None
    stored = _stored(settings, study)
    with writing_into(target):
        report = write_report(
            stored,
            target,
            storage=display_url(settings.storage_url),
            experiment=experiment,
            expected=expected,
            top_k=top_k,
            n_resamples=resamples,
            seed=seed,
            plots=plots,
        )
    for line in [*answer_lines(report), *closing_lines(report, target)]:
        _say(line)


def _report_args(
    study: list[str] | None, experiment: str | None, *, top_k: int | None, resamples: int, seed: int
) -> list[str]:
    """`finscale report`'s arguments for the Job of `report --kube`."""
    from finscale.k8s.remote import OUT_DIR

    args = ["report", "--out", OUT_DIR, "--resamples", str(resamples), "--seed", str(seed)]
    for name in study or []:
        args += ["--study", name]
    if experiment is not None:
        args += ["--experiment", experiment]
    if top_k is not None:
        args += ["--top-k", str(top_k)]
    return args


def compare_command(
    ctx: typer.Context,
    experiments: Annotated[
        list[str], typer.Argument(help="Two or more experiments, in the order to compare them.")
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Folder of the comparison (default: RUNS_DIR/compare)."),
    ] = None,
    top_k: TopK = None,
    resamples: Resamples = 2000,
    seed: Seed = 0,
    plots: Plots = True,
) -> None:
    """Experiments side by side: each one's report in a folder of its own (its own fit, never
    pooled) and comparison.md, pairing two markets by calendar date where they share test days.
    Reads the storage, and DATA_DIR to date the windows; never writes to the storage."""
    from finscale.hpo import display_url
    from finscale.report.comparison_page import console_lines
    from finscale.report.side_by_side import write_comparison

    settings = _state(ctx).settings
    stored = _stored(settings)
    target = out_dir or settings.runs_dir / "compare"
    with writing_into(target):
        done = write_comparison(
            stored,
            target,
            experiments=experiments,
            storage=display_url(settings.storage_url),
            data_dir=settings.data_dir,
            top_k=top_k,
            n_resamples=resamples,
            seed=seed,
            plots=plots,
        )
    for line in console_lines(done.comparison):
        _say(line)
    folders = ", ".join(f"{r.out.name}/" for r in done.reports)
    _say(
        f"comparison of {len(done.reports)} experiments in {target}: {done.page.name}, "
        f"comparison.json and their reports {folders}"
    )
