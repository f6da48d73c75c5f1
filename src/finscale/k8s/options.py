"""Where the cluster's pieces are (`ClusterOptions`), and the fixed paths, names and codes the
rendered manifests share with the worker image."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy
from sqlalchemy.engine import make_url

from finscale.errors import SpecError
from finscale.redaction import has_secret, mask_secrets
from finscale.settings import STORAGE_SCHEME
from finscale.tiers import SAMPLE_DATASETS

# Datasets built into the worker images at build time (from the shipped sample).
IMAGE_DATA_DIR = "/opt/finscale/data"
IMAGE_DATASETS = SAMPLE_DATASETS

SPEC_DIR = "/etc/finscale/study"
SECRET_DIR = "/etc/finscale/secrets"
DATA_DIR = "/data"
# Where a data Job sees the raw snapshots shipped in its ConfigMap (`finscale.k8s.shipping`).
SHIPPED_DIR = "/etc/finscale/bars"
UID = 10001  # the worker images' non-root user
CONTAINER = "worker"
EXIT_BAD_INPUT = 2  # finscale's exit code for a bad spec or data: never retried
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# The GPU worker image and its CPU sibling (both built from this repository): pods that only
# handle data run the CPU one, a fraction of the size, on any node.
GPU_IMAGE_NAME = "finscale-worker"
CPU_IMAGE_NAME = "finscale-worker-cpu"
# A registry host (with an optional port) and path: `registry.example.com:5000/team/ml`.
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
PULL_POLICIES = ("IfNotPresent", "Always")


def image_parts(ref: str) -> tuple[str, str]:
    """An image reference split into where it lives and its name with tag or digest:
    `ghcr.io/finscale/finscale-worker:0.1.0` → (`ghcr.io/finscale`, `finscale-worker:0.1.0`)."""
    where, _, name = ref.rpartition("/")
    return where, name


def cpu_sibling(ref: str) -> str:
    """The CPU image of the same build as GPU image `ref` (any other image: itself)."""
    where, name = image_parts(ref)
    base, suffix = re.match(r"^([^:@]+)(.*)$", name).groups()  # type: ignore[union-attr]
    if base != GPU_IMAGE_NAME:
        return ref
    return "/".join(p for p in (where, CPU_IMAGE_NAME + suffix) if p)


@dataclass(frozen=True)
class ClusterOptions:
    """Where the cluster's pieces are: they match the kustomize base in `k8s/`."""

    namespace: str = "finscale"
    storage_url: str = "postgresql://finscale@finscale-postgres:5432/finscale"
    secret_name: str = "finscale-postgres"
    secret_key: str = "pgpass"
    data_claim: str = "finscale-data"
    service_account: str = "finscale-worker"
    heartbeat_interval_s: int = 30
    heartbeat_grace_s: int = 120
    # A study's pods only check that the data is there: waiting for a download would hold a
    # GPU. The runbook applies the data Jobs first and waits for them (`kubectl wait`); the
    # margin covers a volume that attaches slowly, and stays within Kueue's waitForPodsReady
    # (5 minutes by default), which would otherwise evict a pod still in its init container.
    data_wait_s: int = 240
    # The user's registry: replaces where every image lives, keeping its name, tag and digest
    # (`registry.example.com/team` turns `ghcr.io/finscale/finscale-worker:0.1.0` into
    # `registry.example.com/team/finscale-worker:0.1.0`). None: the images as the specs say.
    registry: str | None = None
    # IfNotPresent suits digests and tags pushed once per build (skaffold's); Always makes every
    # node check a tag that moves, so that no two nodes run different builds of one tag.
    pull_policy: str = "IfNotPresent"

    def __post_init__(self) -> None:
        secret = f"{self.secret_name!r} (key {self.secret_key!r})"
        check_storage_url(self.storage_url, secret=secret)
        if self.registry is not None and not _REGISTRY.match(self.registry):
            raise SpecError(
                f"--registry {self.registry!r}: not a registry and path such as "
                "registry.example.com/team (lower case, no scheme, no tag)"
            )
        if self.pull_policy not in PULL_POLICIES:
            raise SpecError(
                f"--pull-policy {self.pull_policy!r}: one of {', '.join(PULL_POLICIES)}"
            )

    def image(self, ref: str) -> str:
        """`ref` where the user's images live (`registry`)."""
        if self.registry is None:
            return ref
        return f"{self.registry}/{image_parts(ref)[1]}"


def check_storage_url(url: str, *, secret: str) -> None:
    """Refuse a storage URL that rendered Jobs cannot use or must not hold: one that does not
    parse, of a backend finscale does not open, or carrying a password in any form (`user:pw@`,
    `?password=`, `sslpassword=`, a connection string's `password=`), which would be written
    in plain text into the manifests.

    Raises:
        SpecError: names the option and the URL (its password masked).
    """
    shown = mask_secrets(url)
    shown = repr(shown if len(shown) <= 200 else f"{shown[:200]}…")
    if has_secret(url):
        raise SpecError(
            f"--storage-url {shown}: the storage URL of rendered Jobs must not carry a "
            f"password: the workers read it from the Secret {secret} through PGPASSFILE. Put "
            "it there and leave it out of the URL (as user:PASSWORD@ or as a password or "
            "sslpassword parameter), which the manifests would hold in plain text"
        )
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        parsed = None
    if parsed is None or not STORAGE_SCHEME.match(url):
        raise SpecError(
            f"--storage-url {shown}: not a storage URL finscale opens; expected "
            "postgresql://USER@HOST:PORT/DATABASE (or sqlite:///PATH)"
        )
