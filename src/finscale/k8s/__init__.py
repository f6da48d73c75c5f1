"""Kubernetes manifests from study specs. Imports no torch, optuna or TA-Lib."""

from finscale.k8s.render import (
    ClusterOptions,
    config_map,
    data_job,
    drift,
    job,
    render,
    render_study,
    to_dict,
    to_yaml,
    write,
)

__all__ = [
    "ClusterOptions",
    "config_map",
    "data_job",
    "drift",
    "job",
    "render",
    "render_study",
    "to_dict",
    "to_yaml",
    "write",
]
