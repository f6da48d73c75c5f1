"""The parts every rendered Job is made of, one builder each: labels, a container, a pod, the
failure policy, and the worker's environment, resources, volumes and security contexts."""

from __future__ import annotations

import math

from kubernetes import client as k8s

from finscale.k8s.options import (
    DATA_DIR,
    EXIT_BAD_INPUT,
    IMAGE_DATA_DIR,
    IMAGE_DATASETS,
    KUEUE_QUEUE_LABEL,
    SECRET_DIR,
    SPEC_DIR,
    UID,
    ClusterOptions,
)
from finscale.quantity import parse_quantity
from finscale.spec import ResourcesSpec, StudySpec


def labels(component: str, instance: str, **finscale: str) -> dict[str, str]:
    """The app.kubernetes.io labels of a part of finscale, then `finscale.io/<key>` ones."""
    return {
        "app.kubernetes.io/name": "finscale",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "finscale",
        "app.kubernetes.io/instance": instance,
        **{f"finscale.io/{key}": value for key, value in finscale.items()},
    }


def study_labels(spec: StudySpec) -> dict[str, str]:
    return labels(
        "worker",
        spec.name,
        experiment=spec.experiment,
        study=spec.name,
        budget=spec.budget,
        horizon=str(spec.horizon),
    )


def queue_label(spec: StudySpec) -> dict[str, str]:
    """Kueue's label naming the LocalQueue that admits the Job, when the spec names one."""
    return {KUEUE_QUEUE_LABEL: spec.resources.queue} if spec.resources.queue else {}


def data_in_image(spec: StudySpec) -> bool:
    return spec.data.dataset in IMAGE_DATASETS


def _threads(spec: StudySpec) -> int:
    """Math-library threads: the pod's CPUs, not the node's (torch would use every core)."""
    cores = parse_quantity(spec.resources.cpu_limit or spec.resources.cpu_request)
    return max(1, math.floor(cores))


def worker_env(spec: StudySpec, options: ClusterOptions) -> list[k8s.V1EnvVar]:
    values = {
        "FINSCALE_STORAGE_URL": options.storage_url,
        "FINSCALE_DATA_DIR": IMAGE_DATA_DIR if data_in_image(spec) else DATA_DIR,
        "FINSCALE_DEVICE": "cuda" if spec.resources.gpus else "cpu",
        "FINSCALE_HEARTBEAT_INTERVAL_S": str(options.heartbeat_interval_s),
        "FINSCALE_HEARTBEAT_GRACE_S": str(options.heartbeat_grace_s),
        "FINSCALE_STORAGE_DEADLINE_S": str(spec.resources.storage_deadline_s),
        "PGPASSFILE": f"{SECRET_DIR}/{options.secret_key}",
        "HOME": "/tmp",
        "OMP_NUM_THREADS": str(_threads(spec)),  # divided among a pod's worker processes
        "PYTHONUNBUFFERED": "1",
    }
    node = k8s.V1EnvVarSource(field_ref=k8s.V1ObjectFieldSelector(field_path="spec.nodeName"))
    # NODE_NAME: the node a failed device preflight names (exit 4).
    return [k8s.V1EnvVar(name=name, value=value) for name, value in values.items()] + [
        k8s.V1EnvVar(name="NODE_NAME", value_from=node)
    ]


def data_env() -> list[k8s.V1EnvVar]:
    """The environment of the containers that only read or build data (no storage)."""
    return [
        k8s.V1EnvVar(name="FINSCALE_DATA_DIR", value=DATA_DIR),
        k8s.V1EnvVar(name="HOME", value="/tmp"),
    ]


def worker_resources(spec: StudySpec) -> k8s.V1ResourceRequirements:
    r = spec.resources
    requests = {"cpu": r.cpu_request, "memory": r.memory_request}
    limits = {"memory": r.memory_limit}
    if r.cpu_limit:
        limits["cpu"] = r.cpu_limit
    if r.gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(r.gpus)
    return k8s.V1ResourceRequirements(requests=requests, limits=limits)


def _container_security() -> k8s.V1SecurityContext:
    return k8s.V1SecurityContext(
        allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        read_only_root_filesystem=True,
        run_as_non_root=True,
        run_as_user=UID,
        run_as_group=UID,
    )


