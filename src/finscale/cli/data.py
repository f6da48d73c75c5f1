"""`finscale data`: build, verify, list and summarize the market datasets."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from finscale import defaults
from finscale.cli import views
from finscale.cli.bounds import bounded
from finscale.cli.choices import Allowance, DatasetKind, PriceTarget, Source
from finscale.cli.common import (
    _ok,
    _problem,
    _say,
    _state,
    err,
    out,
)
from finscale.errors import ExitCode
from finscale.tiers import default_kinds, input_names

data_app = typer.Typer(help="Build, verify and inspect the market datasets.", no_args_is_help=True)


@data_app.command("build")
def data_build(
    ctx: typer.Context,
    source: Annotated[
        Source,
        typer.Option(
            help="Where the bars come from: sample, csv, yfinance, or snapshot (the raw "
            "snapshots of an earlier build, as a data Job gets them from `finscale render`)."
        ),
    ] = Source.sample,
    ticker: Annotated[
        str | None,
        typer.Option(
            help="Symbol, recorded as given (^IXIC; files are named IXIC). sample: GSPC or "
            "IXIC; yfinance: SPY by default; csv and snapshot: required."
        ),
    ] = None,
    csv: Annotated[
        Path | None, typer.Option(help="CSV of daily bars (Date, Open, High, Low, Close, Volume).")
    ] = None,
    kind: Annotated[
        list[DatasetKind] | None,
        typer.Option(
            "--kind",
            help=(
                "Dataset kind to build (repeatable; default: the kinds built by default that "
                f"the source can feed, {default_kinds()}; the others by name)."
            ),
        ),
    ] = None,
    input_csv: Annotated[
        list[str] | None,
        typer.Option(
            "--input-csv",
            metavar="NAME=FILE",
            help=f"CSV (Date, Close) of an input series, csv source only ({input_names()}).",
        ),
    ] = None,
    snapshot_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of raw snapshots (<raw name>.parquet), snapshot source only."),
    ] = None,
    expect_sha256: Annotated[
        list[str] | None,
        typer.Option(
            "--expect-sha256",
            metavar="NAME=DIGEST",
            help="The sha256 a built dataset must have (repeatable); any other version is "
            "refused with exit 2 and nothing is written.",
        ),
    ] = None,
    max_jump: Annotated[
        float, typer.Option(help="Most a price may move from the previous close, as a factor.")
    ] = 10.0,
    max_day_range: Annotated[
        float, typer.Option(help="Most a day's High may be above its Low, as a factor.")
    ] = 10.0,
    max_volume: Annotated[float, typer.Option(help="Most shares a day may trade.")] = 1e13,
    max_feature: Annotated[
        float, typer.Option(help="Largest magnitude of a feature after the build.")
    ] = 1e18,
    max_price: Annotated[float, typer.Option(help="Highest price a bar may have.")] = 1e12,
    allow: Annotated[
        list[Allowance] | None,
        typer.Option(
            "--allow",
            help="Accept, with a warning, what is refused by default as implausible: dates "
            "before 1900, gaps of more than 30 days, a close unchanged or no volume for 10 "
            "rows in a row (repeatable).",
        ),
    ] = None,
    if_missing: Annotated[
        bool,
        typer.Option(
            "--if-missing",
            help="Do nothing when the datasets this build makes are already built and intact "
            "(a data Job applied twice downloads once).",
        ),
    ] = False,
) -> None:
    """Raw daily bars → indicators → datasets, registered in the data manifest.

    Bars are refused, naming file, row, column and value, when they are implausible: a price
    more than --max-jump times (or less than 1/--max-jump of) the previous close, a High more
    than --max-day-range times the Low, a volume above --max-volume, a price above --max-price,
    or a feature beyond --max-feature after the build; a date in the future; and, unless
    --allow accepts them, a date before 1900, a gap of more than 30 days between bars, or a
    close unchanged or a volume of 0 for 10 rows in a row. Bars on weekends and a few days
    without volume are warned of. Raise a bound for an instrument that needs it.
    """
    from finscale.data import (
        Plausibility,
        already_expected,
        build_datasets,
        load_inputs,
        parse_expected,
        parse_input_csv,
    )

    settings = _state(ctx).settings
    bounds = Plausibility(
        max_jump=max_jump,
        max_day_range=max_day_range,
        max_volume=max_volume,
        max_feature=max_feature,
        max_price=max_price,
        allow=frozenset(a.value for a in allow or []),
    )
    input_files = parse_input_csv(input_csv or [])
    kinds = None if kind is None else [str(k.value) for k in kind]
    expect = parse_expected(expect_sha256 or [])
    if if_missing:
        from finscale.data import already_built

        # With expected versions, those versions (not merely the names) must be there.
        built = (
            already_expected(settings.data_dir, expect)
            if expect
            else already_built(
                settings.data_dir, source.value, ticker, kinds=kinds, input_csv=input_files
            )
        )
        if built is not None:
            _say(f"{', '.join(built)}: already built in {settings.data_dir}; nothing to do")
            return
    if snapshot_dir is not None:
        from finscale.data.inputs import check_snapshots

        check_snapshots(snapshot_dir, expect)
    inputs = load_inputs(
        source.value,
        ticker=ticker,
        csv_path=csv,
        kinds=kinds,
        input_csv=input_files,
        sample_dir=settings.sample_dir,
        bounds=bounds,
        snapshot_dir=snapshot_dir,
    )
    made = build_datasets(inputs, data_dir=settings.data_dir, bounds=bounds, expect=expect)
    views.show(out, views.built_table(made, settings.data_dir, width=out.width))


@data_app.command("verify")
def data_verify(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option(help="Check only this dataset.")] = None,
    sha256: Annotated[
        str | None, typer.Option(help="With --dataset: the version it must be.")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            help="With --dataset: seconds to wait for it to appear (at most a day).",
            callback=bounded(0, defaults.MAX_WAIT_S),
        ),
    ] = 0.0,
) -> None:
    """Check the latest manifest entry of every dataset: its file exists inside the data
    folder, with the recorded size, sha256, rows, columns and dates, and its lookback is the
    one its features read."""
    from finscale.data import verify_manifest, wait_for_dataset
    from finscale.data.integrity import entry_problems

    data_dir = _state(ctx).settings.data_dir
    if dataset is not None:
        found = wait_for_dataset(data_dir, dataset, sha256=sha256, timeout_s=wait)
        problems = entry_problems(data_dir, found.entry)
        for problem in problems:
            err.print(_problem(problem), highlight=False)
        if problems:
            raise typer.Exit(code=ExitCode.BAD_INPUT)
        out.print(_ok(f"{found.name} {found.sha256} matches"), highlight=False)
        return
    problems = verify_manifest(data_dir)
    for problem in problems:
        err.print(_problem(problem), highlight=False)
    if problems:
        raise typer.Exit(code=ExitCode.BAD_INPUT)
    out.print(
        _ok(f"every dataset in {data_dir / 'manifest.json'} matches its sha256"),
        highlight=False,
    )


@data_app.command("list")
def data_list(ctx: typer.Context) -> None:
    """List the latest version of every dataset in the manifest."""
    from finscale.data import read_manifest

    data_dir = _state(ctx).settings.data_dir
    manifest = read_manifest(data_dir)
    entries = [e for e in map(manifest.latest, manifest.names()) if e is not None]
    views.show(out, views.manifest_table(entries, data_dir / "manifest.json", width=out.width))


def _horizons(text: str) -> str:
    """Comma-separated horizons, each a whole number of days from 1 to the most."""
    try:
        days = [int(h) for h in text.split(",")]
    except ValueError:
        days = []
    if not days or any(not 1 <= h <= defaults.MAX_HORIZON for h in days):
        shown = text if len(text) <= 80 else f"{text[:80]}…"
        raise typer.BadParameter(
            f"{shown!r}; expected days from 1 to {defaults.MAX_HORIZON}, like 1,3,5"
        )
    return text


@data_app.command("summary")
def data_summary(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Datasets (default: every dataset in the manifest).")
    ] = None,
    context_length: Annotated[
        int,
        typer.Option(
            help="Rows of features per window.",
            callback=bounded(2, defaults.MAX_CONTEXT_LENGTH),
        ),
    ] = defaults.CONTEXT_LENGTH,
    horizons: Annotated[
        str, typer.Option(help="Comma-separated horizons in days.", callback=_horizons)
    ] = "1,3,5",
    threshold: Annotated[
        float,
        typer.Option(help="Rise that makes a positive label.", callback=bounded(0, 1, below=True)),
    ] = defaults.THRESHOLD,
    target: Annotated[
        PriceTarget, typer.Option(help="close or high: which future price must rise.")
    ] = PriceTarget.close,
) -> None:
    """Windows per split (chronological and chunks) and positive rates of each dataset."""
    from finscale.data import load_dataset, read_manifest, summarize_splits
    from finscale.data.summary import column_groups

    data_dir = _state(ctx).settings.data_dir
    hs = tuple(int(h) for h in horizons.split(","))
    manifest = read_manifest(data_dir)
    chosen = names or manifest.datasets()
    if not chosen:
        err.print(f"no datasets in {data_dir}; run `finscale data build` first")
        raise typer.Exit(code=ExitCode.BAD_INPUT)
    for name in chosen:
        dataset = load_dataset(data_dir, name)
        e = dataset.entry
        out.print(
            Text.assemble(
                "\n",
                (name, "bold"),
                f"  {e.rows} rows, {e.start} .. {e.end}, "
                f"{len(dataset.feature_columns)} features, sha256 {e.sha256}",
            ),
            highlight=False,
        )
        rows = summarize_splits(
            dataset,
            context_length=context_length,
            horizons=hs,
            threshold=threshold,
            target=target.value,
        )
        for label, columns in column_groups(name, dataset.feature_columns):
            lines = textwrap.wrap(
                f"{label} ({len(columns)}): {', '.join(columns)}",
                width=max(40, out.width - 2),
                initial_indent="  ",
                subsequent_indent="      ",
                break_on_hyphens=False,
            )
            out.print("\n".join(lines), highlight=False)
        views.show(out, views.splits_table(rows, width=out.width))
        for mode in ("chronological", "chunks"):
            settings = next(r.settings for r in rows if r.mode == mode)
            out.print(f"  {mode}: {settings}; context {context_length}", highlight=False)
