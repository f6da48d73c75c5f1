"""Study specs → Kubernetes manifests: per study a ConfigMap holding the StudySpec and an Indexed
Job whose pods are the study's workers; per dataset that is not in the image, a data Job that
builds it on a shared volume.

Every object is built from the official `kubernetes` client models, from the parts in
`k8s.parts` (one builder per part), then serialized once by `k8s.serialize` (camelCase, no
nulls, fixed key order, `|` blocks for multi-line strings), so `finscale render --check` can
compare bytes. Secrets appear only as references: the storage URL carries no password; libpq
reads it from the Secret mounted as a file (`PGPASSFILE`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from kubernetes import client as k8s

from finscale.k8s.data_job import data_config_map, data_job
from finscale.k8s.options import (
    CONTAINER,
    IMAGE_DATA_DIR,
    SPEC_DIR,
    UID,
    ClusterOptions,
    cpu_sibling,
)
from finscale.k8s.parts import (
    backoff_limit,
    container,
    data_env,
    data_in_image,
    failure_policy,
    labels,
    pod,
    queue_label,
    study_labels,
    worker_args,
    worker_env,
    worker_resources,
    worker_volumes,
)
from finscale.k8s.serialize import kustomization, to_dict, to_yaml
from finscale.k8s.shipping import DataFrom, data_job_name, pinned, plan_data
from finscale.spec import ExperimentSpec, StudySpec, load_spec
from finscale.spec.base import NAME_LIMIT

# Re-exported: tests and callers read them here.
__all__ = [
    "IMAGE_DATA_DIR",
    "UID",
    "ClusterOptions",
    "DataFrom",
    "config_map",
    "data_job",
    "data_job_name",
    "drift",
    "evaluate_config_map",
    "evaluate_job",
    "evaluate_job_name",
    "evaluate_objects",
    "job",
    "render",
    "render_study",
    "to_dict",
    "to_yaml",
    "write",
]

# Sub-folders of the output: applied on their own, in the runbook's order (data first, then
# the studies in the folder itself, then the evaluation once the studies are done).
DATA_FOLDER = "data"
EVALUATE_FOLDER = "evaluate"


# --- a study: its ConfigMap and its Job of workers ---


def config_map(spec: StudySpec, options: ClusterOptions) -> k8s.V1ConfigMap:
    """The StudySpec, mounted into every worker pod as `study.yaml`."""
    return k8s.V1ConfigMap(
        api_version="v1",
        kind="ConfigMap",
        metadata=k8s.V1ObjectMeta(
            name=f"{spec.name}-spec", namespace=options.namespace, labels=study_labels(spec)
        ),
        data={"study.yaml": spec.to_yaml()},
    )


def _wait_for_data(
    spec: StudySpec, options: ClusterOptions, mounts: list[k8s.V1VolumeMount]
) -> k8s.V1Container:
    """Waits until the data Job has built the study's dataset, and checks its sha256."""
    args = ["data", "verify", "--dataset", spec.data.dataset, "--wait", str(options.data_wait_s)]
    if spec.data.sha256:
        args += ["--sha256", spec.data.sha256]
    return container(
        "wait-for-data",
        options.image(cpu_sibling(spec.resources.image)),
        args,
        env=data_env(),
        resources=k8s.V1ResourceRequirements(
            requests={"cpu": "100m", "memory": "256Mi"}, limits={"cpu": "500m", "memory": "1Gi"}
        ),
        mounts=[m for m in mounts if m.name in ("data", "tmp")],
        pull_policy=options.pull_policy,
    )


