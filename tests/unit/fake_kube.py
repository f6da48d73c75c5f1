"""A fake Kubernetes API server in a thread, speaking enough of the REST API for the official
client: server-side apply (PATCH application/apply-patch+yaml) of ConfigMaps and Jobs, POST
of Jobs, GET of one Job and of lists by label (Jobs, pods, ConfigMaps) or field (Warning
events), a pod's log, DELETE, and refusals as `Status` bodies (403, 404, 409). Every request
is recorded. The cluster is what cannot run here, so it alone is faked."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

_PATH = re.compile(
    r"^/(?:api/v1|apis/batch/v1)/namespaces/(?P<ns>[^/]+)/(?P<kind>jobs|pods|configmaps|events)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>status|log))?$"
)
NOW = "2026-12-03T21:00:00Z"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any


@dataclass
class FakeKube:
    """The server's state: objects by (kind, namespace, name), and how it misbehaves."""

    namespaces: set[str] = field(default_factory=lambda: {"finscale"})
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # pod name → log
    requests: list[Request] = field(default_factory=list)
    forbidden: set[str] = field(default_factory=set)  # "PATCH jobs", "DELETE jobs", …
    conflicts: set[str] = field(default_factory=set)  # names whose apply conflicts unless forced
    # Called on each GET of a list of Jobs (a test changes their status between polls).
    on_list_jobs: Callable[[FakeKube, int], None] | None = None
    on_create_job: Callable[[FakeKube, dict[str, Any]], None] | None = None
    on_apply: Callable[[FakeKube, dict[str, Any]], None] | None = None
    job_lists: int = 0
    version: int = 0

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "finscale")
        meta.setdefault("creationTimestamp", NOW)
        self.version += 1
        meta["resourceVersion"] = str(self.version)
        self.objects[(kind, meta["namespace"], meta["name"])] = obj

    def named(self, kind: str, namespace: str = "finscale") -> list[str]:
        return [n for (k, ns, n) in self.objects if k == kind and ns == namespace]

    def applied(self) -> list[tuple[str, str]]:
        """(kind, name) of every apply request, in order."""
        return [
            (r.path.split("/")[-2], r.path.split("/")[-1])
            for r in self.requests
            if r.method == "PATCH"
        ]


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip


