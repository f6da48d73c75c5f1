"""What `finscale watch` shows of a study or an experiment on the cluster, as plain records:
its Jobs (by the `finscale.io/study` or `finscale.io/experiment` label the renderer sets),
their pods (phase, restarts, node, last exit code and what it means), and the recent Warning
events of both. The study's progress comes from the storage, which the CLI adds (`k8s` never
opens it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client as k8s

from finscale.errors import JobFailedError
from finscale.k8s.cluster import (
    COMPONENT_LABEL,
    JOB_NAME_LABEL,
    STUDY_LABEL,
    call,
    failure_reason,
    job_state,
    selector,
)

# What finscale's exit codes mean in a pod (errors.ExitCode; docs/settings.md).
EXIT_MEANINGS = {
    0: "done",
    1: "error (its log has the traceback)",
    2: "bad spec or data",
    3: "storage unreachable",
    4: "device preflight failed",
    137: "killed (SIGKILL, out of memory)",
    143: "stopped (SIGTERM)",
}
FINISHED = frozenset({"Complete", "Failed"})
EVENTS_SHOWN = 8  # the most recent Warning events


@dataclass(frozen=True)
class JobView:
    """One Job: its state and pods by outcome; `study` for a study's Job."""

    name: str
    study: str | None
    state: str  # Complete, Failed, Suspended, Running, Pending
    active: int
    succeeded: int
    failed: int
    reason: str = ""  # why it failed


@dataclass(frozen=True)
class PodView:
    """One pod: where it runs and how its last container ended."""

    name: str
    job: str
    phase: str
    restarts: int
    node: str | None
    exit_code: int | None
    reason: str | None  # the container's (OOMKilled, ImagePullBackOff) or none

    @property
    def last(self) -> str:
        """`exit 4: device preflight failed`, `ImagePullBackOff`, or empty."""
        if self.exit_code is None:
            return self.reason or ""
        meaning = EXIT_MEANINGS.get(self.exit_code, "")
        said = [r for r in (meaning, self.reason) if r and r not in ("Error", "Completed")]
        return f"exit {self.exit_code}" + (f": {', '.join(said)}" if said else "")


@dataclass(frozen=True)
class EventView:
    """A Warning event about one of the Jobs or pods."""

    when: datetime | None
    obj: str  # kind/name
    reason: str
    message: str
    count: int


@dataclass(frozen=True)
class Snapshot:
    """The Jobs, pods and events of a study or experiment at one moment."""

    namespace: str
    selector: str
    taken: datetime
    jobs: list[JobView]
    pods: list[PodView] = field(default_factory=list)
    events: list[EventView] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Every Job is Complete or Failed."""
        return bool(self.jobs) and all(j.state in FINISHED for j in self.jobs)

    @property
    def failed(self) -> list[JobView]:
        return [j for j in self.jobs if j.state == "Failed"]

    @property
    def studies(self) -> list[str]:
        return [j.study for j in self.jobs if j.study]

    def content(self) -> tuple[Any, ...]:
        """What changes between two snapshots, the time of taking them aside."""
        return (self.jobs, self.pods, self.events)


def _job(job: Any) -> JobView:
    labels = job.metadata.labels or {}
    status = job.status
    return JobView(
        name=job.metadata.name,
        study=labels.get(STUDY_LABEL),
        state=job_state(job),
        active=(status.active or 0) if status else 0,
        succeeded=(status.succeeded or 0) if status else 0,
        failed=(status.failed or 0) if status else 0,
        reason=failure_reason(job),
    )


def _last_end(pod: Any) -> tuple[int | None, str | None]:
    """The exit code and reason of the pod's container that failed (an init container
    first), else of its worker that ended, else what a container waits for
    (ImagePullBackOff, ContainerCreating) or the pod's own reason (Evicted)."""
    status = pod.status
    if status is None:
        return None, None
    init = status.init_container_statuses or []
    main = status.container_statuses or []
    ended: tuple[int | None, str | None] | None = None
    waiting = None
    for s in [*init, *main]:
        for state in (s.state, s.last_state):
            done = state.terminated if state else None
            if done is not None and done.exit_code:
                return done.exit_code, done.reason
            if done is not None and s in main:
                ended = ended or (done.exit_code, done.reason)
        if s.state and s.state.waiting and s.state.waiting.reason:
            waiting = waiting or s.state.waiting.reason
    if ended is not None:
        return ended
    return None, waiting or status.reason


