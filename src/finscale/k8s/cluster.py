"""The rendered objects on a live cluster, through the official `kubernetes` client: connect,
apply them server-side in the runbook's order (data Jobs, then the studies, then the evaluation
when asked), wait for Jobs, and delete an experiment's Jobs. Nothing here touches the cluster
base (namespace, PostgreSQL, volumes, Secrets): deletion selects finscale's study, data,
evaluation and report labels only. Watching is `k8s.snapshot`.

Every API call goes through `call`, which turns the client's errors into finscale's: a refusal
(4xx) is a `ClusterError` (exit 2) naming the object and the API's message, an API server that
does not answer a `ClusterUnavailableError` (exit 3).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import yaml
from kubernetes import client as k8s
from kubernetes import config as kube_config
from urllib3.exceptions import HTTPError

from finscale.errors import ClusterError, ClusterUnavailableError, JobFailedError, SpecError
from finscale.k8s.options import ClusterOptions
from finscale.k8s.render import DATA_FOLDER, EVALUATE_FOLDER, DataFrom, data_job_name, render

FIELD_MANAGER = "finscale"
APPLY_PATCH = "application/apply-patch+yaml"
EXPERIMENT_LABEL = "finscale.io/experiment"
STUDY_LABEL = "finscale.io/study"
REPORT_LABEL = "finscale.io/report"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF = "app.kubernetes.io/part-of=finscale"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set by the Job controller on its pods
# The components of the objects finscale submits: study, evaluation and report Jobs are
# "worker" (the network policies let them reach PostgreSQL), the data Jobs "data".
OWN_COMPONENTS = ("worker", "data")
PROPAGATIONS = ("Foreground", "Background")  # how a Job's pods are deleted
_T = TypeVar("_T")

# What a refusal usually means, beside the API's own words.
_HINTS = {
    403: "your credentials may not do this in that namespace (kubectl auth can-i)",
    404: "the namespace or the resource kind does not exist: apply the base first "
    "(kubectl apply -k k8s/)",
    409: "another field manager owns these fields: --force-conflicts takes them over",
    422: "a Job's pod template cannot change: `finscale cancel` the study first (it resumes "
    "from the storage), then submit again",
}


# --- connecting, and the API's errors ---


def connect(*, kubeconfig: Path | None = None, context: str | None = None) -> k8s.ApiClient:
    """A client of the cluster: `kubeconfig` (else $KUBECONFIG, else ~/.kube/config) and its
    `context` (else the current one); inside a pod with neither, the pod's service account.

    Raises:
        ClusterError: no such kubeconfig or context, or one the client cannot use.
    """
    configuration = k8s.Configuration()
    default = Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0])
    in_pod = "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if kubeconfig is None and context is None and in_pod and not default.expanduser().exists():
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
            )
    except (kube_config.ConfigException, OSError, ValueError) as e:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ClusterError(f"kubeconfig {where} (context {context or 'current'}): {e}") from None
    configuration.retries = 0  # a dead address fails at once, not after urllib3's 3 tries
    return k8s.ApiClient(configuration)


def api_message(error: k8s.ApiException) -> str:
    """The API's own message (its Status body), else the HTTP reason."""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(error.reason or "no message")


