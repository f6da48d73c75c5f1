"""A ticker's data Job: builds its datasets onto the shared data volume, from the raw snapshots
shipped beside it in a ConfigMap (checking each dataset's sha256), or from a download."""

from __future__ import annotations

import hashlib

from kubernetes import client as k8s

from finscale.data.manifest import SNAPSHOT_SUFFIX
from finscale.k8s.options import DATA_DIR, SHIPPED_DIR, ClusterOptions, cpu_sibling
from finscale.k8s.parts import container, data_env, failure_policy, labels, pod, queue_label
from finscale.k8s.shipping import DataPlan, config_map_data
from finscale.spec import StudySpec


def data_args(plan: DataPlan) -> list[str]:
    """`finscale data build` for the plan. Applied twice (or after its TTL), it builds nothing
    when the datasets are there (for shipped bars: those exact versions)."""
    if not plan.shipped:
        return ["data", "build", "--source", "yfinance", "--ticker", plan.symbol, "--if-missing"]
    args = ["data", "build", "--source", "snapshot", "--snapshot-dir", SHIPPED_DIR]
    args += ["--ticker", plan.symbol]
    for kind in plan.kinds:
        args += ["--kind", kind]
    # The snapshots first: a damaged one is refused before it is read.
    for file, data in sorted(plan.files.items()):
        raw = file.removesuffix(SNAPSHOT_SUFFIX)
        args += ["--expect-sha256", f"{raw}={hashlib.sha256(data).hexdigest()}"]
    for name, digest in sorted(plan.datasets.items()):
        args += ["--expect-sha256", f"{name}={digest}"]
    return [*args, "--if-missing"]


def data_config_map(plan: DataPlan, options: ClusterOptions) -> k8s.V1ConfigMap:
    """The raw snapshots a shipped dataset is rebuilt from, byte for byte as built locally."""
    return k8s.V1ConfigMap(
        api_version="v1",
        kind="ConfigMap",
        metadata=k8s.V1ObjectMeta(
            name=f"{plan.name}-bars", namespace=options.namespace, labels=labels("data", plan.name)
        ),
        binary_data=config_map_data(plan),
    )


def _volumes(plan: DataPlan, options: ClusterOptions) -> list[k8s.V1Volume]:
    claim = k8s.V1PersistentVolumeClaimVolumeSource(claim_name=options.data_claim)
    volumes = [
        k8s.V1Volume(name="data", persistent_volume_claim=claim),
        k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="2Gi")),
    ]
    if plan.shipped:
        source = k8s.V1ConfigMapVolumeSource(name=f"{plan.name}-bars", default_mode=0o444)
        volumes.append(k8s.V1Volume(name="bars", config_map=source))
    return volumes


def data_job(plan: DataPlan, spec: StudySpec, options: ClusterOptions) -> k8s.V1Job:
    """Builds the plan's datasets onto the data volume, with the CPU image of `spec`'s build,
    queued in Kueue where `spec` names a queue."""
    data_labels = labels("data", plan.name)
    mounts = [
        k8s.V1VolumeMount(name="data", mount_path=DATA_DIR),
        k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
    ]
    if plan.shipped:
        mounts.append(k8s.V1VolumeMount(name="bars", mount_path=SHIPPED_DIR, read_only=True))
    builder = container(
        "data",
        options.image(cpu_sibling(spec.resources.image)),
        data_args(plan),
        env=data_env(),
        resources=k8s.V1ResourceRequirements(
            requests={"cpu": "1", "memory": "2Gi"}, limits={"cpu": "2", "memory": "4Gi"}
        ),
        mounts=mounts,
        pull_policy=options.pull_policy,
    )
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(
            name=plan.name,
            namespace=options.namespace,
            labels={**data_labels, **queue_label(spec)},
        ),
        spec=k8s.V1JobSpec(
            backoff_limit=4,  # downloads fail transiently; finscale itself retries each one too
            pod_failure_policy=failure_policy(ignore_disruption=False),
            suspend=True if spec.resources.queue else None,  # Kueue admits (unsuspends) it
            ttl_seconds_after_finished=86400,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=data_labels),
                spec=pod(options, containers=[builder], volumes=_volumes(plan, options)),
            ),
        ),
    )
