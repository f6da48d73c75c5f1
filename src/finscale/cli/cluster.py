"""`finscale submit`, `watch` and `cancel`: an experiment's objects on the cluster through the
Kubernetes client (`finscale.k8s.cluster`, `finscale.k8s.snapshot`), and the options of
`status --kube` and `report --kube` (`finscale.k8s.remote`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from finscale.cli import views
from finscale.cli.bounds import bounded
from finscale.cli.choices import DataFrom, Propagation, PullPolicy
from finscale.cli.common import _say, _state, err, out
from finscale.cli.render import (
    STORAGE_URL,
    DataFromOption,
    PullPolicyOption,
    Registry,
    StorageUrl,
    _namespace,
)
from finscale.errors import ClusterError, FinscaleError, SpecError, StudyNotFoundError
from finscale.settings import Settings

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from finscale.hpo.read import StudySummary
    from finscale.k8s.snapshot import Snapshot

# A refresh of `watch` waits this long at most for the storage (a down database must not
# freeze the view of the cluster for the storage deadline's minutes).
PROGRESS_DEADLINE_S = 10.0

# The options every command that talks to the cluster takes.
Kubeconfig = Annotated[
    Path | None,
    typer.Option(
        help="Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config; inside a pod with "
        "neither, its service account)."
    ),
]
Context = Annotated[str | None, typer.Option(help="Kubeconfig context (default: the current).")]
Namespace = Annotated[
    str, typer.Option("--namespace", "-n", help="Namespace of the Jobs.", callback=_namespace)
]


def _connect(kubeconfig: Path | None, context: str | None) -> ApiClient:
    from finscale.k8s.cluster import connect

    return connect(kubeconfig=kubeconfig, context=context)


def submit_command(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Argument(
            help="An experiment spec (rendered in memory) or a rendered folder "
            "(jobs/<experiment>/).",
            exists=True,
        ),
    ],
    *,
    evaluate: Annotated[
        bool,
        typer.Option("--evaluate", help="Submit the final evaluation (once the studies are done)."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="The server checks every object and stores nothing.")
    ] = False,
    force_conflicts: Annotated[
        bool,
        typer.Option(
            "--force-conflicts", help="Take over fields another field manager owns (409 conflicts)."
        ),
    ] = False,
    wait_data: Annotated[
        bool,
        typer.Option(
            "--wait-data/--no-wait-data",
            help="Wait for the data Jobs to complete before submitting the studies (their "
            "pods wait for the data a few minutes only).",
        ),
    ] = True,
    data_timeout: Annotated[
        float,
        typer.Option(help="Seconds to wait for the data Jobs.", callback=bounded(1, 86400)),
    ] = 3600,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Namespace (a spec renders into it; a folder's objects must be in it).",
            callback=_namespace,
        ),
    ] = None,
    storage_url: StorageUrl = STORAGE_URL,
    registry: Registry = None,
    pull_policy: PullPolicyOption = PullPolicy.IfNotPresent,
    data_from: DataFromOption = DataFrom.local,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Apply an experiment's objects with server-side apply (field manager finscale): its
    data Jobs first (then waits for them), each study's ConfigMap and Job, and with
    --evaluate its final evaluation. Prints one line per object applied."""
    from finscale.k8s import ClusterOptions
    from finscale.k8s.cluster import manifests, submit

    options = ClusterOptions(
        namespace=namespace or "finscale",
        storage_url=storage_url,
        registry=registry,
        pull_policy=str(pull_policy),
    )
    if not source.is_dir():  # as `render` refuses: a Job whose grid is empty fails on the cluster
        from finscale.hpo.preflight import check_grids
        from finscale.spec import load_studies

        problems = check_grids(load_studies(source))
        if problems:
            raise SpecError("\n".join(problems))
    objects = manifests(
        source,
        options=options,
        evaluate=evaluate,
        data_from=data_from.value,
        data_dir=_state(ctx).settings.data_dir,
    )
    elsewhere = sorted({m.namespace for m in objects} - {options.namespace})
    if namespace is not None and elsewhere:
        raise SpecError(
            f"{source}: its objects are in namespace {elsewhere[0]}, not {namespace}; render "
            f"it with --namespace {namespace}, or submit the spec"
        )
    suffix = " (server dry run)" if dry_run else ""
    submit(
        _connect(kubeconfig, context),
        objects,
        dry_run=dry_run,
        force_conflicts=force_conflicts,
        data_timeout_s=data_timeout if wait_data else None,
        applied=lambda m: _say(f"{m} applied in namespace {m.namespace}{suffix}"),
        waiting=lambda names: err.print(
            f"waiting for {', '.join(names)} (at most {data_timeout:g} s)", highlight=False
        ),
    )


class _Progress:
    """The studies' progress from the storage, for `watch`: opened once, read at each
    refresh with a short deadline; what fails is said in a note, never stops the watch."""

    def __init__(self, settings: Settings) -> None:
        deadline = min(settings.storage_deadline_s, PROGRESS_DEADLINE_S)
        self.settings = settings.model_copy(update={"storage_deadline_s": deadline})
        self.storage: Any = None

    def read(self, studies: list[str]) -> tuple[dict[str, StudySummary], str | None]:
        from finscale.hpo import display_url, open_for_reading, summarize_storage

        where = display_url(self.settings.storage_url)
        try:
            if self.storage is None:
                self.storage = open_for_reading(self.settings)
            if self.storage is None:
                return {}, f"trials: no studies in {where} (FINSCALE_STORAGE_URL)"
            found, missing = {}, []
            for name in studies:
                try:
                    (summary,) = summarize_storage(
                        self.storage, [name], deadline_s=self.settings.storage_deadline_s
                    )
                    found[name] = summary
                except StudyNotFoundError:
                    missing.append(name)
        except FinscaleError as e:
            return {}, f"trials: {e}"
        return found, (f"trials: not (yet) in {where}: {', '.join(missing)}" if missing else None)


