"""What each worker pod asks of the cluster."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from finscale import defaults
from finscale.quantity import parse_quantity
from finscale.spec.base import SpecModel


class Toleration(SpecModel):
    """A Kubernetes toleration."""

    key: str = Field(description="Taint key.")
    operator: Literal["Equal", "Exists"] = Field(default="Exists", description="Match rule.")
    value: str | None = Field(default=None, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect (all when unset)."
    )


def _positive_quantity(text: str) -> str:
    try:
        value = parse_quantity(text)
    except ValueError as e:
        raise ValueError(str(e)) from None
    if value <= 0:
        raise ValueError(f"{text!r} must be positive")
    return text


Quantity = Annotated[str, AfterValidator(_positive_quantity)]

# The name of a cluster object such as a RuntimeClass: a DNS-1123 subdomain.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _object_name(text: str) -> str:
    if len(text) > 253 or not _DNS_SUBDOMAIN.match(text):
        raise ValueError(
            f"{text!r} is not a Kubernetes object name (a DNS-1123 subdomain: at most 253 "
            "lower-case letters, digits, '-' and '.')"
        )
    return text


ObjectName = Annotated[str, AfterValidator(_object_name)]

# The longest a Job may run or stay after it finished.
_YEAR_S = 365 * 86400


class ResourcesSpec(SpecModel):
    """What each worker pod asks of the cluster (Kubernetes quantities stay strings)."""

    image: str = Field(
        default="ghcr.io/finscale/finscale-worker:0.1.0",
        description="Worker image, by tag or digest.",
        pattern=r"^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$",
    )
    cpu_request: Quantity = Field(default="4", description="CPU request.")
    cpu_limit: Quantity | None = Field(default=None, description="CPU limit.")
    memory_request: Quantity = Field(default="16Gi", description="Memory request.")
    memory_limit: Quantity = Field(default="16Gi", description="Memory limit.")
    gpus: int = Field(
        default=1, ge=0, le=64, description="nvidia.com/gpu per pod (0 for CPU workers)."
    )
    shm_size: Quantity = Field(default="2Gi", description="/dev/shm size.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints tolerated.")
    priority_class: str | None = Field(default=None, description="PriorityClass name.")
    runtime_class: ObjectName | None = Field(
        default=None,
        description="RuntimeClass of the pods (e.g. nvidia, where the NVIDIA runtime is not "
        "the nodes' default).",
    )
    active_deadline_s: int | None = Field(
        default=None, ge=1, le=_YEAR_S, description="Job time limit."
    )
    evaluation_deadline_s: int = Field(
        default=172800,
        ge=60,
        le=_YEAR_S,
        description="Time limit of the study's final evaluation Job (its top-k trials "
        "retrained with several seeds): a stuck evaluation does not hold its node for ever.",
    )
    ttl_after_finished_s: int | None = Field(
        default=86400, ge=0, le=_YEAR_S, description="Job clean-up delay."
    )
    backoff_limit_per_index: int = Field(
        default=3,
        ge=0,
        le=1000,
        description="Retries of failed pods, per worker: the Job allows this times `workers` "
        "failed pods in all.",
    )
    storage_deadline_s: int = Field(
        default=300,
        ge=1,
        le=86400,
        description="How long the pods retry a storage call before exit 3 (their "
        "FINSCALE_STORAGE_DEADLINE_S): more than a PostgreSQL restart or failover takes.",
    )
    trials_per_pod: int = Field(
        default=1,
        ge=1,
        le=defaults.MAX_PROCESSES,
        description="Worker processes per pod sharing its device: each plans its memory within "
        "its share of the device (and the pod's CPUs are divided among them).",
    )
    queue: str | None = Field(
        default=None,
        max_length=63,  # a label value
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Kueue LocalQueue of the Jobs: labels them kueue.x-k8s.io/queue-name and "
        "creates them suspended, for Kueue to admit.",
    )

    @model_validator(mode="after")
    def _request_within_limit(self) -> ResourcesSpec:
        if parse_quantity(self.memory_request) > parse_quantity(self.memory_limit):
            raise ValueError(
                f"memory_request ({self.memory_request}) exceeds memory_limit ({self.memory_limit})"
            )
        if self.cpu_limit is not None and parse_quantity(self.cpu_request) > parse_quantity(
            self.cpu_limit
        ):
            raise ValueError(
                f"cpu_request ({self.cpu_request}) exceeds cpu_limit ({self.cpu_limit})"
            )
        return self


# --- a study, and an experiment of studies ---
