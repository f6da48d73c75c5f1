"""The example Kueue objects (`k8s/kueue/`), checked offline: kustomize builds them, each matches
a schema of Kueue's v1beta2 API written after its CRDs (`tests/schemas/kueue-v1beta2.json`),
the rules Kueue checks beyond that schema hold, and with them Kueue would admit every committed
Job onto the nodes it needs."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from finscale.quantity import parse_quantity
from tests.conftest import REPO
from tests.runbook import RUNBOOK

KUEUE = REPO / "k8s" / "kueue"
SCHEMA = json.loads((REPO / "tests" / "schemas" / "kueue-v1beta2.json").read_text())
JOB_FILES = sorted(p for p in (REPO / "jobs").rglob("*.yaml") if p.name != "kustomization.yaml")
NAMESPACE = "finscale"


def _kubectl() -> str:
    path = Path(sys.executable).parent / "kubectl"
    return str(path) if path.exists() else (shutil.which("kubectl") or "kubectl")


def _objects() -> dict[str, list[dict[str, Any]]]:
    """The folder as `kubectl apply -k k8s/kueue/` would send it, by kind."""
    result = subprocess.run(
        [_kubectl(), "kustomize", str(KUEUE)], capture_output=True, text=True
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in yaml.safe_load_all(result.stdout):
        by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def _validate(doc: dict[str, Any]) -> None:
    schema = {"$ref": f"#/$defs/{doc['kind']}", "$defs": SCHEMA["$defs"]}
    jsonschema.Draft202012Validator(schema).validate(doc)


def test_the_examples_build_and_match_kueues_schema() -> None:
    objects = _objects()
    assert {kind: len(docs) for kind, docs in objects.items()} == {
        "ResourceFlavor": 2,
        "ClusterQueue": 1,
        "LocalQueue": 1,
    }
    for docs in objects.values():
        for doc in docs:
            _validate(doc)
    # the cluster base does not include them: Kueue is optional
    base = yaml.safe_load((REPO / "k8s" / "kustomization.yaml").read_text())["resources"]
    assert not [r for r in base if r.startswith("kueue")]


QUOTA = ("spec", "resourceGroups", 0, "flavors", 0, "resources", 0)


@pytest.mark.parametrize(
    ("kind", "path", "value", "error"),
    [
        ("ClusterQueue", (*QUOTA, "nominalQuta"), 1, "nominalQuta"),
        ("ClusterQueue", (*QUOTA, "nominalQuota"), "lots", "lots"),
        ("ClusterQueue", ("spec", "queueingStrategy"), "FIFO", "FIFO"),
        # a cluster-scoped object with a namespace: what a kustomize `namespace:` would add
        ("ResourceFlavor", ("metadata", "namespace"), "finscale", "namespace"),
        ("ResourceFlavor", ("apiVersion",), "kueue.x-k8s.io/v1beta1", "v1beta1"),
        ("LocalQueue", ("spec", "clusterQueue"), "Finscale", "Finscale"),
    ],
)
def test_the_schema_refuses_mistakes(
    kind: str, path: tuple[str | int, ...], value: Any, error: str
) -> None:
    doc = copy.deepcopy(_objects()[kind][0])
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError, match=error):
        _validate(doc)


def test_the_objects_hold_the_rules_kueue_checks_beyond_the_schema() -> None:
    objects = _objects()
    flavors = {f["metadata"]["name"] for f in objects["ResourceFlavor"]}
    (queue,) = objects["ClusterQueue"]
    for group in queue["spec"]["resourceGroups"]:
        for flavor in group["flavors"]:
            assert flavor["name"] in flavors  # else the ClusterQueue stays inactive
            # every flavor lists the group's resources, in the group's order
            assert [r["name"] for r in flavor["resources"]] == group["coveredResources"]
            if "cohortName" not in queue["spec"]:
                assert not [r for r in flavor["resources"] if "borrowingLimit" in r]
    # the studies' namespace may use it, through the LocalQueue that lives there
    selector = queue["spec"]["namespaceSelector"]
    assert selector == {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    (local,) = objects["LocalQueue"]
    assert local["metadata"]["namespace"] == NAMESPACE
    assert local["spec"]["clusterQueue"] == queue["metadata"]["name"]
    # the runbook tells specs to name it
    assert f"resources.queue: {local['metadata']['name']}" in RUNBOOK.read_text()


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    """Kubernetes' rule: a toleration matches the taint's key (an empty key with Exists matches
    all), its effect (an empty effect matches all) and, unless Exists, its value."""
    return any(
        (t.get("key") == taint["key"] or (not t.get("key") and t.get("operator") == "Exists"))
        and t.get("effect") in (None, taint["effect"])
        and (t.get("operator") == "Exists" or t.get("value", "") == taint.get("value", ""))
        for t in tolerations
    )


def _job_requests(job: dict[str, Any]) -> dict[str, Decimal]:
    """What Kueue reserves for a Job: every pod at once, each asking the larger of its
    containers' sum and its largest init container."""
    pod = job["spec"]["template"]["spec"]
    totals: dict[str, Decimal] = {}
    for container in pod["containers"]:
        for name, value in container["resources"].get("requests", {}).items():
            totals[name] = totals.get(name, Decimal(0)) + parse_quantity(str(value))
    for container in pod.get("initContainers", []):
        for name, value in container["resources"].get("requests", {}).items():
            totals[name] = max(totals.get(name, Decimal(0)), parse_quantity(str(value)))
    pods = job["spec"].get("parallelism", 1)
    return {name: value * pods for name, value in totals.items()}


