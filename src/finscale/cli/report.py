"""`finscale status` and `finscale report`: what the storage holds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from finscale import defaults
from finscale.cli import views
from finscale.cli.bounds import bounded
from finscale.cli.common import (
    _say,
    _state,
    out,
    writing_into,
)
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
) -> None:
    """Studies and trials in the storage: counts by state, budget, best value and architecture."""
    from finscale.hpo import display_url, open_for_reading, summarize_storage

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
) -> None:
    """Studies → trials CSV/JSON, best trials, scaling fit with its uncertainty, architecture
    analysis, PNG plots and a Markdown summary. Reads the storage; never writes to it."""
    from finscale.hpo import display_url
    from finscale.report import write_report
    from finscale.report.lines import answer_lines, closing_lines
    from finscale.spec import load_studies

    settings = _state(ctx).settings
    expected = [s.name for s in load_studies(spec)] if spec is not None else None
    stored = _stored(settings, study)
    target = out_dir or settings.runs_dir / "report"
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