def _pod(pod: Any) -> PodView:
    statuses = (pod.status.container_statuses or []) if pod.status else []
    labels = pod.metadata.labels or {}
    code, reason = _last_end(pod)
    return PodView(
        name=pod.metadata.name,
        job=labels.get(JOB_NAME_LABEL) or labels.get("job-name") or "",
        phase=(pod.status.phase if pod.status else None) or "Unknown",
        restarts=sum(s.restart_count or 0 for s in statuses),
        node=pod.spec.node_name if pod.spec else None,
        exit_code=code,
        reason=reason,
    )


def _event_time(event: Any) -> datetime | None:
    when = event.last_timestamp or event.event_time or event.first_timestamp
    if when is None and event.metadata is not None:
        when = event.metadata.creation_timestamp
    if isinstance(when, datetime) and when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when if isinstance(when, datetime) else None


def _events(api: k8s.ApiClient, namespace: str, names: set[str]) -> list[EventView]:
    found = call(
        f"events in namespace {namespace}",
        k8s.CoreV1Api(api).list_namespaced_event,
        namespace,
        field_selector="type=Warning",
    )
    shown = [
        EventView(
            when=_event_time(e),
            obj=f"{(e.involved_object.kind or '').lower()}/{e.involved_object.name}",
            reason=e.reason or "",
            message=" ".join((e.message or "").split()),
            count=e.count or 1,
        )
        for e in found.items
        if e.involved_object is not None and e.involved_object.name in names
    ]
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(shown, key=lambda e: e.when or oldest)[-EVENTS_SHOWN:]


def take_snapshot(
    api: k8s.ApiClient, *, namespace: str, target: str, chosen: str | None = None
) -> Snapshot:
    """The Jobs, pods and Warning events of study or experiment `target` now (`chosen`: its
    label selector, when known).

    Raises:
        ClusterError: no Job carries the label, or the API refused.
        ClusterUnavailableError: the API server did not answer.
    """
    chosen = chosen or selector(target, api=api, namespace=namespace)
    jobs = call(
        f"jobs labelled {chosen}",
        k8s.BatchV1Api(api).list_namespaced_job,
        namespace,
        label_selector=chosen,
    ).items
    own: list[Any] = [
        j for j in cast(list[Any], jobs) if (j.metadata.labels or {}).get(COMPONENT_LABEL)
    ]
    pods = call(
        f"pods labelled {chosen}",
        k8s.CoreV1Api(api).list_namespaced_pod,
        namespace,
        label_selector=chosen,
    ).items
    job_views = sorted((_job(j) for j in own), key=lambda j: j.name)
    pod_views = sorted((_pod(p) for p in pods), key=lambda p: (p.job, p.name))
    names = {j.name for j in job_views} | {p.name for p in pod_views}
    return Snapshot(
        namespace=namespace,
        selector=chosen,
        taken=datetime.now(UTC),
        jobs=job_views,
        pods=pod_views,
        events=_events(api, namespace, names),
    )


def watch(
    api: k8s.ApiClient,
    *,
    namespace: str,
    target: str,
    show: Callable[[Snapshot], None],
    interval_s: float = 10.0,
    once: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Snapshot:
    """Take a snapshot every `interval_s` and `show` it, until every Job is Complete or Failed
    (or after one, with `once`); returns the last.

    Raises:
        ClusterError, ClusterUnavailableError: as `take_snapshot`.
    """
    chosen = selector(target, api=api, namespace=namespace)
    while True:
        snapshot = take_snapshot(api, namespace=namespace, target=target, chosen=chosen)
        show(snapshot)
        if once or snapshot.finished:
            return snapshot
        sleep(interval_s)


def failed_error(snapshot: Snapshot) -> JobFailedError | None:
    """The error of a snapshot whose Jobs have failed, naming each with its reason and its
    failed pods' exit codes; None when none failed."""
    if not snapshot.failed:
        return None
    lines = []
    for j in snapshot.failed:
        codes = sorted({p.last for p in snapshot.pods if p.job == j.name and p.exit_code})
        lines.append(
            f"job/{j.name} failed: {j.reason or 'no reason given'}"
            + (f" (pods: {'; '.join(codes)})" if codes else "")
        )
    ok = len(snapshot.jobs) - len(snapshot.failed)
    lines.append(f"{ok} of {len(snapshot.jobs)} Jobs complete (selector {snapshot.selector})")
    return JobFailedError("\n".join(lines))


__all__ = [
    "EXIT_MEANINGS",
    "EventView",
    "JobView",
    "PodView",
    "Snapshot",
    "failed_error",
    "take_snapshot",
    "watch",
]
