"""`finscale submit`, `watch`, `cancel` and `report --kube` against a fake Kubernetes API server
(tests/unit/fake_kube.py) reached by the official client through a generated kubeconfig."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finscale.k8s.remote import OUT_DIR, pack, split_log
from tests.conftest import REPO
from tests.conftest import run_cli as run
from tests.unit.fake_kube import FakeKube, Served, event, job, pod, serve

PHASE6A = REPO / "configs" / "experiments" / "phase6a.yaml"
VALIDATION = REPO / "configs" / "experiments" / "validation.yaml"


@pytest.fixture
def kube(tmp_path: Path, env: pytest.MonkeyPatch) -> Iterator[Served]:
    env.setenv("FINSCALE_STORAGE_URL", f"sqlite:///{tmp_path / 'nothing.db'}")
    env.delenv("KUBECONFIG", raising=False)
    yield from serve(tmp_path)


def _complete(fake: FakeKube, obj: dict[str, Any]) -> None:
    """The data Jobs complete as soon as they are applied (their datasets are there)."""
    if obj["kind"] == "Job" and obj["metadata"]["labels"]["app.kubernetes.io/component"] == "data":
        obj["status"] = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}


def _rendered_order(spec: Path) -> list[tuple[str, str]]:
    from finscale.k8s.cluster import manifests

    return [(m.kind.lower() + "s", m.name) for m in manifests(spec, data_from="download")]


# --- submit ---


def test_submit_applies_the_rendered_objects_data_first_and_again_changes_nothing(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a cluster where the data Job completes at once
    kube.fake.on_apply = _complete
    args = ["submit", str(PHASE6A), "--data-from", "download", "--kubeconfig", str(kube.kubeconfig)]
    # when the spec is submitted
    code, out, err = run(args, capsys)
    # then the data Job, then each study's ConfigMap and Job, were applied server-side
    assert code == 0, err
    applied = kube.fake.applied()
    assert applied[0] == ("jobs", "finscale-data-spy")
    assert applied == _rendered_order(PHASE6A)
    assert len(applied) == 1 + 2 * 12
    assert all(
        r.content_type == "application/apply-patch+yaml" and r.query["fieldManager"] == "finscale"
        for r in kube.fake.requests
        if r.method == "PATCH"
    )
    assert "waiting for finscale-data-spy" in err
    lines = out.splitlines()
    assert lines[0] == "job/finscale-data-spy applied in namespace finscale"
    assert lines[1] == "configmap/phase6a-200m-h1-spec applied in namespace finscale"
    assert len(lines) == len(applied)
    # and submitting again applies the same objects and creates nothing more
    stored = dict(kube.fake.objects)
    code, again, _ = run(args, capsys)
    assert code == 0 and again == out
    assert kube.fake.applied() == applied + applied
    assert kube.fake.objects.keys() == stored.keys()


def test_a_failed_data_job_stops_the_submission_before_any_study(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(fake: FakeKube, obj: dict[str, Any]) -> None:
        if obj["metadata"]["name"] == "finscale-data-spy":
            obj["status"] = job("x", state="Failed", reason="BackoffLimitExceeded")["status"]

    kube.fake.on_apply = fail
    code, out, err = run(
        ["submit", str(PHASE6A), "--data-from", "download", "--kubeconfig", str(kube.kubeconfig)],
        capsys,
    )
    assert code == 1
    assert "job/finscale-data-spy in namespace finscale failed: BackoffLimitExceeded" in err
    assert kube.fake.applied() == [("jobs", "finscale-data-spy")]
    assert out == "job/finscale-data-spy applied in namespace finscale\n"


def test_a_rendered_folder_submits_what_its_spec_does(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.fake.on_apply = _complete
    base = ["--kubeconfig", str(kube.kubeconfig)]
    assert (
        run(["submit", str(PHASE6A), "--data-from", "download", *base, "--evaluate"], capsys)[0]
        == 0
    )
    from_spec = [r.body for r in kube.fake.requests if r.method == "PATCH"]
    kube.fake.requests.clear()
    assert run(["submit", str(REPO / "jobs" / "phase6a"), *base, "--evaluate"], capsys)[0] == 0
    from_folder = [r.body for r in kube.fake.requests if r.method == "PATCH"]
    assert from_folder == from_spec
    # the evaluation last, after every study's Job
    names = [b["metadata"]["name"] for b in from_folder]
    first = min(i for i, n in enumerate(names) if "evaluate" in n)
    assert all("evaluate" in n for n in names[first:])
    assert "phase6a-2m-h1-evaluate" in names[first:]
    assert names.index("phase6a-2m-h5") < first


def test_dry_run_sends_dry_run_all_and_creates_nothing(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        [
            "submit",
            str(PHASE6A),
            "--data-from",
            "download",
            "--dry-run",
            "--kubeconfig",
            str(kube.kubeconfig),
        ],
        capsys,
    )
    assert code == 0, err
    patches = [r for r in kube.fake.requests if r.method == "PATCH"]
    assert len(patches) == 25 and all(r.query.get("dryRun") == "All" for r in patches)
    assert kube.fake.objects == {}
    assert "waiting" not in err  # nothing to wait for
    assert out.splitlines()[0].endswith("(server dry run)")


@pytest.mark.parametrize(
    ("set_up", "extra", "expected"),
    [
        pytest.param(
            lambda f: f.forbidden.add("PATCH jobs"), [],
            ['job/finscale-data-spy in namespace finscale: the Kubernetes API answered 403',
             'User "alice" cannot patch resource "jobs"', "kubectl auth can-i"],
            id="forbidden",
        ),
        pytest.param(
            lambda f: None, ["--namespace", "elsewhere"],
            ['answered 404 namespaces "elsewhere" not found', "apply the base first"],
            id="no-namespace",
        ),
        pytest.param(
            lambda f: f.conflicts.add("finscale-data-spy"), [],
            ["answered 409 Apply failed with 1 conflict", "--force-conflicts takes them over"],
            id="conflict",
        ),
    ],
)  # fmt: skip
def test_a_refusal_names_the_object_and_the_apis_message_and_exits_2(
    kube: Served, capsys: pytest.CaptureFixture[str], set_up: Any, extra: list[str],
    expected: list[str],
) -> None:  # fmt: skip
    set_up(kube.fake)
    args = [
        "submit",
        str(PHASE6A),
        "--data-from",
        "download",
        "--kubeconfig",
        str(kube.kubeconfig),
        *extra,
    ]
    code, out, err = run(args, capsys)
    assert code == 2
    assert out == ""
    for text in expected:
        assert text in " ".join(err.split()), err
    assert "Traceback" not in err


def test_a_folder_rendered_for_another_namespace_is_refused(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["submit", str(REPO / "jobs" / "validation"), "-n", "team-a",
            "--kubeconfig", str(kube.kubeconfig)]  # fmt: skip
    code, _, err = run(args, capsys)
    assert code == 2 and "in namespace finscale, not team-a" in err
    assert kube.fake.requests == []


@pytest.mark.parametrize(
    ("code", "reason", "shown"),
    [
        (4, "Error", "exit 4: device preflight failed"),
        (137, "OOMKilled", "exit 137: killed (SIGKILL, out of memory), OOMKilled"),
        (2, "Error", "exit 2: bad spec or data"),
        (0, "Completed", "exit 0: done"),
        (None, "ImagePullBackOff", "ImagePullBackOff"),
    ],
)
def test_a_pods_last_end_says_what_finscales_exit_code_means(
    code: int | None, reason: str, shown: str
) -> None:
    from finscale.k8s.snapshot import PodView

    assert PodView("p", "j", "Failed", 0, None, code, reason).last == shown


def test_force_conflicts_takes_the_fields_over(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.fake.conflicts.add("finscale-data-spy")
    kube.fake.on_apply = _complete
    args = [
        "submit",
        str(PHASE6A),
        "--data-from",
        "download",
        "--force-conflicts",
        "--kubeconfig",
        str(kube.kubeconfig),
    ]
    assert run(args, capsys)[0] == 0
    assert all(r.query.get("force") == "true" for r in kube.fake.requests if r.method == "PATCH")


def test_a_cluster_that_does_not_answer_exits_3(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "kubeconfig"
    config.write_text(
        f"apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{{name: k, cluster: "
        f"{{server: 'http://127.0.0.1:{port}'}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    code, _, err = run(
        ["submit", str(PHASE6A), "--data-from", "download", "--kubeconfig", str(config)], capsys
    )
    assert code == 3
    assert "job/finscale-data-spy in namespace finscale: the Kubernetes API server did not" in err


def test_a_missing_kubeconfig_or_context_exits_2(
    kube: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["watch", "validation", "--kubeconfig", str(tmp_path / "none")], capsys)
    assert code == 2 and "kubeconfig" in err and "none" in err
    code, _, err = run(
        ["watch", "validation", "--kubeconfig", str(kube.kubeconfig), "--context", "nope"], capsys
    )
    assert code == 2 and "nope" in err


# --- watch ---

STUDY = "validation-50k-h1"


def _study_on_cluster(fake: FakeKube, *, state: str = "Running") -> None:
    j = job(STUDY, study=STUDY, state=state, failed=2 if state == "Failed" else 0,
            reason="BackoffLimitExceeded")  # fmt: skip
    fake.put("jobs", j)
    labels = dict(j["metadata"]["labels"])
    fake.put("pods", pod(f"{STUDY}-0-x7k2p", STUDY, labels=labels))
    fake.put(
        "pods",
        pod(f"{STUDY}-1-b9z4q", STUDY, labels=labels, phase="Failed", exit_code=4,
            node="gke-finscale-gpu-pool-7f3a9c21-x7k2", restarts=1),
    )  # fmt: skip
    fake.put("events", event("Pod", f"{STUDY}-1-b9z4q", "BackOff", "Back-off restarting failed "
                             "container worker in pod " + f"{STUDY}-1-b9z4q " * 3))  # fmt: skip
    fake.put("events", event("Pod", "someone-elses-pod", "FailedMount", "not ours"))


def _storage_with_trials(tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from finscale.records import ATTR_N_TRIALS

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(storage=url, study_name=STUDY)
    study.set_user_attr(ATTR_N_TRIALS, 5)
    x = {"x": FloatDistribution(0, 1)}
    for value, state in ((0.6, TrialState.COMPLETE), (0.5, TrialState.COMPLETE), (None, TrialState.FAIL)):  # fmt: skip
        study.add_trial(create_trial(params={"x": 0.5}, distributions=x, value=value, state=state))
    env.setenv("FINSCALE_STORAGE_URL", url)


def test_watch_once_shows_jobs_pods_events_and_trials_in_80_columns(
    kube: Served, tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a study whose second pod failed its device check, and its trials in the storage
    _study_on_cluster(kube.fake)
    _storage_with_trials(tmp_path, env)
    env.setenv("COLUMNS", "80")
    # when a snapshot of the experiment is taken
    code, out, err = run(["watch", "validation", "--once", "--kubeconfig", str(kube.kubeconfig)],
                         capsys)  # fmt: skip
    # then it shows the Job, its trials of the budget, both pods and the failing one's exit
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "\x1b" not in out
    text = " ".join(out.split())
    assert "finscale.io/experiment=validation" in text
    assert f"{STUDY} │ Running │ 1 run" in text
    assert "3/5" in text  # finished of the budget
    assert f"{STUDY}-1-b9z4q" in text and "exit 4: device preflight failed" in text
    assert "BackOff ×3" in text and "someone-elses-pod" not in text


def test_watch_names_the_storage_when_it_has_no_progress(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    _study_on_cluster(kube.fake)
    code, out, _ = run(["watch", STUDY, "--once", "--kubeconfig", str(kube.kubeconfig)], capsys)
    assert code == 0
    assert f"finscale.io/study={STUDY}" in out
    assert "trials: no studies in sqlite:///" in " ".join(out.split())


def _turns(final: str) -> Any:
    """A cluster whose study Job is Running for two polls, then `final`."""

    def turn(fake: FakeKube, polls: int) -> None:
        if polls == 3:  # the first two find the label, the third is the first snapshot
            fake.put("jobs", job(STUDY, study=STUDY, state=final,
                                 failed=1 if final == "Failed" else 0,
                                 reason="PodFailurePolicy"))  # fmt: skip

    return turn


def test_watch_ends_0_when_every_job_completes(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.fake.put("jobs", job(STUDY, study=STUDY))
    kube.fake.on_list_jobs = _turns("Complete")
    args = ["watch", "validation", "--interval", "0.1", "--no-progress",
            "--kubeconfig", str(kube.kubeconfig)]  # fmt: skip
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert kube.fake.job_lists >= 3
    # written to a file: one snapshot per change, no redrawing
    assert out.count("Jobs") == 2 and "\x1b" not in out
    assert "Complete" in out


def test_watch_ends_1_naming_the_failed_job_and_its_pods_exit(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    _study_on_cluster(kube.fake)
    kube.fake.on_list_jobs = _turns("Failed")
    args = ["watch", "validation", "--interval", "0.1", "--no-progress",
            "--kubeconfig", str(kube.kubeconfig)]  # fmt: skip
    code, _, err = run(args, capsys)
    assert code == 1
    assert f"job/{STUDY} failed: PodFailurePolicy: Job failed" in err
    assert "exit 4: device preflight failed" in err


def test_watch_of_nothing_submitted_exits_2(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["watch", "nothing", "--kubeconfig", str(kube.kubeconfig)], capsys)
    assert code == 2 and "no Jobs labelled finscale.io/study=nothing" in err


# --- cancel ---


def _two_experiments_and_the_base(fake: FakeKube) -> None:
    fake.put("jobs", job(STUDY, study=STUDY))
    fake.put("jobs", job("validation-evaluate"))
    fake.put("configmaps", {"metadata": {"name": f"{STUDY}-spec", "labels":
                                         job(STUDY, study=STUDY)["metadata"]["labels"]}})  # fmt: skip
    fake.put("jobs", job("phase6a-2m-h1", study="phase6a-2m-h1", experiment="phase6a"))
    fake.put("jobs", job("finscale-data-spy", component="data", experiment=None))  # shared
    # labelled by hand as the experiment's, but of a component finscale does not render
    fake.put("jobs", job("finscale-backup-now", component="backup", experiment="validation"))
    fake.put("configmaps", {"metadata": {"name": "finscale-postgres-init"}})


def test_cancel_deletes_only_the_experiments_labelled_jobs(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_experiments_and_the_base(kube.fake)
    args = ["cancel", "validation", "--yes", "--kubeconfig", str(kube.kubeconfig)]
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert out.splitlines() == [
        f"job/{STUDY} deleted from namespace finscale",
        "job/validation-evaluate deleted from namespace finscale",
        f"configmap/{STUDY}-spec deleted from namespace finscale",
    ]
    assert sorted(kube.fake.named("jobs")) == [
        "finscale-backup-now",
        "finscale-data-spy",
        "phase6a-2m-h1",
    ]
    assert kube.fake.named("configmaps") == ["finscale-postgres-init"]
    deletes = [r for r in kube.fake.requests if r.method == "DELETE"]
    assert all(r.query.get("propagationPolicy") == "Foreground" for r in deletes)


def test_cancel_of_a_study_leaves_the_rest_of_its_experiment(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_experiments_and_the_base(kube.fake)
    args = ["cancel", STUDY, "--yes", "--propagation", "Background",
            "--kubeconfig", str(kube.kubeconfig)]  # fmt: skip
    code, _, _ = run(args, capsys)
    assert code == 0
    assert STUDY not in kube.fake.named("jobs") and "validation-evaluate" in kube.fake.named("jobs")
    deletes = [r for r in kube.fake.requests if r.method == "DELETE"]
    assert {r.query.get("propagationPolicy") for r in deletes} == {"Background"}


def test_cancel_without_yes_off_a_terminal_refuses_and_deletes_nothing(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_experiments_and_the_base(kube.fake)
    code, _, err = run(["cancel", "validation", "--kubeconfig", str(kube.kubeconfig)], capsys)
    assert code == 2
    assert f"would delete job/{STUDY}" in err and "--yes" in err
    assert not [r for r in kube.fake.requests if r.method == "DELETE"]
    assert len(kube.fake.named("jobs")) == 5


# --- report and status on the cluster ---


def _reader_pod(log: str, *, state: str = "Complete") -> Any:
    """A cluster where a created Job runs at once: its pod printed `log`."""

    def run_job(fake: FakeKube, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        labels = body["spec"]["template"]["metadata"]["labels"]
        code = 0 if state == "Complete" else 2
        fake.put("pods", pod(f"{name}-abcde", name, labels=labels, phase="Succeeded",
                             exit_code=code, reason="Completed"))  # fmt: skip
        fake.logs[f"{name}-abcde"] = log
        body["status"] = job(name, state=state)["status"]

    return run_job


def test_report_on_the_cluster_comes_back_through_the_pods_log(
    kube: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a pod that writes a report and prints it as an archive after its own lines
    made = tmp_path / "made"
    (made / "plots").mkdir(parents=True)
    (made / "summary.md").write_text("# the answer\n")
    (made / "plots" / "scaling.png").write_bytes(bytes(range(256)) * 40)
    log = f"WARNING a warning\nreport in {OUT_DIR}: summary.md\n" + pack(made)
    kube.fake.on_create_job = _reader_pod(log)
    target = tmp_path / "report"
    # when the report runs on the cluster
    code, out, err = run(["report", "--kube", "--experiment", "validation", "--no-plots",
                          "--out", str(target), "--kubeconfig", str(kube.kubeconfig)],
                         capsys)  # fmt: skip
    # then its files are here, its lines printed with the local folder, and its Job is gone
    assert code == 0, err
    assert (target / "summary.md").read_text() == "# the answer\n"
    assert (target / "plots" / "scaling.png").read_bytes() == bytes(range(256)) * 40
    assert f"report in {target}: summary.md" in out and "2 files from job/" in out
    (created,) = [r.body for r in kube.fake.requests if r.method == "POST"]
    runner = created["spec"]["template"]["spec"]["containers"][0]
    assert runner["image"] == "ghcr.io/finscale/finscale-worker-cpu:0.1.0"
    assert runner["args"] == ["report", "--out", OUT_DIR, "--resamples", "2000", "--seed", "0",
                              "--experiment", "validation", "--no-plots"]  # fmt: skip
    assert created["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    env = {e["name"]: e.get("value") for e in runner["env"]}
    assert env["FINSCALE_STORAGE_URL"] == "postgresql://finscale@finscale-postgres:5432/finscale"
    assert kube.fake.named("jobs") == []


def test_status_on_the_cluster_prints_the_pods_output(
    kube: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.fake.on_create_job = _reader_pod("Studies in postgresql://finscale@…\nvalidation-50k-h1\n")
    code, out, err = run(["status", "--kube", "--kubeconfig", str(kube.kubeconfig)], capsys)
    assert code == 0, err
    assert out.startswith("Studies in postgresql://finscale@") and "job/finscale-status-" in err


def test_a_failed_reader_job_quotes_the_end_of_its_log(
    kube: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.fake.on_create_job = _reader_pod("error: no studies in postgresql://…\n", state="Failed")
    args = ["report", "--kube", "--out", str(tmp_path / "r"), "--kubeconfig", str(kube.kubeconfig)]
    code, _, err = run(args, capsys)
    assert code == 1
    assert "failed: Failed: Job failed" in err and "error: no studies in postgresql" in err
    assert not (tmp_path / "r").exists()


def test_an_archive_never_writes_outside_its_folder(tmp_path: Path) -> None:
    import io
    import tarfile

    from finscale.errors import ClusterError
    from finscale.k8s.remote import unpack

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    _, archive = split_log(pack(tmp_path / "empty"))  # an empty folder packs too
    assert archive is not None and unpack(archive, tmp_path / "out") == []
    with pytest.raises(ClusterError, match="outside"):
        unpack(buffer.getvalue(), tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_an_archive_cut_short_is_said() -> None:
    from finscale.errors import ClusterError

    assert split_log("just lines\n") == ("just lines\n", None)
    with pytest.raises(ClusterError, match=r"cut short.*--no-plots"):
        split_log("-----BEGIN FINSCALE ARCHIVE-----\nAAAA\n")
