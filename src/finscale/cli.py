"""The `finscale` command: parse, build settings, call one function, map the outcome to an exit
code. No logic lives here."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from finscale import defaults
from finscale.errors import ExitCode, FinscaleError, SpecError
from finscale.settings import RENAMED, Settings, load_settings, unknown_variables
from finscale.tiers import DATASETS, features_help

app = typer.Typer(
    name="finscale",
    help="Architectural hyper-parameter search for transformers on daily market data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Build, verify and inspect the market datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

# Piped output (CI logs, files) is not wrapped at 80 columns. No markup: paths, values and
# messages print as they are (`[bold]` in a file name stays `[bold]`); styles are explicit.
_WIDE = 200
out = Console(width=None if sys.stdout.isatty() else _WIDE, markup=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else _WIDE, markup=False)
log = logging.getLogger("finscale")


@dataclass
class _State:
    """What the global options set, for the command and for `main`'s error handler."""

    settings: Settings
    debug: bool = False


def _ok(text: str) -> Text:
    return Text.assemble(("✓", "green"), " ", text)


def _problem(text: str) -> Text:
    return Text.assemble(("✗", "red"), " ", text)


def _state(ctx: typer.Context) -> _State:
    state = ctx.find_root().obj
    assert isinstance(state, _State)
    return state


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    state = _state(ctx)
    state.debug = debug
    settings = state.settings
    level = logging.DEBUG if debug else getattr(logging, settings.log_level)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for name in unknown_variables():
        if name.upper() in RENAMED:
            log.warning("%s is no longer read; use %s", name, RENAMED[name.upper()])
        else:
            log.warning("%s is set but no finscale setting reads it (a typo?)", name)


def _choice(value: str, allowed: tuple[str, ...], hint: str) -> Any:
    """`value` if it is one of `allowed` (typed as the Literal the callee expects)."""
    if value not in allowed:
        raise typer.BadParameter(f"{value!r}; expected {' or '.join(allowed)}", param_hint=hint)
    return value


