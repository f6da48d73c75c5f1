"""Kubernetes manifests from study specs. Imports no torch, optuna or TA-Lib."""

from finscale.k8s.render import ClusterOptions, drift, render, write

__all__ = ["ClusterOptions", "drift", "render", "write"]