def _matches(obj: dict[str, Any], label_selector: str | None) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (label_selector or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKube

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = yaml.safe_load(raw) if raw else None
        content_type = self.headers.get("Content-Type", "")
        fake = self.fake
        fake.requests.append(Request(self.command, url.path, query, content_type, body))
        match = _PATH.match(url.path)
        if match is None:
            self._send(404, _status(404, "NotFound", f"the server could not find {url.path}"))
            return
        ns, kind, name, sub = match["ns"], match["kind"], match["name"], match["sub"]
        if f"{self.command} {kind}" in fake.forbidden:
            verb = {"PATCH": "patch", "GET": "list", "DELETE": "delete", "POST": "create"}
            message = (f'{kind} "{name or ""}" is forbidden: User "alice" cannot '
                       f'{verb[self.command]} resource "{kind}" in API group "" in the '
                       f'namespace "{ns}"')  # fmt: skip
            self._send(403, _status(403, "Forbidden", message))
            return
        if ns not in fake.namespaces:
            self._send(404, _status(404, "NotFound", f'namespaces "{ns}" not found'))
            return
        getattr(self, f"_{self.command.lower()}")(query, content_type, body, ns, kind, name, sub)

    do_GET = do_PATCH = do_POST = do_DELETE = _handle  # noqa: N815

    def _get(self, query: dict[str, str], _ct: str, _b: Any, ns: str, kind: str,
             name: str | None, sub: str | None) -> None:  # fmt: skip
        fake = self.fake
        if name is None:
            if kind == "jobs":
                if fake.on_list_jobs is not None:
                    fake.on_list_jobs(fake, fake.job_lists)
                fake.job_lists += 1
            items = [o for (k, n, _), o in fake.objects.items() if k == kind and n == ns]
            items = [o for o in items if _matches(o, query.get("labelSelector"))]
            if query.get("fieldSelector") == "type=Warning":
                items = [o for o in items if o.get("type") == "Warning"]
            self._send(200, {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
            return
        obj = fake.objects.get((kind, ns, name))
        if obj is None:
            self._send(404, _status(404, "NotFound", f'{kind} "{name}" not found'))
        elif sub == "log":
            self._send(200, fake.logs.get(name, ""), "text/plain")
        else:
            self._send(200, obj)

    def _patch(self, query: dict[str, str], content_type: str, body: Any, ns: str, kind: str,
               name: str | None, _sub: str | None) -> None:  # fmt: skip
        fake = self.fake
        if content_type != "application/apply-patch+yaml" or not query.get("fieldManager"):
            self._send(415, _status(415, "UnsupportedMediaType", f"not an apply: {content_type}"))
            return
        if name in fake.conflicts and query.get("force") != "true":
            message = ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                       'using batch/v1: .spec.parallelism')  # fmt: skip
            self._send(409, _status(409, "Conflict", message))
            return
        existed = (kind, ns, name) in fake.objects
        obj = json.loads(json.dumps(body))
        if query.get("dryRun") != "All":
            fake.put(kind, obj)
            if fake.on_apply is not None:
                fake.on_apply(fake, obj)
        self._send(200 if existed else 201, obj)

    def _post(self, query: dict[str, str], _ct: str, body: Any, ns: str, kind: str,
              _name: str | None, _sub: str | None) -> None:  # fmt: skip
        fake = self.fake
        if (kind, ns, body["metadata"]["name"]) in fake.objects:
            self._send(409, _status(409, "AlreadyExists", "already exists"))
            return
        fake.put(kind, body)
        if kind == "jobs" and fake.on_create_job is not None:
            fake.on_create_job(fake, body)
        self._send(201, body)

    def _delete(self, query: dict[str, str], _ct: str, _b: Any, ns: str, kind: str,
                name: str | None, _sub: str | None) -> None:  # fmt: skip
        fake = self.fake
        if (kind, ns, name) not in fake.objects:
            self._send(404, _status(404, "NotFound", f'{kind} "{name}" not found'))
            return
        if query.get("dryRun") != "All":
            del fake.objects[(kind, ns, name)]
        self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Success", "details": {"name": name, "kind": kind}})  # fmt: skip


@dataclass
class Served:
    fake: FakeKube
    kubeconfig: Path
    url: str


def serve(tmp_path: Path, fake: FakeKube | None = None) -> Iterator[Served]:
    """The fake server on a free port, and a kubeconfig that points the client at it."""
    fake = fake or FakeKube()
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "alice", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "alice"}}],
        "current-context": "fake",
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    try:
        yield Served(fake, kubeconfig, url)
    finally:
        server.shutdown()
        server.server_close()


# --- objects a test puts on the fake cluster ---


def job(name: str, *, state: str = "Running", study: str | None = None,
        experiment: str | None = "validation", component: str = "worker",
        failed: int = 0, reason: str = "") -> dict[str, Any]:  # fmt: skip
    """A Job as the API returns it, labelled as the renderer labels it."""
    labels = {
        "app.kubernetes.io/name": "finscale",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "finscale",
        "app.kubernetes.io/instance": name,
    }
    if experiment:
        labels["finscale.io/experiment"] = experiment
    if study:
        labels["finscale.io/study"] = study
    status: dict[str, Any] = {"active": 1 if state == "Running" else 0, "failed": failed}
    if state in ("Complete", "Failed"):
        status["conditions"] = [{"type": state, "status": "True", "reason": reason or state,
                                 "message": f"Job {state.lower()}"}]  # fmt: skip
        status["succeeded"] = 1 if state == "Complete" else 0
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "finscale", "labels": labels},
        "spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "w"}]}}},
        "status": status,
    }


def pod(name: str, job_name: str, *, labels: dict[str, str], phase: str = "Running",
        exit_code: int | None = None, reason: str = "Error", node: str = "gpu-node-1",
        restarts: int = 0) -> dict[str, Any]:  # fmt: skip
    """A pod of a Job; `exit_code`: its worker ended with it."""
    state: dict[str, Any] = {"running": {"startedAt": NOW}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "reason": reason, "finishedAt": NOW}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "finscale",
            "creationTimestamp": NOW,
            "labels": {**labels, "batch.kubernetes.io/job-name": job_name},
        },
        "spec": {"nodeName": node, "containers": [{"name": "worker", "image": "w"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "worker",
                    "image": "w",
                    "imageID": "",
                    "ready": phase == "Running",
                    "restartCount": restarts,
                    "state": state,
                }
            ],
        },
    }


def event(obj_kind: str, obj_name: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{obj_name}.{reason.lower()}", "namespace": "finscale"},
        "involvedObject": {"kind": obj_kind, "name": obj_name, "namespace": "finscale"},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": 3,
        "lastTimestamp": NOW,
    }