@data_app.command("build")
def data_build(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Option(help="Where the bars come from: sample, csv or yfinance.")
    ] = "sample",
    ticker: Annotated[
        str | None,
        typer.Option(help="Symbol (sample: GSPC; yfinance: SPY by default; csv: required)."),
    ] = None,
    csv: Annotated[
        Path | None, typer.Option(help="CSV of daily bars (Date, Open, High, Low, Close, Volume).")
    ] = None,
    vix_csv: Annotated[
        Path | None, typer.Option(help="CSV of VIX closes (Date, Close), csv source only.")
    ] = None,
    vix: Annotated[
        bool, typer.Option(help="Also build the a25c dataset with VIX features.")
    ] = True,
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
    than --max-day-range times the Low, a volume above --max-volume, or a feature beyond
    --max-feature after the build. Raise a bound for an instrument that needs it.
    """
    from finscale.data import Plausibility, build_datasets, load_inputs

    settings = _state(ctx).settings
    if source not in ("sample", "csv", "yfinance"):
        raise typer.BadParameter(
            f"{source!r}; expected sample, csv or yfinance", param_hint="--source"
        )
    bounds = Plausibility(
        max_jump=max_jump,
        max_day_range=max_day_range,
        max_volume=max_volume,
        max_feature=max_feature,
    )
    if if_missing:
        from finscale.data import dataset_names, read_manifest, verify_manifest

        wanted = dataset_names(source, ticker, with_vix=vix)
        manifest = read_manifest(settings.data_dir)
        have = [n for n in wanted if manifest.latest(n) is not None]
        if len(have) == len(wanted) and not verify_manifest(settings.data_dir):
            _say(f"{', '.join(wanted)}: already built in {settings.data_dir}; nothing to do")
            return
    inputs = load_inputs(
        source,  # type: ignore[arg-type]
        ticker=ticker,
        csv_path=csv,
        vix_csv_path=vix_csv,
        sample_dir=settings.sample_dir,
        with_vix=vix,
        bounds=bounds,
    )
    built = build_datasets(inputs, data_dir=settings.data_dir, bounds=bounds)
    table = Table(title=f"Built in {settings.data_dir}", title_justify="left")
    for column in ("name", "rows", "first", "last", "columns", "sha256", ""):
        table.add_column(column)
    for b in built:
        e = b.entry
        status = "unchanged" if b.unchanged else "new"
        table.add_row(
            e.name,
            str(e.rows),
            str(e.start),
            str(e.end),
            str(len(e.columns)),
            e.sha256[:12],
            status,
        )
    out.print(table)


@data_app.command("verify")
def data_verify(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option(help="Check only this dataset.")] = None,
    sha256: Annotated[
        str | None, typer.Option(help="With --dataset: the version it must be.")
    ] = None,
    wait: Annotated[
        float, typer.Option(help="With --dataset: seconds to wait for it to appear.")
    ] = 0.0,
) -> None:
    """Check that the latest manifest entry of every dataset exists and matches its sha256."""
    from finscale.data import verify_manifest, wait_for_dataset

    data_dir = _state(ctx).settings.data_dir
    if dataset is not None:
        found = wait_for_dataset(data_dir, dataset, sha256=sha256, timeout_s=wait)
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
    table = Table(title=f"{data_dir / 'manifest.json'}", title_justify="left")
    for column in ("name", "kind", "rows", "first", "last", "sha256", "path"):
        table.add_column(column)
    for name in manifest.names():
        e = manifest.latest(name)
        assert e is not None
        table.add_row(e.name, e.kind, str(e.rows), str(e.start), str(e.end), e.sha256[:12], e.path)
    out.print(table)


@data_app.command("summary")
def data_summary(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Datasets (default: every dataset in the manifest).")
    ] = None,
    context_length: Annotated[
        int, typer.Option(help="Rows of features per window.")
    ] = defaults.CONTEXT_LENGTH,
    horizons: Annotated[str, typer.Option(help="Comma-separated horizons in days.")] = "1,3,5",
    threshold: Annotated[
        float, typer.Option(help="Rise that makes a positive label.")
    ] = defaults.THRESHOLD,
    target: Annotated[
        str, typer.Option(help="close or high: which future price must rise.")
    ] = "close",
) -> None:
    """Windows per split (chronological and chunks) and positive rates of each dataset."""
    from finscale.data import load_dataset, read_manifest, summarize_splits

    data_dir = _state(ctx).settings.data_dir
    if target not in ("close", "high"):
        raise typer.BadParameter(f"{target!r}; expected close or high", param_hint="--target")
    try:
        hs = tuple(int(h) for h in horizons.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"{horizons!r}; expected integers like 1,3,5", param_hint="--horizons"
        ) from None
    manifest = read_manifest(data_dir)
    chosen = names or [n for n in manifest.names() if ".dataset." in n]
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
            target=target,  # type: ignore[arg-type]
        )
        table = Table(title_justify="left")
        for column in ("split mode", "h", "train", "val", "test", "positive rate t/v/t", "note"):
            table.add_column(column)
        for r in rows:
            rate = "/".join(f"{r.positive_rate[k]:.2f}" for k in ("train", "val", "test"))
            table.add_row(
                r.mode, str(r.horizon), str(r.train), str(r.val), str(r.test), rate, r.problem or ""
            )
        out.print(table)
        for mode in ("chronological", "chunks"):
            settings = next(r.settings for r in rows if r.mode == mode)
            out.print(f"  {mode}: {settings}; context {context_length}", highlight=False)


@app.command("grid")
def grid_command(
    budget: Annotated[str, typer.Argument(help="Parameter budget: 2M, 20M, 200M, 2B, 50K, …")],
    features: Annotated[
        int, typer.Option(help=f"Features per day ({features_help()}).")
    ] = DATASETS["a25"].num_features,
    tolerance: Annotated[float, typer.Option(help="Accepted distance from the budget.")] = 0.25,
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
    table = Table(title=title, title_justify="left")
    for column in ("id", "d_model", "n_layers", "n_heads", "d_ff", "param_count"):
        table.add_column(column, justify="left" if column == "id" else "right")
    for a in grid:
        table.add_row(
            a.id, str(a.d_model), str(a.n_layers), str(a.n_heads), str(a.d_ff), f"{a.param_count:,}"
        )
    out.print(table)


@app.command("train")
def train_command(
    ctx: typer.Context,
    spec: Annotated[
        Path | None, typer.Argument(help="Experiment or study spec whose data and settings to use.")
    ] = None,
    study: Annotated[str | None, typer.Option(help="Study of the spec.")] = None,
    trial: Annotated[
        int | None,
        typer.Option(help="Rebuild this stored trial: its architecture, parameters and seed."),
    ] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture id, e.g. d64-l48-h2-f4.")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name (default GSPC.dataset.a25).")
    ] = None,
    horizon: Annotated[int | None, typer.Option(help="Days ahead that decide the label.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Most epochs.")] = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Change a spec field: FIELD=VALUE, e.g. training.learning_rate=3e-4, "
            "split.val_start=2015-01-01, model.revin=true (repeatable).",
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda or auto (default: FINSCALE_DEVICE).")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of initialization, shuffling and dropout (default: the trial's)."),
    ] = None,
    test: Annotated[bool, typer.Option("--test", help="Also report the test split.")] = False,
) -> None:
    """Train one architecture and print the metrics of every epoch, beside the base rate.

    Settings come from SPEC (and --study) when given, else from finscale's defaults on the
    sample dataset; --set changes them. Training parameters take the spec's fixed or middle
    values, a stored trial's values with --trial, then those set with --set.
    """
    from finscale.hpo import default_spec, parse_assignments, plan_training
    from finscale.spec import load_study

    settings = _state(ctx).settings
    if device is not None:
        settings = settings.model_copy(
            update={"device": _choice(device, ("auto", "cpu", "cuda"), "--device")}
        )
    changes = parse_assignments(assignments or [])
    if dataset is not None:
        changes.setdefault("data", {})["dataset"] = dataset
    if horizon is not None:
        changes["horizon"] = horizon
    if epochs is not None:
        changes.setdefault("training", {})["epochs"] = epochs
    plan = plan_training(
        load_study(spec, study) if spec is not None else default_spec(),
        settings=settings,
        changes=changes,
        trial=trial,
        arch=arch,
        seed=seed,
        source=str(spec) if spec is not None else "defaults",
    )
    _print_training(plan, settings, test=test)


def _print_training(plan: Any, settings: Settings, *, test: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from finscale.hpo import base_rate_bce, retrain

    spec = plan.spec
    shown = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in plan.params.items()
    )
    _say(f"{plan.arch} on {spec.data.dataset}, horizon {spec.horizon} ({plan.source})")
    _say(f"  {shown}; seed {plan.seed}")
    columns = ("epoch", "train_loss", "val_bce", "val_auc", "val_accuracy", "val_pred_std", "lr")
    table = Table(*columns, title_justify="left")
    bar = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*bar, console=err, transient=True) as progress:
        task = progress.add_task("epochs", total=int(plan.params["epochs"]))

        def on_epoch(number: int, values: dict[str, float]) -> None:
            table.add_row(str(number), *(f"{values[c]:.4g}" for c in columns[1:]))
            progress.update(task, advance=1)

        run = retrain(plan, settings=settings, on_epoch=on_epoch, evaluate_test=test)
    out.print(table)
    r, counts, rates = run.result, run.windows, run.base_rate
    _say(
        f"{run.arch.id}: {run.arch.param_count:,} parameters; windows: train {counts['train']}, "
        f"val {counts['val']}, test {counts['test']}; best epoch {r.best_epoch} of {r.epochs_run} "
        f"({r.stop_reason}); {r.windows_per_s:.0f} windows/s"
    )
    _say(
        f"val: bce {r.val['bce']:.4f} (base rate {rates['val']:.3f}: bce "
        f"{base_rate_bce(rates['val']):.4f}), auc {r.val['auc']:.4f} (base rate 0.5), "
        f"accuracy {r.val['accuracy']:.3f} (all negative {1 - rates['val']:.3f})"
    )
    if plan.stored_value is not None:
        same = "the same" if r.value == plan.stored_value else "NOT the same"
        _say(f"stored value {plan.stored_value!r}, retrained {r.value!r}: {same}")
    if run.test is not None:
        t = run.test
        _say(
            f"test: bce {t['bce']:.4f} (base rate {rates['test']:.3f}: bce "
            f"{base_rate_bce(rates['test']):.4f}), auc {t['auc']:.4f} (base rate 0.5), "
            f"accuracy {t['accuracy']:.3f} (all negative {1 - rates['test']:.3f})"
        )


def _say(text: str) -> None:
    """Print text as it is: no markup, no highlighting."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command("render")
