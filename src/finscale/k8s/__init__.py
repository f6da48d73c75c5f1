"""Kubernetes manifests from study specs (`render`), and the cluster they run on: `cluster`
(connect, submit with server-side apply, cancel by label), `snapshot` (what `watch` shows) and
`remote` (a storage reader run as a Job, its output read from its pod's log). Imports no torch,
optuna or TA-Lib."""

from finscale.k8s.render import ClusterOptions, drift, render, write

__all__ = ["ClusterOptions", "drift", "render", "write"]
