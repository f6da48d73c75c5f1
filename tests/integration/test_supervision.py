"""`finscale run` and a pod supervise their workers, on SQLite: killed with SIGKILL they leave no
worker behind (each hands its trial back), a rerun keeps the logs of the run before it, two runs
of one spec never share a log, and a pod names the worker that failed it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from finscale.hpo.storage import open_storage
from finscale.records import superseded
from tests.integration.test_outages import _processes_of

STUDY = "it-30k-h1"
Env = Callable[..., dict[str, str]]


def _trials(url: str) -> list[FrozenTrial]:
    storage = open_storage(
        url, heartbeat_interval_s=1, heartbeat_grace_s=4, max_retries=0, deadline_s=30
    )
    try:
        return optuna.load_study(study_name=STUDY, storage=storage).get_trials()
    except KeyError:  # not created yet
        return []
    finally:
        storage.engine.dispose()


def _wait_for(condition: Callable[[], object], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.3)


def _training(url: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        running = [
            t for t in _trials(url) if t.state == TrialState.RUNNING and t.intermediate_values
        ]
        return len(running) >= count

    return check


def _run(spec: Path, env: dict[str, str], log: Path, workers: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "finscale", "run", str(spec), "--workers", str(workers)]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    replaced = superseded(trials)
    return [t for t in trials if t.state.is_finished() and t.number not in replaced]


@pytest.mark.slow
def test_a_run_killed_with_sigkill_leaves_no_worker_and_a_rerun_keeps_its_logs(
    make_spec: Callable[..., Path], worker_env: Env, tmp_path: Path
) -> None:
    # Given `finscale run` with 2 workers, both mid-training on an SQLite study,
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    spec = make_spec(n_trials=2, training={"epochs": 8}, early_stopping={"patience": 8})
    env = worker_env(url)
    run = _run(spec, env, tmp_path / "run.log", workers=2)
    try:
        _wait_for(_training(url, 2), timeout=240, what="two trials past their first epoch")
        # when it is killed with SIGKILL (it can stop nothing itself),
        run.kill()
        run.wait(timeout=30)
        # then no worker is left: each got SIGTERM and handed its trial back,
        _wait_for(lambda: _processes_of(str(spec)) == [], timeout=120, what="the workers to end")
    finally:
        if run.poll() is None:
            run.kill()
    trials = _trials(url)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    handed_back = [t for t in trials if t.state == TrialState.FAIL]
    assert len(handed_back) == 2
    assert all(
        t.user_attrs["fail_reason"].startswith("interrupted: SIGTERM received") for t in handed_back
    )
    assert len([t for t in trials if t.state == TrialState.WAITING]) == 2
    (first,) = (tmp_path / "runs" / STUDY).iterdir()
    logs = {p.name: p.read_text() for p in first.glob("worker-*.log")}
    assert sorted(logs) == ["worker-0.log", "worker-1.log"]
    for text in logs.values():
        # (the kernel's signal, or the watchdog's when it looked first: "… is gone; stopping")
        assert "SIGTERM received" in text and "Traceback" not in text
    # and a rerun finishes the study, in a log folder of its own, the first run's kept whole.
    again = _run(spec, env, tmp_path / "again.log", workers=2)
    again.wait(timeout=600)
    assert again.returncode == 0, (tmp_path / "again.log").read_text()[-3000:]
    counted = _counted(_trials(url))
    assert [t.state for t in counted] == [TrialState.COMPLETE] * 2
    assert {p.name: p.read_text() for p in first.glob("worker-*.log")} == logs
    assert len(list((tmp_path / "runs" / STUDY).iterdir())) == 2


@pytest.mark.slow
def test_two_runs_of_one_spec_at_once_never_share_a_log(
    make_spec: Callable[..., Path], worker_env: Env, tmp_path: Path
) -> None:
    # Given two `finscale run`s of one spec started together, one worker each,
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    spec = make_spec(n_trials=3)
    env = worker_env(url)
    runs = [_run(spec, env, tmp_path / f"run-{n}.log", workers=1) for n in range(2)]
    for n, run in enumerate(runs):
        run.wait(timeout=600)
        assert run.returncode == 0, (tmp_path / f"run-{n}.log").read_text()[-3000:]
    # the study holds exactly its budget,
    counted = _counted(_trials(url))
    assert len(counted) == 3
    # and each run wrote into a log of its own: every JSON line whole, and of that run.
    folders = sorted((tmp_path / "runs" / STUDY).iterdir())
    assert len(folders) == 2
    for folder in folders:
        (log,) = folder.glob("worker-*.log")
        events = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
        assert events[0]["event"] == "run_start"
        assert events[-1]["event"] == "run_end" and events[-1]["exit"] == 0
        assert {e["run"] for e in events if "run" in e} == {folder.name.removeprefix("run-")}


@pytest.mark.slow
def test_every_line_a_worker_writes_is_json_with_its_time_in_utc(
    make_spec: Callable[..., Path], worker_env: Env, tmp_path: Path
) -> None:
    # Given a machine five hours behind UTC (POSIX TZ: no time zone database needed),
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    spec = make_spec(n_trials=1, training={"epochs": 1})
    env = worker_env(url, TZ="EST+5")
    # when `finscale run` runs a one-trial study with one worker,
    run = _run(spec, env, tmp_path / "run.log", workers=1)
    run.wait(timeout=600)
    assert run.returncode == 0, (tmp_path / "run.log").read_text()[-3000:]
    # then every line of the worker's log is one JSON object with its time: ISO 8601, UTC, to
    # the millisecond,
    (log,) = (tmp_path / "runs" / STUDY).glob("run-*/worker-0.log")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for line in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"]), line
        assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)
    # the events keep their fields, between the run's start and end,
    events = [line for line in lines if "event" in line]
    assert events[0]["event"] == "run_start" and events[-1]["event"] == "run_end"
    ended = next(e for e in events if e["event"] == "trial_end")
    assert (ended["study"], ended["worker"], ended["trial"]) == (STUDY, 0, 0)
    # a completed trial's line names its attributes, not its encoded logits (the storage's)
    assert ended["state"] == "COMPLETE" and "val_bce" in ended["user_attrs"]
    assert "val_logits" not in ended["user_attrs"]
    # the log records are objects too (no line of text is left),
    records = [line for line in lines if "event" not in line]
    assert all({"level", "logger", "message"} <= set(r) for r in records)
    assert any(r["level"] == "INFO" and "joined study" in r["message"] for r in records)
    # and the trial's stored start, a naive time, is UTC (not the machine's local time).
    (trial,) = _trials(url)
    assert trial.datetime_start is not None
    now = datetime.now(UTC).replace(tzinfo=None)
    assert now - timedelta(minutes=15) < trial.datetime_start <= now


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_pod_whose_worker_was_killed_exits_naming_it(
    make_spec: Callable[..., Path], worker_env: Env, tmp_path: Path
) -> None:
    # Given a pod of two worker processes, both mid-training,
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    spec = make_spec(n_trials=2, training={"epochs": 6}, early_stopping={"patience": 6})
    command = [
        sys.executable, "-m", "finscale", "worker", str(spec), "--index", "0",
        "--until", "idle", "--processes", "2",
    ]  # fmt: skip
    pod = subprocess.Popen(
        command, env=worker_env(url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(_training(url, 2), timeout=240, what="two trials past their first epoch")
        # when one of its workers is killed with SIGKILL (as the OOM killer does),
        victim = max(_children(pod.pid))
        argv = Path(f"/proc/{victim}/cmdline").read_bytes().decode().split("\0")
        index = argv[argv.index("--index") + 1]
        subprocess.run(["kill", "-KILL", str(victim)], check=True)
        _, err = pod.communicate(timeout=600)
    finally:
        if pod.poll() is None:
            pod.kill()
    # then the pod exits 128 + 9, its last line naming the worker, its pid and the signal.
    assert pod.returncode == 137, err[-3000:]
    last = json.loads(err.strip().splitlines()[-1])
    assert last["level"] == "ERROR"
    assert re.search(
        rf"pod 0: worker {index} \(process {int(index) + 1} of 2, pid {victim}\) was killed by "
        "SIGKILL; the pod exits 137$",
        last["message"],
    ), last