def render_command(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder of the manifests.")] = Path("jobs"),
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the folder differs; write nothing.")
    ] = False,
    namespace: Annotated[str, typer.Option(help="Namespace of the rendered objects.")] = "finscale",
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


@app.command("worker")
def worker_command(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Experiment spec, or a single study spec.")],
    study: Annotated[
        str | None, typer.Option(help="Study name (needed for experiments of several).")
    ] = None,
    index: Annotated[
        int | None,
        typer.Option(min=0, help="Worker index; default: $JOB_COMPLETION_INDEX, else 0."),
    ] = None,
    until: Annotated[
        str,
        typer.Option(
            help="done: stay until no trial of the study runs; idle: leave as soon as nothing "
            "is left to start."
        ),
    ] = "done",
    closer: Annotated[
        int | None,
        typer.Option(min=0, help="The worker index that stays until the study is done."),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(min=1, help="Worker processes sharing this process's device (a pod)."),
    ] = 1,
) -> None:
    """Join a study and run trials until its global budget is spent (exit 0); 2 on a bad spec,
    bad data, a storage that refuses (authentication, no such database) or a study whose every
    trial failed; 3 when the storage does not answer within FINSCALE_STORAGE_DEADLINE_S (a
    running trial is handed back first); 143 on SIGTERM (the trial is handed back)."""
    import os

    from finscale.hpo import run_worker
    from finscale.spec import load_study

    settings = _state(ctx).settings
    mode = _choice(until, ("done", "idle"), "--until")
    if index is None:
        given = os.environ.get("JOB_COMPLETION_INDEX", "0")
        if not given.isdigit():
            raise SpecError(f"JOB_COMPLETION_INDEX={given!r}: expected an index 0, 1, 2, …")
        index = int(given)
    study_spec = load_study(spec, study)
    if processes > 1:
        from finscale.hpo import run_pod

        code = run_pod(
            spec,
            study_spec.name,
            index=index,
            processes=processes,
            until=mode,
            closer=closer,
            settings=settings,
        )
        raise typer.Exit(code=code)
    if closer is not None and index == closer:
        mode = "done"
    report = run_worker(study_spec, settings, index=index, until=mode)
    left = "; nothing left for it to start" if report.outcome == "idle" else ""
    err.print(
        f"{report.study}: {report.final.finished}/{report.final.n_trials} trials finished; "
        f"this worker ran {report.trials_run}{left}",
        markup=False,
        highlight=False,
    )


