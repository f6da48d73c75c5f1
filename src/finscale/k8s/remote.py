"""A reader of the storage run on the cluster, where PostgreSQL is (`finscale report --kube`,
`finscale status --kube`): a short Job on the CPU image runs the command with the workers'
storage URL and password file; its pod prints the command's output, then, for a report, the
report's folder as a base64 tar between two marker lines; the client reads the pod's log and
unpacks the folder locally. No port-forward, and no password leaves the cluster.

A pod's log is capped by the kubelet (`containerLogMaxSize`, 10 MiB by default): a report
whose archive does not fit is refused, naming `--no-plots` as the way out.
"""

from __future__ import annotations

import base64
import io
import secrets
import tarfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from finscale.errors import ClusterError, JobFailedError
from finscale.k8s.cluster import JOB_NAME_LABEL, call, wait_for_jobs
from finscale.k8s.options import SECRET_DIR, ClusterOptions, cpu_sibling
from finscale.k8s.parts import container, labels, pod

BEGIN = "-----BEGIN FINSCALE ARCHIVE-----"
END = "-----END FINSCALE ARCHIVE-----"
OUT_DIR = "/tmp/finscale-out"  # where the pod's command writes what comes back
CONTAINER = "finscale"
REPORT_LABEL = "report"  # finscale.io/report: the command a reader Job runs
KEEP_FINISHED_S = 600  # a reader Job left behind (the client died) goes after this
LOG_TAIL_LINES = 40  # of a failed pod, in the error


# --- the archive in the log ---


def pack(folder: Path) -> str:
    """`folder` as a gzipped tar in base64, wrapped at 76 columns, between the marker lines."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    text = base64.b64encode(buffer.getvalue()).decode()
    return "\n".join([BEGIN, *textwrap.wrap(text, 76), END]) + "\n"


def print_packed(folder: str = OUT_DIR) -> None:
    """The pod's last step: the archive of `folder` on standard output."""
    print(pack(Path(folder)), end="", flush=True)


def split_log(log: str) -> tuple[str, bytes | None]:
    """A pod's log → what the command printed, and the archive after it (None without one).

    Raises:
        ClusterError: the archive begins but does not end (the kubelet cut the log).
    """
    lines = log.splitlines()
    if BEGIN not in lines:
        return log, None
    start = lines.index(BEGIN)
    if END not in lines[start:]:
        raise ClusterError(
            "the report's archive in the pod's log is cut short (the kubelet's "
            "containerLogMaxSize): rerun with --no-plots, or ask for fewer studies"
        )
    end = start + lines[start:].index(END)
    printed = "\n".join(lines[:start]) + ("\n" if start else "")
    return printed, base64.b64decode("".join(lines[start + 1 : end]))


