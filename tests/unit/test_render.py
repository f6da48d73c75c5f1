"""Rendered Jobs: built from the client models, stable to the byte, what the committed jobs/
holds, and free of secrets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from finscale.errors import SpecError
from finscale.k8s import ClusterOptions, drift, render, write
from finscale.k8s.render import job, to_dict
from finscale.spec import load_study
from tests.conftest import REPO
from tests.runbook import RUNBOOK

SPECS = sorted((REPO / "configs" / "experiments").glob("*.yaml"))  # every spec has its Jobs
VALIDATION = REPO / "configs" / "experiments" / "validation.yaml"
JOBS = REPO / "jobs"
# How `make render` renders the committed specs' data Jobs (the Makefile's RENDER_DATA_FROM).
_MAKE = re.search(r"^RENDER_DATA_FROM \?= (\w+)$", (REPO / "Makefile").read_text(), re.M)
DATA_FROM = _MAKE.group(1) if _MAKE else "local"


def _render(spec: Path, **options: Any) -> dict[str, str]:
    return render(spec, data_from=DATA_FROM, **options)


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _as_model(data: dict[str, Any], kind: str) -> Any:
    """Load a manifest back into the client's model, as the API client does with a response."""
    return k8s.ApiClient().deserialize(json.dumps(data), kind, "application/json")


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_committed_jobs_are_what_the_specs_render(spec: Path) -> None:
    assert drift(_render(spec), JOBS) == []


def test_rendering_is_byte_stable_and_check_sees_drift(tmp_path: Path) -> None:
    files = _render(VALIDATION)
    assert files == _render(VALIDATION)
    write(files, tmp_path)
    assert drift(files, tmp_path) == []
    target = tmp_path / "validation" / "validation-50k-h1.yaml"
    target.write_text(target.read_text().replace("completions: 2", "completions: 3"))
    assert drift(files, tmp_path) == [f"{target}: differs from what the spec renders"]
    target.unlink()
    assert drift(files, tmp_path) == [f"{target}: missing"]


def test_each_experiment_has_its_own_folder_and_kustomization() -> None:
    # Applying one experiment's folder never launches another's; nothing above the folders
    # applies them all; the evaluations and the data Jobs sit apart, each applied on its own.
    assert not (JOBS / "kustomization.yaml").exists()
    experiments = {"nasdaq-scaling": 3, "phase6a": 12, "sample-scaling": 3, "validation": 1}
    assert sorted(p.name for p in JOBS.iterdir()) == sorted([*experiments, "data"])
    for name, studies in experiments.items():
        folder = JOBS / name
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        assert kustomization["resources"] == sorted(
            p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"
        )
        assert len(kustomization["resources"]) == studies
        assert all(r.startswith(f"{name}-") for r in kustomization["resources"])
        inner = yaml.safe_load((folder / "evaluate" / "kustomization.yaml").read_text())
        assert inner["resources"] == [f"{name}.yaml"]
    data = yaml.safe_load((JOBS / "data" / "kustomization.yaml").read_text())
    assert data["resources"] == ["finscale-data-ixic.yaml", "finscale-data-spy.yaml"]


def test_every_rendered_job_round_trips_through_the_client_model() -> None:
    options = ClusterOptions()
    for spec in (REPO / "configs" / "experiments" / "phase6a.yaml", VALIDATION):
        experiment = load_study(spec, None) if spec == VALIDATION else None
        studies = (
            [experiment]
            if experiment
            else [load_study(spec, f"phase6a-{b}-h{h}") for b in ("2m", "2b") for h in (1, 5)]
        )
        for study in studies:
            assert study is not None
            path = JOBS / study.experiment / f"{study.name}.yaml"
            config_map, rendered = _docs(path.read_text())
            assert to_dict(_as_model(rendered, "V1Job")) == rendered
            assert _as_model(rendered, "V1Job") == job(study, options)
            assert yaml.safe_load(config_map["data"]["study.yaml"]) == json.loads(
                study.model_dump_json()
            )