@app.command("run")
def run_command(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).")],
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes per study (default: the spec's)."),
    ] = None,
    study: Annotated[
        list[str] | None, typer.Option(help="Run only these studies (repeatable).")
    ] = None,
) -> None:
    """Run every study of a spec locally: N worker processes each, live progress, results."""
    from finscale.hpo import results_table, run_study
    from finscale.spec import load_studies

    settings = _state(ctx).settings
    specs = _select(load_studies(spec), study)
    from finscale.hpo import display_url

    _say(f"storage {display_url(settings.storage_url)}; {len(specs)} studies")
    summaries = [
        run_study(
            spec,
            s,
            workers=s.workers if workers is None else workers,
            settings=settings,
            console=out,
        )
        for s in specs
    ]
    out.print(results_table(specs, summaries))


@app.command("evaluate")
def evaluate_command(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML), or a study spec.")],
    study: Annotated[
        list[str] | None, typer.Option(help="Evaluate only these studies (repeatable).")
    ] = None,
    top_k: Annotated[int, typer.Option(help="Best trials of each study to retrain.")] = 3,
    seeds: Annotated[int, typer.Option(help="Seeds per trial (the first is the trial's).")] = 3,
    refit: Annotated[
        bool, typer.Option(help="Train on training + validation windows for the best epoch count.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Retrain runs already stored.")] = False,
) -> None:
    """Retrain each study's top-k trials with several seeds and score them on the test split;
    the runs go to the storage, where `finscale report` reads them."""
    from finscale.hpo import evaluate_study
    from finscale.records import EvalRun
    from finscale.spec import load_studies

    if top_k < 1 or seeds < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--top-k/--seeds")
    settings = _state(ctx).settings
    specs = _select(load_studies(spec), study)

    def on_run(run: EvalRun, now: bool) -> None:
        if now:
            _say(
                f"  trial {run.trial} seed {run.seed_index}: test bce {run.test['bce']:.4f} "
                f"({run.wall_time_s:.0f} s)"
            )

    for s in specs:
        result = evaluate_study(
            s, settings, top_k=top_k, seeds=seeds, refit=refit, force=force, on_run=on_run
        )
        table = Table(title=f"{s.name}: test evaluation", title_justify="left")
        for column in ("trial", "arch", "seed", "best epoch", "val bce", "test bce", "test auc"):
            table.add_column(column)
        for run in result.runs:
            table.add_row(
                str(run.trial), run.arch, str(run.seed_index), f"{run.best_epoch}/{run.epochs_run}",
                f"{run.val['bce']:.4f}", f"{run.test['bce']:.4f}", f"{run.test['auc']:.4f}",
            )  # fmt: skip
        out.print(table)
        _say(f"{s.name}: {len(result.runs)} runs ({result.trained} trained now)")