def job(spec: StudySpec, options: ClusterOptions) -> k8s.V1Job:
    """The study's workers: `workers` pods, one per index, that share the study in Postgres."""
    r = spec.resources
    volumes, mounts = worker_volumes(spec, options)
    worker = container(
        CONTAINER,
        options.image(r.image),
        worker_args(spec),
        env=worker_env(spec, options),
        resources=worker_resources(spec),
        mounts=mounts,
        pull_policy=options.pull_policy,
    )
    init = [] if data_in_image(spec) else [_wait_for_data(spec, options, mounts)]
    spec_digest = hashlib.sha256(spec.to_yaml().encode()).hexdigest()
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(
            name=spec.name,
            namespace=options.namespace,
            labels={**study_labels(spec), **queue_label(spec)},
            annotations={"finscale.io/spec-sha256": spec_digest},
        ),
        spec=k8s.V1JobSpec(
            completion_mode="Indexed",
            completions=spec.workers,
            parallelism=spec.workers,
            backoff_limit=backoff_limit(spec),
            pod_failure_policy=failure_policy(),
            pod_replacement_policy="Failed",  # never two pods of one index at once
            suspend=True if r.queue else None,  # Kueue admits (unsuspends) it
            active_deadline_seconds=r.active_deadline_s,
            ttl_seconds_after_finished=r.ttl_after_finished_s,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=study_labels(spec)),
                spec=pod(
                    options,
                    containers=[worker],
                    volumes=volumes,
                    placement=r,
                    init_containers=init,
                ),
            ),
        ),
    )


def render_study(spec: StudySpec, options: ClusterOptions) -> str:
    """The ConfigMap and the Job of one study, as one file."""
    return to_yaml([config_map(spec, options), job(spec, options)])


# --- an experiment's final evaluation ---


def _evaluate_labels(experiment: str, instance: str) -> dict[str, str]:
    # "worker": the network policies let workers (and only them) reach PostgreSQL.
    return labels("worker", instance, experiment=experiment)


def evaluate_config_map(experiment: ExperimentSpec, options: ClusterOptions) -> k8s.V1ConfigMap:
    """The experiment spec, mounted into the evaluation pods as `experiment.yaml`."""
    name = f"{experiment.name}-evaluate"
    return k8s.V1ConfigMap(
        api_version="v1",
        kind="ConfigMap",
        metadata=k8s.V1ObjectMeta(
            name=f"{name}-spec",
            namespace=options.namespace,
            labels=_evaluate_labels(experiment.name, name),
        ),
        data={"experiment.yaml": experiment.to_yaml()},
    )


def evaluate_job_name(study: str) -> str:
    """`<study>-evaluate`, or, past the 63 characters of a Job name, the study's name cut and
    a digest of it (so that two long names stay apart)."""
    suffix = "-evaluate"
    if len(study) + len(suffix) <= NAME_LIMIT:
        return study + suffix
    digest = hashlib.sha256(study.encode()).hexdigest()[:8]
    head = study[: NAME_LIMIT - len(suffix) - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}{suffix}"


def evaluate_job(experiment: ExperimentSpec, spec: StudySpec, options: ClusterOptions) -> k8s.V1Job:
    """The final evaluation of one study (`finscale evaluate --study`): a pod that retrains
    the study's best trials, sized like the study's workers and ended by
    `resources.evaluation_deadline_s`. The experiment's studies evaluate in parallel, one Job
    each; apply them when the studies are done (a retried pod resumes: runs already stored are
    not trained again)."""
    name = evaluate_job_name(spec.name)
    volumes, mounts = worker_volumes(spec, options)
    volumes = [v for v in volumes if v.name != "study-spec"] + [
        k8s.V1Volume(
            name="experiment-spec",
            config_map=k8s.V1ConfigMapVolumeSource(
                name=f"{experiment.name}-evaluate-spec", default_mode=0o444
            ),
        )
    ]
    mounts = [m for m in mounts if m.name != "study-spec"] + [
        k8s.V1VolumeMount(name="experiment-spec", mount_path=SPEC_DIR, read_only=True)
    ]
    r = spec.resources
    evaluator = container(
        "evaluate",
        options.image(r.image),
        ["evaluate", f"{SPEC_DIR}/experiment.yaml", "--study", spec.name],
        env=worker_env(spec, options),
        resources=worker_resources(spec),
        mounts=mounts,
        pull_policy=options.pull_policy,
    )
    eval_labels = {**_evaluate_labels(experiment.name, name), "finscale.io/study": spec.name}
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(
            name=name, namespace=options.namespace, labels={**eval_labels, **queue_label(spec)}
        ),
        spec=k8s.V1JobSpec(
            backoff_limit=r.backoff_limit_per_index,
            pod_failure_policy=failure_policy(),
            suspend=True if r.queue else None,
            active_deadline_seconds=r.evaluation_deadline_s,
            ttl_seconds_after_finished=r.ttl_after_finished_s,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=eval_labels),
                spec=pod(options, containers=[evaluator], volumes=volumes, placement=r),
            ),
        ),
    )


