"""`finscale status` and `finscale report`: what the storage holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finscale.cli import views
from finscale.cli.common import (
    _say,
    _state,
    out,
)


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
    top_k: Annotated[
        int | None,
        typer.Option(
            help="Cap on m, the trials each budget's point is the expected best of "
            "(default: the fewest finished trials among the budgets)."
        ),
    ] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and importances.")] = 0,
    plots: Annotated[bool, typer.Option(help="Write the PNG figures.")] = True,
) -> None:
    """Studies → trials CSV/JSON, best trials, scaling fit with its uncertainty, architecture
    analysis, PNG plots and a Markdown summary. Reads the storage; never writes to it."""
    from finscale.hpo import display_url, open_for_reading, read_studies
    from finscale.report import write_report
    from finscale.report.summary import alpha_interval
    from finscale.spec import load_studies

    if (top_k is not None and top_k < 1) or resamples < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--top-k/--resamples")
    settings = _state(ctx).settings
    expected = [s.name for s in load_studies(spec)] if spec is not None else None
    storage = open_for_reading(settings)
    stored = read_studies(storage, study, deadline_s=settings.storage_deadline_s) if storage else []
    target = out_dir or settings.runs_dir / "report"
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
    finals = {f.horizon: f for f in report.finals}
    for a in report.scaling:
        final = finals.get(a.horizon)
        if final is not None and final.fit is not None:
            _say(f"horizon {a.horizon}, test: {final.fit.sentence}")
        if a.scaling is None:
            _say(f"horizon {a.horizon}: no fit ({a.note})")
        else:
            _say(f"horizon {a.horizon}, validation: {a.scaling.sentence}")
            e = a.scaling.exponent
            if e is not None:
                ci = f", 95 % interval {alpha_interval(e)}" if e.n_resamples else ""
                _say(f"horizon {a.horizon}: exponent of the reducible loss α = {e.alpha:.3f}{ci}")
    for f in report.flags:
        if f.sentences():
            _say(f"caution: {f.study}: {'; '.join(f.sentences())}")
    unfinished = [r.name for r in report.studies if not r.done]
    if unfinished:
        out.print(f"partial: {', '.join(unfinished)} not finished", highlight=False)
    if report.missing:
        out.print(f"partial: {', '.join(report.missing)} not started", highlight=False)
    out.print(
        f"report of {len(report.studies)} {'study' if len(report.studies) == 1 else 'studies'} "
        f"in {target}: {report.summary.name} and {len(report.files) - 1} more files",
        highlight=False,
    )
