"""Manifests that live in the runbook (docs/kubernetes.md) rather than in a folder anyone applies."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.conftest import REPO

RUNBOOK = REPO / "docs" / "kubernetes.md"


def restore_job() -> dict[str, Any]:
    """The restore Job the runbook documents (the one YAML block that defines it; the others
    are manifests or parts of a spec)."""
    blocks = re.findall(r"```yaml\n(.*?)```", RUNBOOK.read_text(), re.DOTALL)
    (job,) = [
        d
        for block in blocks
        for d in yaml.safe_load_all(block)
        if d and d.get("kind") == "Job" and d["metadata"]["name"] == "finscale-postgres-restore"
    ]
    return job
