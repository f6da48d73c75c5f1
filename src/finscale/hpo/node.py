"""The node a worker runs on, and its device: checked before the worker joins a study (a
preflight that exits 4), and told apart from the trial when it fails under a running one."""

from __future__ import annotations

import os
import socket

from finscale.errors import DeviceUnusableError, SpecError
from finscale.settings import Settings
from finscale.spec import StudySpec


def device_fault(error: Exception) -> str | None:
    """The device's failure under a running trial, for a person, or None (the trial's own)."""
    from finscale.train.device import device_fault as fault  # torch: the objective loaded it

    return fault(error)


def node_name() -> str:
    """The node this pod runs on (NODE_NAME, from the downward API), else the host's name."""
    return os.environ.get("NODE_NAME") or socket.gethostname()


def check_compile(spec: StudySpec) -> None:
    """`training.compile` where torch.compile cannot build its kernels (no C compiler in the
    image): refused before the worker joins, since every trial would fail the same way.

    Raises:
        SpecError: names the field, the spec and why.
    """
    from finscale.train.device import compile_problem  # torch

    problem = compile_problem()
    if problem is not None:
        raise SpecError(
            f"study {spec.name}: training.compile: true cannot run here: {problem}. Set "
            "training.compile: false, or run an image with a C compiler (e.g. gcc)"
        )


def check_device(spec: StudySpec, settings: Settings) -> None:
    """The preflight of a worker given a GPU (`FINSCALE_DEVICE=cuda`), before it joins the
    study: a pod on a node whose GPU cannot train exits 4 and the Job retries it (perhaps on
    another node) instead of failing trials until the study is spent.

    Raises:
        DeviceUnusableError: the device cannot train; the message names the node and why.
    """
    from finscale.train.device import device_problem, resolve_device  # torch

    problem = device_problem(
        resolve_device(settings.device), bf16=spec.training.precision == "bf16"
    )
    if problem is not None:
        raise DeviceUnusableError(
            f"node {node_name()}: the device cannot train: {problem}. No trial was taken; exit 4 "
            "lets the Job retry this pod, where the scheduler may place it on another node"
        )