def unpack(archive: bytes, target: Path) -> list[Path]:
    """Unpack an archive's plain files into `target`; the files written.

    Raises:
        ClusterError: the archive names a file outside `target` (`../`, an absolute path).
    """
    root = target.resolve()
    written = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            source = tar.extractfile(member) if member.isfile() else None
            if source is None:
                continue  # folders come with their files; links and devices never
            path = (root / member.name).resolve()
            if not path.is_relative_to(root):
                raise ClusterError(f"the archive names {member.name!r}, outside {target}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(source.read())
            written.append(path)
    return written


# --- the Job ---

# The image runs `finscale ARGS`, then (for a folder to bring back) prints its archive.
_SCRIPT = 'set -eu\nfinscale "$@"\n'
_PACK = f'python -c "from finscale.k8s.remote import print_packed; print_packed({OUT_DIR!r})"\n'


def reader_job(
    args: list[str],
    *,
    options: ClusterOptions,
    image: str,
    archive: bool = False,
    columns: int = 80,
    name: str | None = None,
) -> k8s.V1Job:
    """A Job of one pod that runs `finscale ARGS` on the CPU sibling of `image`, against the
    workers' storage (`options.storage_url`, the password file of `options.secret_name`), and
    with `archive` prints `OUT_DIR` as an archive after it. Labelled as a worker: the network
    policies let workers reach PostgreSQL."""
    name = name or f"finscale-{args[0]}-{secrets.token_hex(3)}"
    env = {
        "FINSCALE_STORAGE_URL": options.storage_url,
        "PGPASSFILE": f"{SECRET_DIR}/{options.secret_key}",
        "FINSCALE_RUNS_DIR": "/tmp/runs",
        "HOME": "/tmp",
        "COLUMNS": str(columns),  # tables as wide as the reader's terminal
        "PYTHONUNBUFFERED": "1",
    }
    runner = container(
        CONTAINER,
        options.image(cpu_sibling(image)),
        args,
        env=[k8s.V1EnvVar(name=k, value=v) for k, v in env.items()],
        resources=k8s.V1ResourceRequirements(
            requests={"cpu": "1", "memory": "2Gi"}, limits={"cpu": "2", "memory": "4Gi"}
        ),
        mounts=[
            k8s.V1VolumeMount(name="storage-password", mount_path=SECRET_DIR, read_only=True),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
        ],
        pull_policy=options.pull_policy,
    )
    runner.command = ["/bin/sh", "-c", _SCRIPT + (_PACK if archive else ""), "finscale"]
    volumes = [
        k8s.V1Volume(
            name="storage-password",
            secret=k8s.V1SecretVolumeSource(
                secret_name=options.secret_name,
                items=[k8s.V1KeyToPath(key=options.secret_key, path=options.secret_key)],
                default_mode=0o440,
            ),
        ),
        k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="2Gi")),
    ]
    job_labels = labels("worker", name, report=args[0])
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(name=name, namespace=options.namespace, labels=job_labels),
        spec=k8s.V1JobSpec(
            backoff_limit=0,  # a reader that fails fails the same way again: said at once
            ttl_seconds_after_finished=KEEP_FINISHED_S,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=job_labels),
                spec=pod(options, containers=[runner], volumes=volumes),
            ),
        ),
    )


def job_name(job: k8s.V1Job) -> tuple[str, str]:
    """A Job's name and namespace (a reader Job has both)."""
    assert job.metadata is not None and job.metadata.name and job.metadata.namespace
    return job.metadata.name, job.metadata.namespace


def _pod_log(api: k8s.ApiClient, job: str, namespace: str, *, tail: int | None = None) -> str:
    core = k8s.CoreV1Api(api)
    pods: list[Any] = call(
        f"pods of job/{job}",
        core.list_namespaced_pod,
        namespace,
        label_selector=f"{JOB_NAME_LABEL}={job}",
    ).items
    if not pods:
        raise ClusterError(f"job/{job} in namespace {namespace} has no pod to read")
    last = max(pods, key=lambda p: p.metadata.creation_timestamp or 0)
    log: str = call(
        f"the log of pod/{last.metadata.name}",
        core.read_namespaced_pod_log,
        last.metadata.name,
        namespace,
        container=CONTAINER,
        tail_lines=tail,
    )
    return log


def run_reader(
    api: k8s.ApiClient,
    job: k8s.V1Job,
    *,
    timeout_s: float,
    poll_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Create the reader Job, wait for it, and return its pod's log; the Job is deleted after
    (with its pod), whatever happened.

    Raises:
        JobFailedError: the command failed (the end of its log quoted).
        ClusterError, ClusterUnavailableError: the API refused, did not answer, or the Job
            did not finish within `timeout_s`.
    """
    batch = k8s.BatchV1Api(api)
    name, namespace = job_name(job)
    what = f"job/{name} in namespace {namespace}"
    call(what, batch.create_namespaced_job, namespace, job)
    try:
        try:
            wait_for_jobs(
                api, [name], namespace=namespace, timeout_s=timeout_s, poll_s=poll_s, sleep=sleep
            )
        except JobFailedError as e:
            tail = _pod_log(api, name, namespace, tail=LOG_TAIL_LINES)
            raise JobFailedError(f"{e}; the end of its log:\n{tail.rstrip()}") from None
        return _pod_log(api, name, namespace)
    finally:
        _delete_quietly(batch, name, namespace)


def _delete_quietly(batch: k8s.BatchV1Api, name: str, namespace: str) -> Any:
    """Delete a reader Job and its pod; its TTL removes it where this fails."""
    try:
        return batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    except Exception:
        return None
