"""The delivery files, checked offline with the tools a cluster would use: Kubernetes' OpenAPI
schemas (strict, every supported minor), kustomize, hadolint, Skaffold's schema and GitHub's
workflow schema; and the cluster base's contracts: separate from the studies, no Secret, an
application role, network policies that select the pods the Jobs render."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import REPO
from tests.runbook import RUNBOOK, restore_job

BIN = Path(sys.executable).parent
# The Job spec fields the rendered Jobs use, and the release each became GA (a beta field can be
# switched off, and the API server then drops it silently). The oldest supported Kubernetes is
# the newest of these; docs/kubernetes.md states it. A field not in this table fails the test.
JOB_FIELDS_GA = {
    "activeDeadlineSeconds": (1, 2),
    "backoffLimit": (1, 2),
    "completionMode": (1, 24),
    "completions": (1, 2),
    "parallelism": (1, 2),
    "podFailurePolicy": (1, 31),
    "podReplacementPolicy": (1, 34),
    "template": (1, 2),
    "ttlSecondsAfterFinished": (1, 23),
}
MINIMUM_KUBERNETES = (1, 34)
NEWEST_KUBERNETES = (1, 37)  # the newest whose schemas kubernetes-validate ships
KUBERNETES_VERSIONS = [
    f"1.{minor}.0" for minor in range(MINIMUM_KUBERNETES[1], NEWEST_KUBERNETES[1] + 1)
]
# The rendered folders, each applied on its own: data Jobs, the studies, the evaluations.
JOB_FOLDERS = sorted(
    str(p.parent.relative_to(REPO)) for p in (REPO / "jobs").rglob("kustomization.yaml")
)
JOB_FILES = sorted(p for p in (REPO / "jobs").rglob("*.yaml") if p.name != "kustomization.yaml")
MANIFESTS = sorted(
    [str(p) for p in (REPO / "k8s").glob("*.yaml") if p.name != "kustomization.yaml"]
    + [str(p) for p in JOB_FILES]
)
DOCKERFILES = [REPO / "Dockerfile", REPO / "images" / "cpu" / "Dockerfile"]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def _kustomize(folder: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [_tool("kubectl"), "kustomize", str(REPO / folder)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _docs(paths: list[Path]) -> list[dict[str, Any]]:
    return [d for path in paths for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_runbook_and_readme_state_the_oldest_kubernetes_the_job_fields_need() -> None:
    used = {field for doc in _docs(JOB_FILES) if doc["kind"] == "Job" for field in doc["spec"]}
    assert used <= set(JOB_FIELDS_GA), f"add to JOB_FIELDS_GA: {used - set(JOB_FIELDS_GA)}"
    assert max(JOB_FIELDS_GA[f] for f in used) == MINIMUM_KUBERNETES
    assert "**Kubernetes {}.{} or newer.**".format(*MINIMUM_KUBERNETES) in RUNBOOK.read_text()
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "Kubernetes {}.{} or newer".format(*MINIMUM_KUBERNETES) in readme
    assert f"1.{MINIMUM_KUBERNETES[1]} to 1.{NEWEST_KUBERNETES[1]}" in readme


# The range's ends in the quick loop (seconds each), every minor in the whole suite.
@pytest.mark.parametrize(
    "version",
    [
        v
        if v in (KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1])
        else pytest.param(v, marks=pytest.mark.slow)
        for v in KUBERNETES_VERSIONS
    ],
)
def test_every_manifest_validates_strictly(version: str, tmp_path: Path) -> None:
    """The rendered Jobs, the base's files, the base as kustomize builds it, the runbook's
    restore Job and the Jobs of `report --kube` and `status --kube`, against this minor's
    schemas."""
    from finscale.k8s import ClusterOptions
    from finscale.k8s.remote import reader_job
    from finscale.k8s.serialize import to_dict

    assert len(MANIFESTS) >= 20
    readers = [
        to_dict(reader_job(args, options=ClusterOptions(), image="ghcr.io/f/finscale-worker:1",
                           archive=args[0] == "report"))
        for args in (["report", "--out", "/tmp/finscale-out"], ["status"])
    ]  # fmt: skip
    built = tmp_path / "base.yaml"
    built.write_text(yaml.safe_dump_all([*_kustomize("k8s"), restore_job(), *readers]))
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, *MANIFESTS, str(built)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_catches_a_misspelt_field(tmp_path: Path) -> None:
    job = (
        (REPO / "jobs" / "validation" / "validation-50k-h1.yaml")
        .read_text()
        .replace("podReplacementPolicy", "podReplacementPolicx")
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text(job)
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBERNETES_VERSIONS[0], str(broken)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "podReplacementPolicx" in result.stdout + result.stderr


def test_the_base_and_the_studies_are_separate_and_hold_no_secret() -> None:
    base = _kustomize("k8s")
    studies = [d for folder in JOB_FOLDERS for d in _kustomize(folder)]
    assert {d["kind"] for d in base} == {
        "Namespace",
        "ServiceAccount",
        "Service",
        "ConfigMap",
        "StatefulSet",  # no PodDisruptionBudget: one replica's would block every node drain
        "PersistentVolumeClaim",
        "CronJob",
        "NetworkPolicy",
        "Deployment",
    }
    assert all(
        d["metadata"].get("namespace") == "finscale" for d in base if d["kind"] != "Namespace"
    )
    assert {d["kind"] for d in studies} == {"ConfigMap", "Job"}
    names = {(d["kind"], d["metadata"]["name"]) for d in base}
    assert not names & {(d["kind"], d["metadata"]["name"]) for d in studies}
    # every YAML file a folder apply (kubectl apply -f k8s/ or -k) could reach holds no Secret
    files = [*(REPO / "k8s").rglob("*.y*ml"), *(REPO / "jobs").rglob("*.y*ml")]
    assert not [p for p in files if re.search(r"^kind: *Secret\b", p.read_text(), re.MULTILINE)]
    # the base's folder holds what its kustomization applies, and in folders of their own
    # (which `kubectl apply -k k8s/` and `-f k8s/` do not reach) the optional Kueue objects and
    # skaffold's dev overlays
    assert set((REPO / "k8s").iterdir()) == {
        REPO / "k8s" / n
        for n in yaml.safe_load((REPO / "k8s" / "kustomization.yaml").read_text())["resources"]
    } | {REPO / "k8s" / "kustomization.yaml", REPO / "k8s" / "kueue", REPO / "k8s" / "dev"}


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_workers_dashboard_and_backup_log_in_as_the_application_role_not_the_superuser() -> None:
    base = {(d["kind"], d["metadata"]["name"]): d for d in _kustomize("k8s")}
    postgres = base["StatefulSet", "finscale-postgres"]["spec"]["template"]["spec"]
    env = _env(postgres["containers"][0])
    role, superuser = env["APP_ROLE"], env["POSTGRES_USER"]
    assert role == env["APP_DATABASE"] == "finscale" and superuser == "postgres"
    secrets = {v["secret"]["secretName"] for v in postgres["volumes"] if "secret" in v}
    assert secrets == {"finscale-postgres", "finscale-postgres-superuser"}
    init = base["ConfigMap", "finscale-postgres-init"]["data"]["10-application-role.sh"]
    assert "NOSUPERUSER NOCREATEDB NOCREATEROLE" in init and 'OWNER :"role"' in init
    # the clients: rendered Jobs, the dashboard, the backup
    jobs = [d for d in _docs(JOB_FILES) if d["kind"] == "Job"]
    urls = [
        _env(c)["FINSCALE_STORAGE_URL"]
        for j in jobs
        for c in j["spec"]["template"]["spec"]["containers"]
        if "FINSCALE_STORAGE_URL" in _env(c)
    ]
    assert urls and all(url.startswith(f"postgresql://{role}@") for url in urls)
    dashboard = base["Deployment", "finscale-dashboard"]["spec"]["template"]["spec"]
    assert dashboard["containers"][0]["args"][0].split("//")[1].startswith(f"{role}@")
    backup = base["CronJob", "finscale-postgres-backup"]["spec"]["jobTemplate"]["spec"]
    assert _env(backup["template"]["spec"]["containers"][0])["PGUSER"] == role
    for pod in [
        backup["template"]["spec"],
        dashboard,
        *(j["spec"]["template"]["spec"] for j in jobs),
    ]:
        used = {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v} | {
            e["valueFrom"]["secretKeyRef"]["name"]
            for c in pod["containers"]
            for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert "finscale-postgres-superuser" not in used


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _pods() -> dict[str, dict[str, str]]:
    """Every pod template's labels, by what it is."""
    docs = [*_kustomize("k8s"), *(d for folder in JOB_FOLDERS for d in _kustomize(folder))]
    pods = {}
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec:
            labels = spec["template"]["metadata"]["labels"]
            pods[labels.get("app.kubernetes.io/component", "?") + ":" + d["metadata"]["name"]] = (
                labels
            )
    return pods