def evaluate_objects(
    experiment: ExperimentSpec, studies: list[StudySpec], options: ClusterOptions
) -> list[k8s.V1ConfigMap | k8s.V1Job]:
    """An experiment's evaluation: its spec's ConfigMap, then one Job per study."""
    jobs = [evaluate_job(experiment, s, options) for s in studies]
    return [evaluate_config_map(experiment, options), *jobs]


# --- a spec's files, written or checked ---


def render(
    spec_path: Path,
    *,
    options: ClusterOptions | None = None,
    data_from: DataFrom = "local",
    data_dir: Path | None = None,
) -> dict[str, str]:
    """Every file a spec renders, by path in the output folder: one folder per experiment,
    `<experiment>/<study>.yaml` per study (its kustomization applies this experiment's studies
    and no other's), `<experiment>/evaluate/<experiment>.yaml` with its final evaluation (apart:
    it runs once the studies are done), and `data/<data job>.yaml` per ticker whose datasets
    the image does not hold (shared by the experiments that read it). A study spec alone goes
    into its experiment's folder.

    Args:
        spec_path: an experiment or study spec.
        options: where the cluster's pieces are.
        data_from: `local` (default): each dataset outside the image is shipped as the raw
            snapshots it was built from in `data_dir`, rebuilt by its data Job and checked
            against the sha256 built here, which the studies pin; `download`: its data Job
            downloads it, and each study pins what it finds when it is created.
        data_dir: the local data directory (its `manifest.json`).

    Raises:
        SpecError: a bad spec, or a storage URL with a password.
        DataError: `local`, and a dataset is not built in `data_dir` (or is too large to
            ship; see `finscale.k8s.shipping.plan_data`).
    """
    options = options or ClusterOptions()
    spec = load_spec(spec_path)
    studies = spec.expand() if isinstance(spec, ExperimentSpec) else [spec]
    folder = spec.name if isinstance(spec, ExperimentSpec) else spec.experiment
    outside = [s for s in studies if not data_in_image(s)]
    plans = plan_data(outside, data_from=data_from, data_dir=data_dir)
    studies = [pinned(s, plans) for s in studies]
    files = {f"{folder}/{s.name}.yaml": render_study(s, options) for s in studies}
    for s in outside:  # the first study of a ticker names the image and the queue
        plan = plans[data_job_name(s.data.dataset)]
        name = f"{DATA_FOLDER}/{plan.name}.yaml"
        if name not in files:
            shipped = [data_config_map(plan, options)] if plan.shipped else []
            files[name] = to_yaml([*shipped, data_job(plan, s, options)])
    if isinstance(spec, ExperimentSpec):
        objects = evaluate_objects(spec, studies, options)
        files[f"{folder}/{EVALUATE_FOLDER}/{spec.name}.yaml"] = to_yaml(objects)
    return files


def _planned(files: dict[str, str], out_dir: Path) -> dict[str, str]:
    """The rendered files and one kustomization per folder, listing the folder's manifests:
    those rendered now and those of other specs already there. No kustomization above the
    experiments' folders: applying every experiment at once is never one command away."""
    folders = {str(Path(name).parent) for name in files}
    planned = dict(files)
    for folder in sorted(folders):
        where = out_dir / folder
        present = {p.name for p in where.glob("*.yaml")} if where.is_dir() else set()
        rendered = {Path(n).name for n in files if str(Path(n).parent) == folder}
        names = sorted((present | rendered) - {"kustomization.yaml"})
        key = "kustomization.yaml" if folder == "." else f"{folder}/kustomization.yaml"
        planned[key] = kustomization(names)
    return planned


def write(files: dict[str, str], out_dir: Path) -> list[Path]:
    """Write the rendered files and the folder's kustomization; returns the files written."""
    planned = _planned(files, out_dir)
    written = []
    for name, text in planned.items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written


def drift(files: dict[str, str], out_dir: Path) -> list[str]:
    """The rendered files (and the kustomization) that are missing or differ on disk."""
    problems = []
    for name, text in _planned(files, out_dir).items():
        path = out_dir / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text() != text:
            problems.append(f"{path}: differs from what the spec renders")
    return problems
