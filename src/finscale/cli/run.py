"""`finscale train`, `worker`, `run` and `evaluate`: the commands that train."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from finscale import defaults
from finscale.cli import progress, views
from finscale.cli.bounds import bounded
from finscale.cli.choices import Device, Until
from finscale.cli.common import (
    _say,
    _select,
    _state,
    err,
    log,
    out,
)
from finscale.plural import counted
from finscale.settings import Settings

# The largest worker index: pods of an Indexed Job times the processes of each.
_MAX_INDEX = defaults.MAX_WORKERS * defaults.MAX_PROCESSES


def train_command(
    ctx: typer.Context,
    spec: Annotated[
        Path | None, typer.Argument(help="Experiment or study spec whose data and settings to use.")
    ] = None,
    study: Annotated[str | None, typer.Option(help="Study of the spec.")] = None,
    trial: Annotated[
        int | None,
        typer.Option(
            help="Rebuild this stored trial: its architecture, parameters and seed.",
            callback=bounded(0, defaults.MAX_TRIALS),
        ),
    ] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture id, e.g. d64-l48-h2-f4.")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name (default GSPC.dataset.a25).")
    ] = None,
    horizon: Annotated[
        int | None,
        typer.Option(
            help="Days ahead that decide the label.", callback=bounded(1, defaults.MAX_HORIZON)
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Most epochs.", callback=bounded(1, 1_000_000))
    ] = None,
    assignments: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Change a spec field: FIELD=VALUE, e.g. training.learning_rate=3e-4, "
            "split.val_start=2015-01-01, model.revin=true (repeatable).",
        ),
    ] = None,
    device: Annotated[
        Device | None, typer.Option(help="cpu, cuda or auto (default: FINSCALE_DEVICE).")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of initialization, shuffling and dropout (default: the trial's).",
            callback=bounded(0, defaults.MAX_SEED),
        ),
    ] = None,
    test: Annotated[bool, typer.Option("--test", help="Also report the test split.")] = False,
) -> None:
    """Train one architecture and print the metrics of every epoch, beside the base rate.

    Settings come from SPEC (and --study) when given, else from finscale's defaults on the
    sample dataset; --set changes them. Training parameters take the spec's fixed or middle
    values, a stored trial's values with --trial, then those set with --set.
    """
    from finscale.spec import load_study, train_changes

    settings = _state(ctx).settings
    if device is not None:
        settings = settings.model_copy(update={"device": device.value})
    # The spec is read before torch is imported: a typo costs a second, not several.
    base = load_study(spec, study) if spec is not None else None
    changes = train_changes(assignments or [], dataset=dataset, horizon=horizon, epochs=epochs)
    from finscale.hpo import default_spec, plan_training

    plan = plan_training(
        base if base is not None else default_spec(),
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

    from finscale.hpo import retrain

    spec = plan.spec
    shown = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in plan.params.items()
    )
    _say(f"{plan.arch} on {spec.data.dataset}, horizon {spec.horizon} ({plan.source})")
    _say(f"  {shown}; seed {plan.seed}")
    epochs: list[tuple[int, dict[str, float]]] = []
    bar = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*bar, console=err, transient=True) as progress:
        task = progress.add_task("epochs", total=int(plan.params["epochs"]))

        def on_epoch(number: int, values: dict[str, float]) -> None:
            epochs.append((number, values))
            progress.update(task, advance=1)

        run = retrain(plan, settings=settings, on_epoch=on_epoch, evaluate_test=test)
    views.show(out, views.epochs_table(epochs, width=out.width))
    r, counts, rates = run.result, run.windows, run.base_rate
    _say(
        f"{run.arch.id}: {run.arch.param_count:,} parameters; windows: train {counts['train']}, "
        f"val {counts['val']}, test {counts['test']}; best epoch {r.best_epoch} of {r.epochs_run} "
        f"({r.stop_reason}); {r.windows_per_s:.0f} windows/s"
    )
    _say(_split_line("val", r.val, counts, rates))
    if plan.stored_value is not None:
        same = "the same" if r.value == plan.stored_value else "NOT the same"
        _say(f"stored value {plan.stored_value!r}, retrained {r.value!r}: {same}")
    if run.test is not None:
        _say(_split_line("test", run.test, counts, rates))


def _split_line(
    split: str, metrics: dict[str, float], counts: dict[str, int], rates: dict[str, float]
) -> str:
    """A split's metrics beside its reference (a constant at the rate of every label a model may
    use before the split) and its floor (a constant that knew the split's own rate)."""
    from finscale.train.reference import reference

    ref = reference(split, counts=counts, rates=rates)
    return (
        f"{split}: bce {metrics['bce']:.4f} (reference {ref.bce:.4f}: the {ref.source} rate "
        f"{ref.rate:.3f}; floor {ref.floor:.4f}: a constant that knew the {split} rate "
        f"{ref.own_rate:.3f}), auc {metrics['auc']:.4f} (0.5 for any constant), accuracy "
        f"{metrics['accuracy']:.3f} (all negative {1 - ref.own_rate:.3f})"
    )


AllowCodeChange = Annotated[
    bool,
    typer.Option(
        "--allow-code-change",
        help="Join a study that other finscale code created (a warning, not exit 2); "
        "also FINSCALE_ALLOW_CODE_CHANGE=1.",
    ),
]


def _allowing(settings: Settings, allow_code_change: bool) -> Settings:
    """The settings, with `--allow-code-change` (which only ever allows)."""
    if allow_code_change:
        return settings.model_copy(update={"allow_code_change": True})
    return settings


def worker_command(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Experiment spec, or a single study spec.")],
    study: Annotated[
        str | None, typer.Option(help="Study name (needed for experiments of several).")
    ] = None,
    index: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Worker index; default: $JOB_COMPLETION_INDEX, else 0.",
            callback=bounded(0, _MAX_INDEX),
        ),
    ] = None,
    until: Annotated[
        Until,
        typer.Option(
            help="done: stay until no trial of the study runs; idle: leave as soon as nothing "
            "is left to start."
        ),
    ] = Until.done,
    closer: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="The worker index that stays until the study is done.",
            callback=bounded(0, _MAX_INDEX),
        ),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes sharing this process's device (a pod).",
            callback=bounded(1, defaults.MAX_PROCESSES),
        ),
    ] = 1,
    allow_code_change: AllowCodeChange = False,
    study_per_build: Annotated[
        bool,
        typer.Option(
            "--study-per-build",
            help="Run this build's own study, <experiment>-<8 hex> (a digest of the code and "
            "the search): a dev loop's every change gets a fresh study; also "
            "FINSCALE_STUDY_PER_BUILD=1.",
        ),
    ] = False,
) -> None:
    """Join a study and run trials until its global budget is spent (exit 0); 2 on a bad spec, bad
    data, a storage that refuses (authentication, no such database), a study created by other
    finscale code (unless --allow-code-change) or a study whose every trial failed; 3 when the
    storage does not answer within FINSCALE_STORAGE_DEADLINE_S (a running trial is handed back
    first); 143 on SIGTERM (the trial is handed back)."""
    from finscale.hpo import (  # no torch, no optuna
        follow_parent,
        keep_utc,
        worker_index,
        worker_until,
    )
    from finscale.spec import load_study

    follow_parent(os.environ)  # started by `finscale run` or a pod: end with it
    keep_utc()  # the times Optuna stores are naive: UTC, wherever the worker runs
    settings = _allowing(_state(ctx).settings, allow_code_change)
    index = worker_index(index, os.environ)
    as_given = load_study(spec, study)  # before torch is imported: a typo fails in a second
    study_spec = as_given
    if study_per_build or settings.study_per_build:
        from finscale.identity import code_sha256

        study_spec = as_given.for_build(code_sha256())
        settings = settings.model_copy(update={"study_per_build": True})  # its processes too
        log.info("this build's study: %s (of %s)", study_spec.name, as_given.name)
    from finscale.hpo import check_study_inputs, run_pod, run_worker

    if processes > 1:
        check_study_inputs(study_spec, settings.data_dir)  # before a process starts
        code = run_pod(
            spec,
            as_given.name,
            index=index,
            processes=processes,
            until=until.value,
            closer=closer,
            settings=settings,
        )
        raise typer.Exit(code=code)
    mode = worker_until(until.value, index=index, closer=closer)
    report = run_worker(study_spec, settings, index=index, until=mode)
    left = "; nothing left for it to start" if report.outcome == "idle" else ""
    log.info(
        "%s: %d/%d trials finished; this worker ran %d%s",
        report.study, report.final.finished, report.final.n_trials, report.trials_run, left,
    )  # fmt: skip


