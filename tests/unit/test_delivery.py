"""The delivery files, checked offline with the tools a cluster would use: Kubernetes' OpenAPI
schemas (strict), kustomize, hadolint and Skaffold's schema."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent
# Job podFailurePolicy is GA since 1.31, backoffLimitPerIndex since 1.33: the oldest version to
# support, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.33.0", "1.37.0"]
MANIFESTS = sorted(
    str(p)
    for folder in ("k8s", "jobs")
    for p in (REPO / folder).glob("*.yaml")
    if p.name != "kustomization.yaml"
)
DOCKERFILES = [REPO / "Dockerfile", REPO / "images" / "cpu" / "Dockerfile"]


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    assert len(MANIFESTS) >= 20
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, *MANIFESTS],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_catches_a_misspelt_field(tmp_path: Path) -> None:
    job = (
        (REPO / "jobs" / "validation-50k-h1.yaml")
        .read_text()
        .replace("backoffLimitPerIndex", "backoffLimitPerIndx")
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text(job)
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", "-k", "1.33.0", str(broken)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode != 0
    assert "backoffLimitPerIndx" in result.stdout + result.stderr


@pytest.mark.parametrize("folder", ["k8s", "jobs"])
def test_kustomize_builds(folder: str) -> None:
    result = subprocess.run(
        [_tool("kubectl"), "kustomize", str(REPO / folder)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(result.stdout) if d}
    expected = {
        "Namespace",
        "StatefulSet",
        "Service",
        "NetworkPolicy",
        "Deployment",
        "ServiceAccount",
        "PersistentVolumeClaim",
    }
    assert kinds == (expected if folder == "k8s" else {"ConfigMap", "Job"})
    if folder == "k8s":
        assert all(
            d["metadata"].get("namespace", "finscale") == "finscale"
            for d in yaml.safe_load_all(result.stdout)
            if d
        )
        assert "Secret" not in kinds  # the example Secret is never applied


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
    assert config["deploy"]["kubectl"]["flags"]["apply"] == ["--force"]  # a changed Job is replaced
    for path in config["manifests"]["rawYaml"]:
        assert (REPO / path).is_file()
    broken = {**config, "deploy": {"kubectl": {"flagz": {}}}}
    with pytest.raises(jsonschema.ValidationError, match="flagz"):
        jsonschema.validate(broken, schema)


def test_skaffold_builds_the_images_the_manifests_use() -> None:
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    built = {a["image"] for a in config["build"]["artifacts"]}
    for profile in config["profiles"]:
        built |= {a["image"] for a in profile.get("build", {}).get("artifacts", [])}
    used = {
        c["image"].split(":")[0]
        for path in (REPO / "jobs").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "Job"
        for c in doc["spec"]["template"]["spec"]["containers"]
    }
    assert used <= built