def watch_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="An experiment or a study.")],
    *,
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between refreshes.", callback=bounded(0.1, 3600))
    ] = 10.0,
    progress: Annotated[
        bool, typer.Option(help="The studies' trials from the storage (FINSCALE_STORAGE_URL).")
    ] = True,
    namespace: Namespace = "finscale",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """An experiment's (or a study's) Jobs, their pods (phase, restarts, node, how each last
    ended), recent Warning events and the studies' trials, refreshed until every Job is
    Complete or Failed: exit 0 when all completed, 1 when one failed."""
    from finscale.k8s.snapshot import failed_error, watch

    reader = _Progress(_state(ctx).settings) if progress else None
    api = _connect(kubeconfig, context)
    live = out.is_terminal and not once
    shown: list[Any] = []

    def show(snapshot: Snapshot) -> None:
        summaries, note = reader.read(snapshot.studies) if reader else ({}, None)
        drawn = views.cluster_view(snapshot, summaries, width=out.width, note=note)
        if live:
            out.clear()
            out.print(drawn, soft_wrap=False)
        elif not shown or shown[-1] != (snapshot.content(), summaries, note):
            out.print(drawn, soft_wrap=False)  # a file or a pipe: a snapshot when it changes
        shown[:] = [(snapshot.content(), summaries, note)]

    last = watch(api, namespace=namespace, target=name, show=show, interval_s=interval, once=once)
    failure = failed_error(last)
    if failure is not None:
        raise failure


def cancel_command(
    name: Annotated[str, typer.Argument(help="An experiment or a study.")],
    *,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking.")] = False,
    propagation: Annotated[
        Propagation,
        typer.Option(
            help="Foreground: a Job goes once its pods are gone; Background: at once, its "
            "pods after."
        ),
    ] = Propagation.Foreground,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="The server checks the deletions and deletes nothing.")
    ] = False,
    namespace: Namespace = "finscale",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Delete an experiment's (or a study's) Jobs and their ConfigMaps: only objects carrying
    its finscale.io/experiment or finscale.io/study label, never the cluster base. Each pod
    hands its running trial back; re-submitting resumes the studies. Asks first unless --yes
    (required when standard input is not a terminal)."""
    from finscale.k8s.cluster import delete, owned

    api = _connect(kubeconfig, context)
    objects = owned(api, namespace=namespace, target=name)
    if not objects:
        raise ClusterError(f"nothing of {name} to delete in namespace {namespace}")
    listed = ", ".join(str(o) for o in objects)
    if not yes and not dry_run:
        if not sys.stdin.isatty():
            raise typer.BadParameter(
                f"would delete {listed} in namespace {namespace}: add --yes when standard "
                "input is not a terminal",
                param_hint="--yes",
            )
        typer.confirm(f"delete {listed} in namespace {namespace}?", abort=True, err=True)
    deleted = delete(
        api,
        objects,
        namespace=namespace,
        propagation=str(propagation),
        dry_run=dry_run,
    )
    suffix = " (server dry run)" if dry_run else ""
    for o in deleted:
        _say(f"{o} deleted from namespace {namespace}{suffix}")
    if not deleted:
        _say(f"nothing left of {name} in namespace {namespace}")


# --- a storage reader run on the cluster: status --kube, report --kube ---

Kube = Annotated[
    bool,
    typer.Option(
        "--kube",
        help="Run it on the cluster, where PostgreSQL is: a short Job on the CPU image, whose "
        "output (and report) comes back through its pod's log. No port-forward.",
    ),
]
Image = Annotated[
    str | None,
    typer.Option(help="With --kube: the worker image of the build (its CPU sibling runs it)."),
]
KubeTimeout = Annotated[
    float,
    typer.Option(help="With --kube: seconds to wait for the Job.", callback=bounded(1, 86400)),
]
KubeNamespace = Annotated[
    str,
    typer.Option(help="With --kube: namespace of the Job.", callback=_namespace),
]


def run_remote(
    args: list[str],
    *,
    into: Path | None = None,
    image: str | None = None,
    storage_url: str = STORAGE_URL,
    namespace: str = "finscale",
    kubeconfig: Path | None = None,
    context: str | None = None,
    timeout_s: float = 1800,
) -> None:
    """`finscale ARGS` as a Job on the cluster: prints what it printed and, `into` a folder,
    unpacks what it wrote into `remote.OUT_DIR`."""
    from finscale.k8s import ClusterOptions
    from finscale.k8s.remote import OUT_DIR, job_name, reader_job, run_reader, split_log, unpack
    from finscale.spec import ResourcesSpec

    options = ClusterOptions(namespace=namespace, storage_url=storage_url)
    image = image or str(ResourcesSpec.model_fields["image"].default)
    job = reader_job(
        args, options=options, image=image, archive=into is not None, columns=out.width
    )
    name = job_name(job)[0]
    api = _connect(kubeconfig, context)
    err.print(f"running finscale {args[0]} as job/{name} in namespace {namespace}", highlight=False)
    printed, archive = split_log(run_reader(api, job, timeout_s=timeout_s))
    if into is not None:
        printed = printed.replace(OUT_DIR, str(into))
    if printed.strip():
        out.print(printed.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
    if into is not None:
        if archive is None:
            raise ClusterError(f"job/{name}: its log holds no report archive")
        files = unpack(archive, into)
        _say(f"{len(files)} files from job/{name} in {into}")