def test_network_policies_deny_by_default_and_allow_what_each_rendered_pod_needs() -> None:
    policies = {
        d["metadata"]["name"]: d["spec"] for d in _kustomize("k8s") if d["kind"] == "NetworkPolicy"
    }
    deny = policies["finscale-default-deny"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    pods = _pods()
    assert {name.split(":")[0] for name in pods} == {
        "worker",
        "data",
        "database",
        "dashboard",
        "backup",
    }

    def egress_ports(labels: dict[str, str]) -> set[int]:
        return {
            port["port"]
            for spec in policies.values()
            if "Egress" in spec["policyTypes"] and _selects(spec["podSelector"], labels)
            for rule in spec.get("egress", [])
            for port in rule["ports"]
        }

    for name, labels in pods.items():
        kind = name.split(":")[0]
        expected = {53} | {
            "worker": {5432}, "dashboard": {5432}, "backup": {5432}, "data": {443}, "database": set()
        }[kind]  # fmt: skip
        assert egress_ports(labels) == expected, name
    (ingress,) = policies["finscale-postgres"]["ingress"]
    clients = {
        n for n, labels in pods.items() if _selects(ingress["from"][0]["podSelector"], labels)
    }
    assert {n.split(":")[0] for n in clients} == {"worker", "dashboard", "backup"}
    assert not [
        s
        for s in policies.values()
        if "Ingress" in s["policyTypes"]
        and s.get("ingress")
        and s is not policies["finscale-postgres"]
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=["gpu", "cpu"])
def test_dockerfiles_are_lint_clean_and_every_ignore_has_a_reason(dockerfile: Path) -> None:
    result = subprocess.run([_tool("hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dockerfile.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            rule = line.split("=")[1].strip()
            assert lines[i - 1].startswith(f"# {rule}:"), (
                f"{dockerfile}:{i + 1}: {rule} ignored without a reason"
            )


def test_dockerignore_admits_only_the_build_inputs() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert set(lines[1:]) - {"**/__pycache__", "**/*.pyc"} == {
        "!requirements/",
        "!scripts/install.sh",
        "!pyproject.toml",
        "!README.md",
        "!src/",
        "!data/sample/",
    }


def test_skaffold_config_matches_the_published_schema() -> None:
    schema = json.loads((REPO / "tests" / "schemas" / "skaffold-v4beta14.json").read_text())
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    jsonschema.validate(config, schema)
    assert config["apiVersion"] == "skaffold/v4beta14"
    assert {p["name"] for p in config["profiles"]} == {"cpu", "gpu", "phase6a"}
    broken = {**config, "deploy": {"kubectl": {"flagz": {}}}}
    with pytest.raises(jsonschema.ValidationError, match="flagz"):
        jsonschema.validate(broken, schema)


def _skaffold_manifests(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects a skaffold `manifests` stanza deploys: its raw files (under jobs/) and its
    kustomizations (dev overlays under k8s/dev/) as kustomize builds them."""
    assert set(manifest) <= {"rawYaml", "kustomize"}  # no helm, no kpt
    objects = []
    for pattern in manifest.get("rawYaml", []):
        files = sorted(REPO.glob(pattern))
        assert files and all(REPO / "jobs" in f.parents for f in files), pattern
        objects += _docs(files)
    kustomize = manifest.get("kustomize", {})
    for path in kustomize.get("paths", []):
        assert REPO / "k8s" / "dev" in (REPO / path).parents, path  # never the base, k8s/
        result = subprocess.run(
            [_tool("kubectl"), "kustomize", *kustomize.get("buildArgs", []), str(REPO / path)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        objects += [d for d in yaml.safe_load_all(result.stdout) if d]
    return objects


def _profiles() -> dict[str, dict[str, Any]]:
    """skaffold.yaml as each profile makes it: its fields replacing the top level's, then its
    JSON patches (replace, remove) applied."""
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    made = {}
    for profile in config["profiles"]:
        merged = {k: v for k, v in config.items() if k != "profiles"}
        merged = json.loads(
            json.dumps(
                {**merged, **{k: v for k, v in profile.items() if k not in ("name", "patches")}}
            )
        )
        for patch in profile.get("patches", []):
            *parents, last = patch["path"].strip("/").split("/")
            node: Any = merged
            for key in parents:
                node = node[int(key)] if isinstance(node, list) else node[key]
            key = int(last) if isinstance(node, list) else last
            assert key in node or (isinstance(node, list) and key < len(node)), patch["path"]
            if patch["op"] == "remove":
                del node[key]
            else:
                assert patch["op"] == "replace", patch
                node[key] = patch["value"]
        made[profile["name"]] = merged
    return made


def test_no_skaffold_profile_can_deploy_or_delete_the_cluster_base() -> None:
    # skaffold deletes what it deployed on exit, and `--force` recreates what it applies: its
    # manifests must be study Jobs and their ConfigMaps (and data Jobs), never the base
    base = {(d["kind"], d["metadata"]["name"]) for d in _kustomize("k8s")}
    for name, config in _profiles().items():
        objects = _skaffold_manifests(config["manifests"])
        assert objects and {d["kind"] for d in objects} <= {"Job", "ConfigMap"}, name
        assert not base & {(d["kind"], d["metadata"]["name"]) for d in objects}, name


def test_each_dev_iteration_runs_a_study_of_its_build_and_is_watched_to_its_end() -> None:
    import typer.main

    from finscale.cli import app

    for name, config in _profiles().items():
        objects = _skaffold_manifests(config["manifests"])
        workers = [
            d for d in objects
            if d["kind"] == "Job" and d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
        ]  # fmt: skip
        per_build = [
            any(e["name"] == "FINSCALE_STUDY_PER_BUILD" and e["value"] == "1" for e in c["env"])
            for d in workers
            for c in d["spec"]["template"]["spec"]["containers"]
        ]
        hooks = config["deploy"]["kubectl"].get("hooks", {}).get("after", [])
        if name == "phase6a":  # the experiment itself: its own studies, nothing waits on them
            assert not any(per_build) and not hooks
            continue
        # a dev loop: every worker runs its build's study, and the deploy waits for the Job
        assert per_build and all(per_build), name
        (hook,) = hooks
        script = hook["host"]["command"][2]
        watched = script.split('"${FINSCALE_DEV_WATCH:-')[1].split("}")[0]
        assert [d["metadata"]["name"] for d in workers] == [watched], name
        words = script.replace(f'"${{FINSCALE_DEV_WATCH:-{watched}}}"', watched).split()
        assert words[:2] == ["finscale", "watch"]
        command = typer.main.get_command(app).commands["watch"]
        context = command.make_context("watch", words[2:6], resilient_parsing=False)
        assert context.params["name"] == watched and context.params["progress"] is False


def test_skaffold_builds_the_images_the_manifests_use() -> None:
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    built = {a["image"] for a in config["build"]["artifacts"]}
    for profile in config["profiles"]:
        built |= {a["image"] for a in profile.get("build", {}).get("artifacts", [])}
    used = {
        c["image"].split(":")[0]
        for path in JOB_FILES
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "Job"
        for c in doc["spec"]["template"]["spec"]["containers"]
    }
    assert used <= built


def test_the_github_workflow_matches_githubs_schema_and_runs_what_ci_runs(tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
            capture_output=True, text=True,
        )  # fmt: skip

    result = check(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    for command in ("make lint", "make check-k8s", "make test"):
        assert any(command in run for run in steps), command
    test_job = workflow["jobs"]["test"]
    # PostgreSQL from testcontainers on the runner's Docker, and no skip allowed
    assert "FINSCALE_TEST_DATABASE_URL" not in json.dumps(workflow)
    assert test_job["env"]["FINSCALE_REQUIRE_ALL_TESTS"] == "1"
    images = workflow["jobs"]["images"]
    build = next(
        s for s in images["steps"] if s.get("uses", "").startswith("docker/build-push-action")
    )
    assert build["with"]["push"] is False and "cache-from" in build["with"]
    assert {i["dockerfile"] for i in images["strategy"]["matrix"]["include"]} == {
        "Dockerfile",
        "images/cpu/Dockerfile",
    }
    # the check can fail: a misspelt key is refused
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:", 1))
    assert check(broken).returncode != 0