def run_command(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).")],
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker processes per study (default: the spec's).",
            callback=bounded(1, defaults.MAX_WORKERS),
        ),
    ] = None,
    study: Annotated[
        list[str] | None, typer.Option(help="Run only these studies (repeatable).")
    ] = None,
    allow_code_change: AllowCodeChange = False,
) -> None:
    """Run every study of a spec locally: N worker processes each, live progress, results."""
    from finscale.spec import load_studies

    settings = _allowing(_state(ctx).settings, allow_code_change)
    specs = _select(load_studies(spec), study)  # before torch is imported
    from finscale.hpo import check_inputs, display_url, run_study
    from finscale.settings import check_folder

    # The folder of the logs and every study's inputs, before any study is created.
    check_folder(settings.runs_dir, "FINSCALE_RUNS_DIR")
    check_inputs(specs, settings)
    _say(f"storage {display_url(settings.storage_url)}; {counted(len(specs), 'study')}")
    summaries = [
        run_study(
            spec,
            s,
            workers=s.workers if workers is None else workers,
            settings=settings,
            display=progress.LiveProgress(out) if out.is_terminal else progress.PlainProgress(out),
        )
        for s in specs
    ]
    metrics = [s.objective.metric for s in specs]
    views.show(out, views.results_table(summaries, metrics, width=out.width))


def evaluate_command(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML), or a study spec.")],
    study: Annotated[
        list[str] | None, typer.Option(help="Evaluate only these studies (repeatable).")
    ] = None,
    top_k: Annotated[
        int,
        typer.Option(help="Best trials of each study to retrain.", callback=bounded(1, 1000)),
    ] = 3,
    seeds: Annotated[
        int,
        typer.Option(help="Seeds per trial (the first is the trial's).", callback=bounded(1, 1000)),
    ] = 3,
    refit: Annotated[
        bool, typer.Option(help="Train on training + validation windows for the best epoch count.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Retrain runs already stored.")] = False,
) -> None:
    """Retrain each study's top-k trials with several seeds and score them on the test split;
    the runs go to the storage, where `finscale report` reads them."""
    from finscale.spec import load_studies

    settings = _state(ctx).settings
    specs = _select(load_studies(spec), study)  # before torch is imported
    from finscale.hpo import evaluate_study
    from finscale.records import EvalRun

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
        views.show(out, views.evaluation_table(s.name, result.runs, width=out.width))
        _say(f"{s.name}: {counted(len(result.runs), 'run')} ({result.trained} trained now)")