def call(what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """`fn(*args, **kwargs)`, an API call about `what` (`job/phase6a-2m-h1 in namespace
    finscale`), its errors as finscale's.

    Raises:
        ClusterError: the API refused (a 4xx status): names `what`, the status and the message.
        ClusterUnavailableError: the API server did not answer, or answered 5xx.
    """
    try:
        return fn(*args, **kwargs)
    except k8s.ApiException as e:
        status = int(e.status or 0)
        message = f"{what}: the Kubernetes API answered {status} {api_message(e)}"
        if status >= 500 or status == 0:
            raise ClusterUnavailableError(message) from None
        hint = _HINTS.get(status)
        raise ClusterError(f"{message}" + (f" ({hint})" if hint else "")) from None
    except HTTPError as e:
        raise ClusterUnavailableError(
            f"{what}: the Kubernetes API server did not answer ({e})"
        ) from None


# --- the objects to submit ---


@dataclass(frozen=True)
class Manifest:
    """One object to apply, in its wire form (camelCase), and which step it belongs to."""

    body: dict[str, Any]
    step: Literal["data", "study", "evaluate"]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"].get("namespace") or "default")

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


def _documents(text: str, step: Literal["data", "study", "evaluate"]) -> list[Manifest]:
    return [Manifest(doc, step) for doc in yaml.safe_load_all(text) if doc]


def _wait_datasets(manifests: Iterable[Manifest]) -> set[str]:
    """The datasets the study Jobs' init containers wait for (`data verify --dataset X`)."""
    found = set()
    for m in manifests:
        if m.kind != "Job":
            continue
        for c in m.body["spec"]["template"]["spec"].get("initContainers", []):
            args = c.get("args", [])
            if "--dataset" in args:
                found.add(args[args.index("--dataset") + 1])
    return found


def _folder(folder: Path, *, evaluate: bool) -> list[Manifest]:
    """An experiment's rendered folder, with the data Jobs (from its sibling `data/`) that its
    studies wait for, and its evaluation when asked."""
    files = sorted(p for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")
    if not files:
        raise SpecError(f"{folder}: no rendered manifests (finscale render SPEC --out DIR)")
    step: Literal["data", "study"] = "data" if folder.name == DATA_FOLDER else "study"
    studies = [m for p in files for m in _documents(p.read_text(), step)]
    data = []
    for dataset in sorted(_wait_datasets(studies)):
        path = folder.parent / DATA_FOLDER / f"{data_job_name(dataset)}.yaml"
        if not path.is_file():
            raise SpecError(f"{path}: missing; the studies of {folder} wait for {dataset}")
        data += _documents(path.read_text(), "data")
    evaluation = []
    if evaluate:
        paths = sorted((folder / EVALUATE_FOLDER).glob("*.yaml"))
        if not paths:
            raise SpecError(f"{folder / EVALUATE_FOLDER}: no evaluation to submit (--evaluate)")
        evaluation = [
            m
            for p in paths
            if p.name != "kustomization.yaml"
            for m in _documents(p.read_text(), "evaluate")
        ]
    return [*data, *studies, *evaluation]


def manifests(
    source: Path,
    *,
    options: ClusterOptions | None = None,
    evaluate: bool = False,
    data_from: DataFrom = "local",
    data_dir: Path | None = None,
) -> list[Manifest]:
    """What `finscale submit SOURCE` applies, in order: data Jobs, then each study's ConfigMap
    and Job (by file name, a spec's as its folder's), then (with `evaluate`) the evaluation's.
    SOURCE is a spec, rendered in memory with `options`, or a folder `render` wrote
    (`jobs/<experiment>/`).

    Raises:
        SpecError: a bad spec, an empty folder, a data Job or an evaluation that is missing.
    """
    if source.is_dir():
        return _folder(source, evaluate=evaluate)
    files = render(source, options=options, data_from=data_from, data_dir=data_dir)
    data = f"{DATA_FOLDER}/"
    order: list[Manifest] = []
    for step, picked in (
        ("data", [n for n in sorted(files) if n.startswith(data)]),
        ("study", sorted(n for n in files if n.count("/") == 1 and not n.startswith(data))),
        ("evaluate", [n for n in files if f"/{EVALUATE_FOLDER}/" in n] if evaluate else []),
    ):
        order += [m for n in picked for m in _documents(files[n], step)]  # type: ignore[arg-type]
    if evaluate and not any(m.step == "evaluate" for m in order):
        raise SpecError(f"{source}: a study spec has no evaluation to submit (--evaluate)")
    return order


# --- applying them ---


def apply(
    api: k8s.ApiClient, manifest: Manifest, *, dry_run: bool = False, force_conflicts: bool = False
) -> Any:
    """Server-side apply of one object, as field manager `finscale` (`dry_run`: the server
    checks it and stores nothing). Returns the object the server answered.

    Raises:
        ClusterError: a refusal (no permission, no namespace, a conflict, an invalid object).
        ClusterUnavailableError: the API server did not answer.
        SpecError: a kind finscale does not submit.
    """
    methods = {
        "ConfigMap": k8s.CoreV1Api(api).patch_namespaced_config_map,
        "Job": k8s.BatchV1Api(api).patch_namespaced_job,
    }
    if manifest.kind not in methods:
        raise SpecError(f"{manifest}: finscale submits ConfigMaps and Jobs, not {manifest.kind}")
    return call(
        f"{manifest} in namespace {manifest.namespace}",
        methods[manifest.kind],
        manifest.name,
        manifest.namespace,
        manifest.body,
        field_manager=FIELD_MANAGER,
        force=True if force_conflicts else None,
        dry_run="All" if dry_run else None,
        _content_type=APPLY_PATCH,
    )


def job_state(job: Any) -> str:
    """Complete, Failed, Suspended, Running (a pod is active) or Pending, from its conditions."""
    status = job.status
    conditions = {c.type: c.status for c in (status.conditions or [])} if status else {}
    for kind in ("Complete", "Failed", "Suspended"):
        if conditions.get(kind) == "True":
            return kind
    return "Running" if status and status.active else "Pending"


def failure_reason(job: Any) -> str:
    """The reason and message of a failed Job's condition (`BackoffLimitExceeded: …`)."""
    for c in (job.status.conditions or []) if job.status else []:
        if c.type == "Failed" and c.status == "True":
            return ": ".join(p for p in (c.reason, c.message) if p) or "failed"
    return ""


def wait_for_jobs(
    api: k8s.ApiClient,
    names: list[str],
    *,
    namespace: str,
    timeout_s: float,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait until every Job named is Complete.

    Raises:
        JobFailedError: one failed (its reason named).
        ClusterUnavailableError: `timeout_s` passed first, or the API did not answer.
    """
    batch = k8s.BatchV1Api(api)
    deadline = time.monotonic() + timeout_s
    waiting = list(names)
    while waiting:
        for name in list(waiting):
            what = f"job/{name} in namespace {namespace}"
            job = call(what, batch.read_namespaced_job_status, name, namespace)
            state = job_state(job)
            if state == "Failed":
                raise JobFailedError(f"{what} failed: {failure_reason(job)}")
            if state == "Complete":
                waiting.remove(name)
        if waiting and time.monotonic() >= deadline:
            raise ClusterUnavailableError(
                f"{', '.join(f'job/{n}' for n in waiting)} in namespace {namespace} not "
                f"complete after {timeout_s:g} s"
            )
        if waiting:
            sleep(poll_s)


def submit(
    api: k8s.ApiClient,
    objects: list[Manifest],
    *,
    dry_run: bool = False,
    force_conflicts: bool = False,
    data_timeout_s: float | None = 3600,
    applied: Callable[[Manifest], None] = lambda m: None,
    waiting: Callable[[list[str]], None] = lambda names: None,
) -> None:
    """Apply `objects` in order (`apply`), calling `applied` after each; before the first that
    is not a data Job, wait for the data Jobs to complete (`data_timeout_s`; None: no wait, as
    with `dry_run`), calling `waiting` with their names first.

    Raises:
        ClusterError, ClusterUnavailableError, SpecError: as `apply` and `wait_for_jobs`.
        JobFailedError: a data Job failed.
    """
    data_jobs = [m for m in objects if m.step == "data" and m.kind == "Job"]
    for m in objects:
        if m.step != "data" and data_jobs and data_timeout_s is not None and not dry_run:
            names = [j.name for j in data_jobs]
            waiting(names)
            wait_for_jobs(api, names, namespace=data_jobs[0].namespace, timeout_s=data_timeout_s)
            data_jobs = []
        apply(api, m, dry_run=dry_run, force_conflicts=force_conflicts)
        applied(m)


# --- finding and deleting an experiment's objects ---


@dataclass(frozen=True)
class Owned:
    """An object finscale submitted: its kind, name and labels."""

    kind: Literal["Job", "ConfigMap"]
    name: str
    labels: dict[str, str]

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


def selector(target: str, *, api: k8s.ApiClient, namespace: str) -> str:
    """The label selector of a study's objects when `target` names a study with Jobs, else of
    an experiment's.

    Raises:
        ClusterError: no Job carries either label.
    """
    batch = k8s.BatchV1Api(api)
    for key in (STUDY_LABEL, EXPERIMENT_LABEL):
        chosen = f"{key}={target},{PART_OF}"
        found = call(
            f"jobs labelled {chosen} in namespace {namespace}",
            batch.list_namespaced_job,
            namespace,
            label_selector=chosen,
        )
        if found.items:
            return chosen
    raise ClusterError(
        f"no Jobs labelled {STUDY_LABEL}={target} or {EXPERIMENT_LABEL}={target} in namespace "
        f"{namespace}: name a study or an experiment that was submitted there"
    )


def owned(api: k8s.ApiClient, *, namespace: str, target: str) -> list[Owned]:
    """The Jobs and ConfigMaps of a study or an experiment: only objects carrying its label
    and a component finscale renders (never the base: namespace, PostgreSQL, volumes,
    Secrets), Jobs first.

    Raises:
        ClusterError: nothing carries the label, or the API refused.
    """
    chosen = selector(target, api=api, namespace=namespace)
    jobs = call(
        f"jobs in namespace {namespace}",
        k8s.BatchV1Api(api).list_namespaced_job,
        namespace,
        label_selector=chosen,
    )
    maps = call(
        f"configmaps in namespace {namespace}",
        k8s.CoreV1Api(api).list_namespaced_config_map,
        namespace,
        label_selector=chosen,
    )
    found: list[Owned] = []
    for kind, items in (("Job", jobs.items), ("ConfigMap", maps.items)):
        for item in cast(list[Any], items):
            labels = dict(item.metadata.labels or {})
            if labels.get(COMPONENT_LABEL) in OWN_COMPONENTS:
                found.append(Owned(kind, item.metadata.name, labels))  # type: ignore[arg-type]
    return found


def delete(
    api: k8s.ApiClient,
    objects: list[Owned],
    *,
    namespace: str,
    propagation: str = "Foreground",
    dry_run: bool = False,
) -> list[Owned]:
    """Delete `objects` (a Job with its pods, by `propagation`); returns those deleted (one
    already gone is skipped).

    Raises:
        ClusterError: the API refused.
        ClusterUnavailableError: the API server did not answer.
    """
    methods = {
        "Job": k8s.BatchV1Api(api).delete_namespaced_job,
        "ConfigMap": k8s.CoreV1Api(api).delete_namespaced_config_map,
    }
    deleted = []
    for obj in objects:
        gone = call(
            f"{obj} in namespace {namespace}",
            _gone_is_none(methods[obj.kind]),
            obj.name,
            namespace,
            propagation_policy=propagation,
            dry_run="All" if dry_run else None,
        )
        if gone is not None:
            deleted.append(obj)
    return deleted


def _gone_is_none(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, answering None where the object is gone already (its TTL, another user)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except k8s.ApiException as e:
            if e.status == 404:
                return None
            raise

    return run