def _pod_security() -> k8s.V1PodSecurityContext:
    return k8s.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=UID,
        run_as_group=UID,
        fs_group=UID,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def worker_volumes(
    spec: StudySpec, options: ClusterOptions
) -> tuple[list[k8s.V1Volume], list[k8s.V1VolumeMount]]:
    volumes = [
        k8s.V1Volume(
            name="study-spec",
            config_map=k8s.V1ConfigMapVolumeSource(name=f"{spec.name}-spec", default_mode=0o444),
        ),
        k8s.V1Volume(
            name="storage-password",
            secret=k8s.V1SecretVolumeSource(
                secret_name=options.secret_name,
                items=[k8s.V1KeyToPath(key=options.secret_key, path=options.secret_key)],
                default_mode=0o440,  # group-readable: the pod's fsGroup is the worker's group
            ),
        ),
        k8s.V1Volume(
            name="dshm",
            empty_dir=k8s.V1EmptyDirVolumeSource(
                medium="Memory", size_limit=spec.resources.shm_size
            ),
        ),
        k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="8Gi")),
    ]
    mounts = [
        k8s.V1VolumeMount(name="study-spec", mount_path=SPEC_DIR, read_only=True),
        k8s.V1VolumeMount(name="storage-password", mount_path=SECRET_DIR, read_only=True),
        k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm"),
        k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
    ]
    if not data_in_image(spec):
        volumes.append(
            k8s.V1Volume(
                name="data",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=options.data_claim, read_only=True
                ),
            )
        )
        mounts.append(k8s.V1VolumeMount(name="data", mount_path=DATA_DIR, read_only=True))
    return volumes, mounts


def container(
    name: str,
    image: str,
    args: list[str],
    *,
    env: list[k8s.V1EnvVar],
    resources: k8s.V1ResourceRequirements,
    mounts: list[k8s.V1VolumeMount],
    pull_policy: str = "IfNotPresent",
) -> k8s.V1Container:
    """A container that runs `finscale ARGS` as the image's non-root user."""
    return k8s.V1Container(
        name=name,
        image=image,
        image_pull_policy=pull_policy,
        command=["finscale"],
        args=args,
        env=env,
        resources=resources,
        security_context=_container_security(),
        volume_mounts=mounts,
    )


def pod(
    options: ClusterOptions,
    *,
    containers: list[k8s.V1Container],
    volumes: list[k8s.V1Volume],
    placement: ResourcesSpec | None = None,
    init_containers: list[k8s.V1Container] | None = None,
) -> k8s.V1PodSpec:
    """A pod of a Job; one that trains is placed by its spec's node selector, tolerations,
    priority class and runtime class (`placement`)."""
    node_selector: dict[str, str] | None = None
    tolerations: list[k8s.V1Toleration] | None = None
    priority_class: str | None = None
    runtime_class: str | None = None
    if placement is not None:
        node_selector = dict(placement.node_selector) or None
        tolerations = [
            k8s.V1Toleration(key=t.key, operator=t.operator, value=t.value, effect=t.effect)
            for t in placement.tolerations
        ] or None
        priority_class = placement.priority_class
        runtime_class = placement.runtime_class
    return k8s.V1PodSpec(
        restart_policy="Never",  # the Job retries a failed pod, per the failure policy
        service_account_name=options.service_account,
        automount_service_account_token=False,
        security_context=_pod_security(),
        node_selector=node_selector,
        tolerations=tolerations,
        priority_class_name=priority_class,
        runtime_class_name=runtime_class,
        init_containers=init_containers or None,
        containers=containers,
        volumes=volumes,
    )


def failure_policy(*, ignore_disruption: bool = True) -> k8s.V1PodFailurePolicy:
    rules = [
        # A bad spec or dataset fails the same way on every retry: stop the Job at once.
        k8s.V1PodFailurePolicyRule(
            action="FailJob",
            on_exit_codes=k8s.V1PodFailurePolicyOnExitCodesRequirement(
                operator="In", values=[EXIT_BAD_INPUT]
            ),
        )
    ]
    if ignore_disruption:
        # Preemption, eviction, node drain: not the worker's fault; its trial was handed back.
        rules.append(
            k8s.V1PodFailurePolicyRule(
                action="Ignore",
                on_pod_conditions=[
                    k8s.V1PodFailurePolicyOnPodConditionsPattern(
                        type="DisruptionTarget", status="True"
                    )
                ],
            )
        )
    return k8s.V1PodFailurePolicy(rules=rules)


def worker_args(spec: StudySpec) -> list[str]:
    """The worker index comes from JOB_COMPLETION_INDEX, set by the Indexed Job. Every pod
    leaves as soon as nothing is left for it to start and no trial of its own index runs (its
    GPU is free for other work); a dead pod's replacement, of the same index, reruns its stale
    trial. So each index exits 0 once the study's budget is spent, and the Job is Complete when
    they all have: the default success of an Indexed Job, with no pod idling until the end."""
    args = ["worker", f"{SPEC_DIR}/study.yaml", "--study", spec.name, "--until", "idle"]
    if spec.resources.trials_per_pod > 1:
        args += ["--processes", str(spec.resources.trials_per_pod)]
    return args


def backoff_limit(spec: StudySpec) -> int:
    """The failed pods a study's Job allows in all: `backoff_limit_per_index` per worker.

    A Job-wide limit, not the Job's `backoffLimitPerIndex`: the Job controller fails a Job
    whose failed indexes and succeeded ones make up its completions before it looks at any
    success policy (`syncJob`), so one index that ran out of retries would turn a study whose
    budget was spent into a Failed Job. With a Job-wide limit a failing index is retried (and
    its replacement, finding the budget spent, exits 0) until the Job as a whole has failed
    that many times."""
    return spec.resources.backoff_limit_per_index * spec.workers
