"""Storage outages under running studies, produced on a PostgreSQL server of the test's own
(`private_postgres`: stopped and started with pg_ctl, fast shutdown, which cuts every open
connection as a pod restart does): no trial is lost, nothing stays RUNNING, no worker is
orphaned, and what the storage cannot ride out ends in a hand-back and exit 3."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from finscale.hpo.storage import open_storage
from finscale.hpo.trial_budget import STALE_REASON
from finscale.records import SYSTEM_REQUEUED_FROM, superseded
from tests.integration.conftest import PrivatePostgres, start_worker

STUDY = "it-30k-h1"
Env = Callable[..., dict[str, str]]

# Heartbeats every second, a grace period shorter than most outages below (so that only the
# steady-storage rule keeps peers from failing live trials), a deadline longer than them.
RIDE_OUT = {
    "FINSCALE_HEARTBEAT_INTERVAL_S": "1",
    "FINSCALE_HEARTBEAT_GRACE_S": "4",
    "FINSCALE_STORAGE_DEADLINE_S": "60",
}


def _trials(url: str) -> list[FrozenTrial]:
    storage = open_storage(
        url, heartbeat_interval_s=1, heartbeat_grace_s=4, max_retries=0, deadline_s=5
    )
    try:
        return optuna.load_study(study_name=STUDY, storage=storage).get_trials()
    except KeyError:  # not created yet
        return []
    finally:
        storage.engine.dispose()


def _wait_for(condition: Callable[[], object], *, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _training(url: str, count: int) -> Callable[[], bool]:
    """Whether `count` trials are running and past their first epoch."""

    def check() -> bool:
        running = [
            t for t in _trials(url) if t.state == TrialState.RUNNING and t.intermediate_values
        ]
        return len(running) >= count

    return check


def _processes_of(marker: str) -> list[str]:
    """Command lines of the live processes that mention `marker` (the spec's path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if marker in command and state != "Z":
            found.append(f"{entry.name}: {command}")
    return found


def _start_run(spec: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "finscale", "run", str(spec), "--workers", "2"]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _logs(runs: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(runs.rglob("worker-*.log")))


def _outage(server: PrivatePostgres, kind: str) -> None:
    if kind == "restart":
        server.restart()
        return
    seconds = float(kind.removesuffix("s"))
    server.stop()
    time.sleep(seconds)
    server.start()


# One outage of each kind: a restart, a stop shorter than the grace period, one longer (a 30 s
# stop rode out the same way as the 8 s one and took as long again).
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["restart", "2s", "8s"])
def test_an_outage_within_the_deadline_loses_no_trial(
    kind: str,
    private_postgres: PrivatePostgres,
    make_spec: Callable[..., Path],
    worker_env: Env,
    tmp_path: Path,
) -> None:
    # Given a study of 4 trials run by `finscale run` with 2 workers, both mid-training,
    url = private_postgres.url
    spec = make_spec(n_trials=4, training={"epochs": 15}, early_stopping={"patience": 15})
    env = worker_env(url, **RIDE_OUT)
    run = _start_run(spec, env, tmp_path / "run.log")
    try:
        _wait_for(_training(url, 2), timeout=180, what="two trials past their first epoch")
        # when the database restarts, or stops for a while,
        _outage(private_postgres, kind)
        run.wait(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    # then the study ends as if nothing happened: exactly n_trials COMPLETE, no FAIL, nothing
    # RUNNING or WAITING, and no process left behind.
    text = (tmp_path / "run.log").read_text(errors="replace")
    logs = _logs(tmp_path / "runs")
    assert run.returncode == 0, text[-3000:] + logs[-5000:]
    trials = _trials(url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4, [
        (t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in trials
    ]
    assert _processes_of(str(spec)) == []
    assert "Traceback" not in logs
    if kind != "restart":  # the outage was felt: storage calls failed and were retried
        assert re.search(r"(heartbeat of trial id \d+ failed|failed \(.*\); try \d)", logs)


@pytest.mark.slow
def test_an_outage_past_the_deadline_exits_3_and_a_rerun_finishes_the_study(
    private_postgres: PrivatePostgres,
    make_spec: Callable[..., Path],
    worker_env: Env,
    tmp_path: Path,
) -> None:
    # Given `finscale run` with 2 workers mid-training and a 4 s storage deadline,
    url = private_postgres.url
    spec = make_spec(n_trials=4, training={"epochs": 15}, early_stopping={"patience": 15})
    env = worker_env(url, **{**RIDE_OUT, "FINSCALE_STORAGE_DEADLINE_S": "4"})
    run = _start_run(spec, env, tmp_path / "run.log")
    try:
        _wait_for(_training(url, 2), timeout=180, what="two trials past their first epoch")
        running = {t.number: t.params for t in _trials(url) if t.state == TrialState.RUNNING}
        # when the database stays down for longer than the deadline (and the hand-back's),
        private_postgres.stop()
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    # then the workers give up with exit 3, `finscale run` with them, and none is left behind;
    text = (tmp_path / "run.log").read_text(errors="replace")
    assert run.returncode == 3, text[-3000:]
    assert "exited with code 3" in text and "unreachable" in text
    assert "Traceback" not in _logs(tmp_path / "runs")
    assert _processes_of(str(spec)) == []
    # and once the database is back, running the study again finishes it: the abandoned
    # trials are failed as stale, with a reason, and rerun with the same parameters.
    private_postgres.start()
    again = _start_run(spec, env, tmp_path / "again.log")
    again.wait(timeout=600)
    assert again.returncode == 0, (tmp_path / "again.log").read_text()[-3000:]
    trials = _trials(url)
    replaced = superseded(trials)
    counted = [t for t in trials if t.state.is_finished() and t.number not in replaced]
    assert [t.state for t in counted] == [TrialState.COMPLETE] * 4
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for number, params in running.items():
        failed = trials[number]
        assert failed.state == TrialState.FAIL
        assert failed.user_attrs["fail_reason"].startswith(STALE_REASON)
        (rerun,) = [t for t in trials if number in t.system_attrs.get("retry_history", [])]
        assert rerun.params == params and rerun.state == TrialState.COMPLETE


@pytest.mark.slow
def test_a_trial_whose_storage_calls_run_out_of_time_is_handed_back(
    private_postgres: PrivatePostgres,
    make_spec: Callable[..., Path],
    worker_env: Env,
    tmp_path: Path,
) -> None:
    # Given one worker mid-training with a 6 s storage deadline,
    url = private_postgres.url
    spec = make_spec(n_trials=1, training={"epochs": 40}, early_stopping={"patience": 40})
    env = worker_env(url, **{**RIDE_OUT, "FINSCALE_STORAGE_DEADLINE_S": "6"})
    log = tmp_path / "worker.log"
    worker = start_worker(spec, env, log=log)
    try:
        _wait_for(_training(url, 1), timeout=180, what="a trial past its first epoch")
        (running,) = [t for t in _trials(url) if t.state == TrialState.RUNNING]
        # when the database stops and a storage call of the trial keeps failing past the
        # deadline, then comes back while the worker is handing the trial back,
        private_postgres.stop()
        _wait_for(
            lambda: re.search(r"trial \d+: .* failed \(.*\); try 1,", log.read_text()),
            timeout=60,
            what="the trial's first failed storage call",
        )
        time.sleep(6 + 2)
        private_postgres.start()
        worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    # then the worker exits 3, having handed the trial back exactly as on SIGTERM:
    text = log.read_text(errors="replace")
    assert worker.returncode == 3, text[-3000:]
    assert "Traceback" not in text
    assert re.search(r"unreachable: trial \d+: .* failed for \d+s", text)
    trials = _trials(url)
    original = trials[running.number]
    assert original.state == TrialState.FAIL
    assert original.user_attrs["fail_reason"].startswith("storage unavailable: ")
    (copy,) = [t for t in trials if t.system_attrs.get(SYSTEM_REQUEUED_FROM) == running.number]
    assert copy.state == TrialState.WAITING and copy.params == running.params
    # and a restarted worker completes the study with it.
    again = start_worker(spec, env, log=tmp_path / "again.log")
    again.wait(timeout=300)
    assert again.returncode == 0, (tmp_path / "again.log").read_text()[-3000:]
    assert _trials(url)[copy.number].state == TrialState.COMPLETE


@pytest.mark.slow
def test_a_trial_a_peer_took_over_is_left_not_crashed_on(
    postgres_url: str, make_spec: Callable[..., Path], worker_env: Env, tmp_path: Path
) -> None:
    # Given two workers, the first mid-training,
    spec = make_spec(n_trials=2, training={"epochs": 20}, early_stopping={"patience": 20})
    env = worker_env(
        postgres_url, FINSCALE_HEARTBEAT_INTERVAL_S="1", FINSCALE_HEARTBEAT_GRACE_S="2"
    )
    owner = start_worker(spec, env, index=0, log=tmp_path / "owner.log")
    _wait_for(_training(postgres_url, 1), timeout=180, what="a trial past its first epoch")
    (taken,) = [t for t in _trials(postgres_url) if t.state == TrialState.RUNNING]
    peer = start_worker(spec, env, index=1, log=tmp_path / "peer.log")
    try:
        # when the owner is paused past the grace period (its heartbeats stop), so that the
        # peer fails its trial as stale and reruns it, then resumed,
        owner.send_signal(signal.SIGSTOP)
        _wait_for(
            lambda: _trials(postgres_url)[taken.number].state == TrialState.FAIL,
            timeout=180,
            what="the peer failing the paused trial",
        )
        owner.send_signal(signal.SIGCONT)
        owner.wait(timeout=300)
        peer.wait(timeout=300)
    finally:
        for p in (owner, peer):
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
    # then the owner notices, leaves the trial to its rerun and goes on: both exit 0.
    text = (tmp_path / "owner.log").read_text(errors="replace")
    assert owner.returncode == 0, text[-3000:]
    assert peer.returncode == 0, (tmp_path / "peer.log").read_text()[-3000:]
    assert "Traceback" not in text
    assert f"trial {taken.number} was taken over" in text
    trials = _trials(postgres_url)
    assert trials[taken.number].user_attrs["fail_reason"].startswith(STALE_REASON)
    assert "failed by worker 1" in trials[taken.number].user_attrs["fail_reason"]
    replaced = superseded(trials)
    counted = [t for t in trials if t.state.is_finished() and t.number not in replaced]
    assert [t.state for t in counted] == [TrialState.COMPLETE] * 2


@pytest.mark.slow
def test_finscale_run_stopped_by_a_signal_stops_its_workers_first(
    postgres_url: str, make_spec: Callable[..., Path], worker_env: Env, tmp_path: Path
) -> None:
    # Given `finscale run` with 2 workers mid-training,
    spec = make_spec(n_trials=4, training={"epochs": 40}, early_stopping={"patience": 40})
    run = _start_run(spec, worker_env(postgres_url), tmp_path / "run.log")
    try:
        _wait_for(_training(postgres_url, 2), timeout=180, what="two trials training")
        # when it receives SIGTERM,
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    # then its workers hand their trials back and are gone before it exits 143.
    text = (tmp_path / "run.log").read_text(errors="replace")
    assert run.returncode == 143, text[-3000:]
    assert _processes_of(str(spec)) == []
    trials = _trials(postgres_url)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    handed_back = [
        t for t in trials if "interrupted: SIGTERM" in t.user_attrs.get("fail_reason", "")
    ]
    assert len(handed_back) == 2