def _assigned_flavor(job: dict[str, Any], objects: dict[str, list[dict[str, Any]]]) -> str | None:
    """Kueue's flavor assignment for a Job of one pod template, without borrowing or
    preemption: the first flavor of the group whose taints its pods tolerate, whose labels agree
    with their nodeSelector and whose quota holds the whole Job."""
    specs = {f["metadata"]["name"]: f.get("spec", {}) for f in objects["ResourceFlavor"]}
    pod = job["spec"]["template"]["spec"]
    selector, tolerations = pod.get("nodeSelector", {}), pod.get("tolerations", [])
    requests = _job_requests(job)
    (group,) = objects["ClusterQueue"][0]["spec"]["resourceGroups"]
    assert set(requests) <= set(group["coveredResources"])  # else never admitted
    for flavor in group["flavors"]:
        spec = specs[flavor["name"]]
        if not all(_tolerates(tolerations, t) for t in spec.get("nodeTaints", [])):
            continue
        labels = spec.get("nodeLabels", {})
        if any(selector[k] != v for k, v in labels.items() if k in selector):
            continue
        quota = {r["name"]: parse_quantity(str(r["nominalQuota"])) for r in flavor["resources"]}
        if all(value <= quota[name] for name, value in requests.items()):
            return str(flavor["name"])
    return None


def test_every_committed_job_would_be_admitted_onto_the_nodes_it_needs() -> None:
    objects = _objects()
    jobs = [
        d
        for path in JOB_FILES
        for d in yaml.safe_load_all(path.read_text())
        if d and d["kind"] == "Job"
    ]
    assert jobs
    for job in jobs:
        gpus = _job_requests(job).get("nvidia.com/gpu", Decimal(0))
        expected = "finscale-gpu" if gpus else "finscale-cpu"
        assert _assigned_flavor(job, objects) == expected, job["metadata"]["name"]
    # a GPU Job whose pods do not tolerate the GPU nodes' taint is held back, not misplaced
    gpu_job = copy.deepcopy(next(j for j in jobs if "nvidia.com/gpu" in _job_requests(j)))
    gpu_job["spec"]["template"]["spec"].pop("tolerations")
    assert _assigned_flavor(gpu_job, objects) is None