def _select(specs: list[Any], names: list[str] | None) -> list[Any]:
    """The studies named (all when none), or a usage error listing the studies."""
    if not names:
        return specs
    unknown = sorted(set(names) - {s.name for s in specs})
    if unknown:
        raise typer.BadParameter(
            f"no study {unknown[0]!r}; studies: {[s.name for s in specs]}", param_hint="--study"
        )
    return [s for s in specs if s.name in names]


@app.command("status")
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
    table = Table(title=f"Studies in {display_url(settings.storage_url)}", title_justify="left")
    for column in (
        "study",
        "finished",
        "COMPLETE",
        "PRUNED",
        "FAIL",
        "RUNNING",
        "WAITING",
        "best",
        "best arch",
    ):
        table.add_column(column)
    for s in summaries:
        budget = f"{s.finished}/{s.n_trials}" if s.n_trials else str(s.finished)
        counts = [
            str(s.states.get(k, 0)) for k in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
        ]
        best = "—" if s.best_value is None else f"{s.best_value:.4f} (#{s.best_trial})"
        table.add_row(s.name, budget, *counts, best, s.best_arch or "—")
    out.print(table)


@app.command("report")
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


def _print_error(message: str) -> None:
    """`error: MESSAGE`, the message exactly as it is (no markup, no highlighting)."""
    err.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `finscale` console script: builds the settings, runs the app, and
    turns a `FinscaleError` into its message and exit code (a traceback only with `--debug`).

    A file that cannot be read or written (an output folder without permission, a spec path
    that is a folder) is bad input too: one line and exit 2.
    """
    state: _State | None = None
    try:
        state = _State(settings=load_settings())
        app(args=argv, prog_name="finscale", obj=state)
    except FinscaleError as e:
        if state is not None and state.debug:
            err.print_exception()
        _print_error(str(e))
        sys.exit(e.exit_code)
    except OSError as e:
        if e.filename is None:  # not about a file: a bug, with its traceback
            raise
        if state is not None and state.debug:
            err.print_exception()
        _print_error(f"{e.filename}: {e.strerror or e}")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