def _job(name: str) -> dict[str, Any]:
    (path,) = JOBS.glob(f"*/{name}.yaml")
    return _docs(path.read_text())[1]


def test_a_job_is_indexed_with_the_failure_policy_of_the_exit_codes() -> None:
    spec = _job("phase6a-200m-h1")["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 4
    assert spec["backoffLimit"] == 3 * 4  # backoff_limit_per_index per worker, Job-wide
    assert "backoffLimitPerIndex" not in spec and "successPolicy" not in spec
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["ttlSecondsAfterFinished"] == 86400
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}},
        {"action": "Ignore", "onPodConditions": [{"status": "True", "type": "DisruptionTarget"}]},
    ]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_labels_name_the_study_budget_and_horizon() -> None:
    labels = _job("phase6a-200m-h5")["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/name": "finscale",
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/part-of": "finscale",
        "app.kubernetes.io/instance": "phase6a-200m-h5",
        "finscale.io/experiment": "phase6a",
        "finscale.io/study": "phase6a-200m-h5",
        "finscale.io/budget": "200M",
        "finscale.io/horizon": "5",
    }
    assert _job("phase6a-200m-h5")["spec"]["template"]["metadata"]["labels"] == labels


def test_pods_are_locked_down() -> None:
    pod = _job("phase6a-2b-h3")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "finscale-worker"
    assert pod["securityContext"] == {
        "fsGroup": 10001,
        "runAsGroup": 10001,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in pod["containers"] + pod["initContainers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["readOnlyRootFilesystem"] is True
        assert security["runAsNonRoot"] is True
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/dev/shm"]["name"]]["emptyDir"] == {
        "medium": "Memory",
        "sizeLimit": "4Gi",
    }
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def test_gpu_studies_ask_for_gpus_and_cpu_studies_do_not() -> None:
    gpu = _job("phase6a-2b-h1")["spec"]["template"]["spec"]
    worker = gpu["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert worker["resources"]["requests"] == {"cpu": "8", "memory": "96Gi", "nvidia.com/gpu": "1"}
    assert gpu["nodeSelector"] == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    }
    assert gpu["tolerations"] == [
        {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
    ]
    cpu = _job("validation-50k-h1")["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"]
    env = {e["name"]: e.get("value") for e in cpu["env"]}
    assert env["FINSCALE_DEVICE"] == "cpu"
    assert env["OMP_NUM_THREADS"] == "2"


def test_the_runbook_names_every_node_label_and_taint_the_committed_jobs_rely_on() -> None:
    # they come from the cluster (the GPU operator, GPU Feature Discovery, its admin): whoever
    # runs it must find them in the runbook's "GPU nodes"
    runbook = RUNBOOK.read_text()
    pods = [
        d["spec"]["template"]["spec"]
        for path in JOBS.rglob("*.yaml")
        for d in _docs(path.read_text())
        if d["kind"] == "Job"
    ]
    selected = {f"`{k}={v}`" for pod in pods for k, v in pod.get("nodeSelector", {}).items()}
    tolerated = {f"`{t['key']}:{t['effect']}`" for pod in pods for t in pod.get("tolerations", [])}
    assert selected and tolerated
    assert [s for s in selected | tolerated if s not in runbook] == []


def test_the_worker_runs_finscale_worker_on_the_mounted_spec() -> None:
    pod = _job("validation-50k-h1")["spec"]["template"]["spec"]
    worker = pod["containers"][0]
    assert worker["command"] == ["finscale"]
    assert worker["args"] == [
        "worker",
        "/etc/finscale/study/study.yaml",
        "--study",
        "validation-50k-h1",
        "--until",
        "idle",
    ]
    assert worker["image"] == "ghcr.io/finscale/finscale-worker-cpu:0.1.0"
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["FINSCALE_STORAGE_URL"] == "postgresql://finscale@finscale-postgres:5432/finscale"
    assert env["PGPASSFILE"] == "/etc/finscale/secrets/pgpass"
    assert env["FINSCALE_DATA_DIR"] == "/opt/finscale/data"  # the sample is in the image


def test_data_outside_the_image_comes_from_a_read_only_claim_after_the_data_job() -> None:
    pod = _job("phase6a-2m-h1")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {
        "claimName": "finscale-data",
        "readOnly": True,
    }
    (wait,) = pod["initContainers"]
    assert wait["args"] == ["data", "verify", "--dataset", "SPY.dataset.a25", "--wait", "240"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["FINSCALE_DATA_DIR"] == "/data"
    data_job = _docs((JOBS / "data" / "finscale-data-spy.yaml").read_text())[0]
    container = data_job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "data", "build", "--source", "yfinance", "--ticker", "SPY", "--if-missing"
    ]  # fmt: skip
    assert data_job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"] == {
        "claimName": "finscale-data"
    }


def test_no_secret_is_ever_rendered(tmp_path: Path) -> None:
    password = "s3cret-Pw-91"
    env = {
        "PGPASSWORD": password,
        "FINSCALE_STORAGE_URL": f"postgresql://u:{password}@db/x",
        "PATH": "",
    }
    out = tmp_path / "jobs"
    result = subprocess.run(
        [sys.executable, "-m", "finscale", "render", str(SPECS[0]), "--out", str(out),
         "--data-from", DATA_FROM],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for path in out.rglob("*.yaml"):
        assert password not in path.read_text()
    assert password not in result.stdout + result.stderr
    with pytest.raises(
        SpecError,
        match=r"must not carry a password: the workers read it from the Secret 'finscale-postgres'",
    ):
        ClusterOptions(storage_url=f"postgresql://u:{password}@db/x")


def test_rendering_imports_no_torch_optuna_or_talib() -> None:
    code = (
        "import sys; from pathlib import Path; from finscale.k8s import render\n"
        f"render(Path({str(SPECS[0])!r}), data_from={DATA_FROM!r})\n"
        "print([m for m in ('torch', 'optuna', 'talib') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_storage_deadline_of_the_spec_reaches_the_pods(tmp_path: Path) -> None:
    spec = load_study(VALIDATION)
    assert spec.resources.storage_deadline_s == 300
    slow = spec.model_copy(
        update={"resources": spec.resources.model_copy(update={"storage_deadline_s": 900})}
    )
    for study, expected in ((spec, "300"), (slow, "900")):
        rendered = to_dict(job(study, ClusterOptions()))
        env = {
            e["name"]: e.get("value")
            for e in rendered["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["FINSCALE_STORAGE_DEADLINE_S"] == expected


def test_a_job_is_complete_when_every_pod_left_idle_and_no_index_can_fail_it_alone() -> None:
    # The interplay the Job relies on: every pod exits 0 once nothing is left to start and no
    # trial of its index runs, so the Job is Complete by the Indexed Job's own rule (all indexes
    # succeeded) with no pod idling to the end; no per-index limit can mark an index failed
    # (the controller would fail the Job before any success policy), only the Job-wide one.
    spec = _job("phase6a-2m-h1")["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    assert "successPolicy" not in spec and "backoffLimitPerIndex" not in spec
    assert spec["backoffLimit"] == 3 * spec["completions"]
    args = spec["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--until") + 1] == "idle" and "--closer" not in args
    # the arguments are the worker command's own
    from finscale.cli import app

    command = typer_main_command(app).commands["worker"]
    context = command.make_context("worker", [*args[1:]], resilient_parsing=False)
    assert (context.params["until"], context.params["closer"]) == ("idle", None)
    assert "suspend" not in spec  # no queue: the Job starts at once


def _validation_with(tmp_path: Path, **resources: Any) -> Path:
    """The validation spec with these `resources` fields changed, written into `tmp_path`."""
    data = yaml.safe_load(VALIDATION.read_text())
    data["resources"].update(resources)
    path = tmp_path / "validation-changed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def typer_main_command(app: Any) -> Any:
    import typer.main

    return typer.main.get_command(app)


def test_a_queue_labels_the_jobs_for_kueue_and_creates_them_suspended(tmp_path: Path) -> None:
    files = _render(_validation_with(tmp_path, queue="research"))
    for name in ("validation/validation-50k-h1.yaml", "validation/evaluate/validation.yaml"):
        (job_doc,) = [d for d in _docs(files[name]) if d["kind"] == "Job"]
        assert job_doc["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "research"
        assert job_doc["spec"]["suspend"] is True
        # the pods keep the labels the network policies select on, and no queue label
        pod_labels = job_doc["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app.kubernetes.io/component"] == "worker"
        assert "kueue.x-k8s.io/queue-name" not in pod_labels


def test_a_runtime_class_reaches_the_pods_that_train(tmp_path: Path) -> None:
    # no runtime class by default: the nodes' default runtime (the GPU operator's, usually)
    assert "runtimeClassName" not in _job("phase6a-2b-h1")["spec"]["template"]["spec"]
    files = _render(_validation_with(tmp_path, runtime_class="nvidia"))
    for name in ("validation/validation-50k-h1.yaml", "validation/evaluate/validation.yaml"):
        (job_doc,) = [d for d in _docs(files[name]) if d["kind"] == "Job"]
        assert job_doc["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    with pytest.raises(SpecError, match="'NVIDIA' is not a Kubernetes object name"):
        _render(_validation_with(tmp_path, runtime_class="NVIDIA"))


def test_several_trials_per_pod_share_its_device_and_threads(tmp_path: Path) -> None:
    path = _validation_with(tmp_path, trials_per_pod=4, cpu_request="8", cpu_limit="8")
    (job_doc,) = [
        d for d in _docs(_render(path)["validation/validation-50k-h1.yaml"]) if d["kind"] == "Job"
    ]
    container = job_doc["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--processes", "4"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OMP_NUM_THREADS"] == "8"  # the pod's; each of the 4 workers takes a quarter


def test_an_experiment_renders_its_evaluation_apart_one_job_per_study() -> None:
    files = _render(REPO / "configs" / "experiments" / "phase6a.yaml")
    config_map, *jobs = _docs(files["phase6a/evaluate/phase6a.yaml"])
    assert config_map["kind"] == "ConfigMap" and {j["kind"] for j in jobs} == {"Job"}
    # the ConfigMap holds the experiment, which loads back to the same studies
    from finscale.spec import ExperimentSpec, load_spec

    loaded = ExperimentSpec.model_validate(yaml.safe_load(config_map["data"]["experiment.yaml"]))
    original = load_spec(REPO / "configs" / "experiments" / "phase6a.yaml")
    assert [s.model_dump() for s in loaded.expand()] == [s.model_dump() for s in original.expand()]
    studies = {s.name: s for s in original.expand()}
    # one Job per study, in parallel, each evaluating its own study with its own resources
    assert [j["metadata"]["name"] for j in jobs] == [f"{n}-evaluate" for n in studies]
    for job_doc in jobs:
        study = job_doc["metadata"]["labels"]["finscale.io/study"]
        pod = job_doc["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["args"] == [
            "evaluate", "/etc/finscale/study/experiment.yaml", "--study", study
        ]  # fmt: skip
        limits = container["resources"]["limits"]
        assert limits["memory"] == studies[study].resources.memory_limit
        assert job_doc["spec"]["activeDeadlineSeconds"] == 172800  # a stuck one ends
        assert {v["name"] for v in pod["volumes"]} >= {
            "experiment-spec",
            "storage-password",
            "data",
        }
    # the arguments are the evaluate command's own
    from finscale.cli import app

    command = typer_main_command(app).commands["evaluate"]
    args = jobs[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    context = command.make_context("evaluate", [*args[1:]], resilient_parsing=False)
    assert context.params["study"] == ["phase6a-2m-h1"]
    # applying the experiment's studies does not start it
    studies_kustomized = yaml.safe_load((JOBS / "phase6a" / "kustomization.yaml").read_text())
    assert not any("evaluate" in r for r in studies_kustomized["resources"])


def test_an_evaluation_job_name_fits_63_characters_and_stays_apart() -> None:
    from finscale.k8s.render import evaluate_job_name

    assert evaluate_job_name("phase6a-2m-h1") == "phase6a-2m-h1-evaluate"
    long_a, long_b = "a" * 50 + "-2m-h1", "a" * 50 + "-2m-h3"
    names = {evaluate_job_name(long_a), evaluate_job_name(long_b)}
    assert len(names) == 2 and all(len(n) <= 63 and n.endswith("-evaluate") for n in names)


def test_render_says_when_a_small_study_asks_for_a_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import run_cli

    # given the validation spec (50K, CPU workers) and the same design left on GPU defaults
    gpu = _validation_with(tmp_path, gpus=1)
    assert yaml.safe_load(VALIDATION.read_text())["resources"]["gpus"] == 0
    # when each is rendered
    code, _, quiet = run_cli(["render", str(VALIDATION), "--out", str(tmp_path / "a")], capsys)
    assert code == 0 and "note:" not in quiet
    code, _, said = run_cli(["render", str(gpu), "--out", str(tmp_path / "b")], capsys)
    # then only the GPU one is told that its model leaves the GPU idle, with the fix
    assert code == 0
    said = " ".join(said.split())
    assert "note: validation-50k-h1 (50K parameters) asks 2 pods × 1 GPU × " in said
    assert "`resources: {gpus: 0}` with the CPU image" in said


def _images(files: dict[str, str]) -> dict[str, set[tuple[str, str]]]:
    """Per rendered file, each container's (image, pull policy)."""
    found: dict[str, set[tuple[str, str]]] = {}
    for name, text in files.items():
        for doc in yaml.safe_load_all(text):
            if not doc or doc.get("kind") != "Job":
                continue
            pod = doc["spec"]["template"]["spec"]
            for c in pod.get("initContainers", []) + pod["containers"]:
                found.setdefault(name, set()).add((c["image"], c["imagePullPolicy"]))
    return found


PHASE6A = REPO / "configs" / "experiments" / "phase6a.yaml"


def test_images_come_from_the_users_registry_and_data_pods_run_the_cpu_image() -> None:
    # by default: the spec's GPU image for workers and evaluation, its CPU sibling (same
    # registry and tag) for the pods that only build or check data
    default = _images(_render(PHASE6A))
    assert default["data/finscale-data-spy.yaml"] == {
        ("ghcr.io/finscale/finscale-worker-cpu:0.1.0", "IfNotPresent")
    }
    assert default["phase6a/phase6a-2m-h1.yaml"] == {
        ("ghcr.io/finscale/finscale-worker-cpu:0.1.0", "IfNotPresent"),  # wait-for-data
        ("ghcr.io/finscale/finscale-worker:0.1.0", "IfNotPresent"),
    }
    # with the user's registry every image moves there, name and tag kept; Always on request
    options = ClusterOptions(registry="registry.example.com:5000/ml/team", pull_policy="Always")
    moved = _images(_render(PHASE6A, options=options))
    images = {image for pairs in moved.values() for image, _ in pairs}
    assert images == {
        "registry.example.com:5000/ml/team/finscale-worker:0.1.0",
        "registry.example.com:5000/ml/team/finscale-worker-cpu:0.1.0",
    }
    assert {policy for pairs in moved.values() for _, policy in pairs} == {"Always"}


def test_a_registry_or_pull_policy_that_is_not_one_is_refused_naming_it() -> None:
    for bad in ("https://registry.example.com", "Registry.example.com/Team", "r.io/team:1.0"):
        with pytest.raises(SpecError, match=f"--registry '{re.escape(bad)}': not a registry"):
            ClusterOptions(registry=bad)
    with pytest.raises(SpecError, match="--pull-policy 'Never': one of IfNotPresent, Always"):
        ClusterOptions(pull_policy="Never")
