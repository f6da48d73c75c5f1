"""`finscale plan`: what a design can detect and what it costs, before anything trains."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from finscale.cli.bounds import bounded
from finscale.cli.choices import Gpu
from finscale.cli.common import _state, out


def _windows(value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise typer.BadParameter(f"{value!r}: expected three positive counts TRAIN,VAL,TEST")
    train, val, test = (int(p) for p in parts)
    return train, val, test


def plan_command(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML), or a study spec.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    top_k: Annotated[
        int,
        typer.Option(
            help="Trials the final evaluation retrains per study (evaluate's).",
            callback=bounded(1, 1000),
        ),
    ] = 3,
    seeds: Annotated[
        int,
        typer.Option(
            help="Seeds per retrained trial (evaluate's); a final model's runs.",
            callback=bounded(1, 1000),
        ),
    ] = 3,
    trial_luck: Annotated[
        float | None,
        typer.Option(
            help="SD of a trial's loss beyond its window noise (default: a pilot's "
            "in the storage, else 0.005).",
            callback=bounded(0, 1),
        ),
    ] = None,
    seed_luck: Annotated[
        float | None,
        typer.Option(
            help="SD of a seed's loss beyond its window noise (default 0.0025).",
            callback=bounded(0, 1),
        ),
    ] = None,
    window_sd: Annotated[
        float | None,
        typer.Option(
            help="Per-window SD of a run's own BCE noise (default 0.06).",
            callback=bounded(0, 10, above=True),
        ),
    ] = None,
    gpu: Annotated[
        Gpu | None, typer.Option(help="The card (default: the spec's node selector's, else H100).")
    ] = None,
    gpu_tflops: Annotated[
        float | None,
        typer.Option(
            help="The card's peak TFLOPS instead of its bf16 dense peak.",
            callback=bounded(0, 1e6, above=True),
        ),
    ] = None,
    mfu: Annotated[
        float | None,
        typer.Option(
            help="Model FLOPs utilisation: the share of the peak training gets (default 0.3).",
            callback=bounded(0, 1, above=True),
        ),
    ] = None,
    cpu_gflops: Annotated[
        float | None,
        typer.Option(
            help="The CPU's GFLOPS (default: measured by a matmul now).",
            callback=bounded(0, 1e9, above=True),
        ),
    ] = None,
    windows: Annotated[
        str | None,
        typer.Option(
            help="TRAIN,VAL,TEST window counts to assume when the spec's dataset is not built."
        ),
    ] = None,
    pilot: Annotated[
        bool, typer.Option(help="Read a pilot run's trial spread from the storage.")
    ] = True,
) -> None:
    """What a design can detect and what it costs, before spending: per horizon the smallest
    slope per decade of parameters the report would find with 80 % power (validation and
    test), per study FLOPs and GPU- and CPU-hours. Exit 2 when the dataset is not built and
    no --windows are given."""
    import json

    from finscale.spec import load_studies

    studies = load_studies(spec)
    from finscale.plan import PlanOptions, measure_cpu_gflops, plan_json, plan_lines, plan_studies
    from finscale.plan.pilot import read_pilots

    settings = _state(ctx).settings
    given = {"seed_luck": seed_luck, "window_sd": window_sd, "mfu": mfu}
    options = PlanOptions(
        top_k=top_k,
        seeds=seeds,
        trial_luck=trial_luck,
        gpu=gpu.value if gpu is not None else None,
        gpu_tflops=gpu_tflops,
        cpu_gflops=cpu_gflops if cpu_gflops is not None else measure_cpu_gflops(),
        cpu_measured=cpu_gflops is None,
        windows=_windows(windows),
        **{k: v for k, v in given.items() if v is not None},
    )
    pilots = read_pilots(settings, studies) if pilot and trial_luck is None else {}
    plan = plan_studies(str(spec), studies, data_dir=settings.data_dir, options=options,
                        pilots=pilots)  # fmt: skip
    if as_json:
        typer.echo(json.dumps(plan_json(plan), indent=2))
        return
    for line in plan_lines(plan):
        out.print(line, highlight=False, soft_wrap=True)
