"""A Job's pods as rendered: pods that leave when nothing is left for them to start, the closer
that stays until the study is done, and several workers sharing one pod's device."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from finscale.hpo.storage import open_storage
from finscale.hpo.trial_budget import TrialBudgetState, budget_state

STUDY = "it-30k-h1"
Env = Callable[..., dict[str, str]]


def _study(url: str) -> optuna.Study:
    storage = open_storage(url, heartbeat_interval_s=1, heartbeat_grace_s=2, max_retries=2)
    return optuna.load_study(study_name=STUDY, storage=storage)


def _pod(spec: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "finscale", "worker", str(spec), *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _running(url: str) -> bool:
    try:
        return bool(_study(url).get_trials(states=(TrialState.RUNNING,)))
    except KeyError:
        return False


@pytest.mark.slow
def test_an_idle_pod_leaves_while_the_closer_stays_until_the_study_is_done(
    postgres_url: str, make_spec: Callable[..., Path], worker_env: Env
) -> None:
    # given a one-trial study whose trial the closer (index 0) is training
    spec = make_spec(n_trials=1, training={"epochs": 60}, early_stopping={"patience": 60})
    env = worker_env(postgres_url)
    flags = ("--until", "idle", "--closer", "0")
    closer = _pod(spec, env, "--index", "0", *flags)
    deadline = time.monotonic() + 120
    while not _running(postgres_url):
        assert time.monotonic() < deadline and closer.poll() is None, "the closer never started"
        time.sleep(0.1)
    # when another pod of the Job starts, nothing is left for it to start
    idle = _pod(spec, env, "--index", "1", *flags)
    _, err = idle.communicate(timeout=120)
    # then it leaves at once with success, while the closer is still training
    assert idle.returncode == 0, err[-2000:]
    assert "this worker ran 0; nothing left for it to start" in err
    assert closer.poll() is None and _running(postgres_url)
    # and the closer exits 0 only when the study is done
    _, err = closer.communicate(timeout=300)
    assert closer.returncode == 0, err[-2000:]
    assert budget_state(_study(postgres_url), 1) == TrialBudgetState(
        n_trials=1, finished=1, running=0, waiting=0
    )


@pytest.mark.slow
def test_a_pod_of_several_workers_shares_its_device_and_keeps_the_budget_exact(
    postgres_url: str, make_spec: Callable[..., Path], worker_env: Env
) -> None:
    # given a pod that runs two worker processes (trials_per_pod: 2)
    spec = make_spec(n_trials=4)
    pod = _pod(
        spec, worker_env(postgres_url), "--index", "0", "--until", "idle", "--closer", "0",
        "--processes", "2",
    )  # fmt: skip
    _, err = pod.communicate(timeout=600)
    # then the study holds exactly its budget, trained by both workers of the pod
    assert pod.returncode == 0, err[-3000:]
    study = _study(postgres_url)
    assert budget_state(study, 4) == TrialBudgetState(n_trials=4, finished=4, running=0, waiting=0)
    trials = study.get_trials()
    assert len(trials) == 4
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    # each planned its memory within half of what the pod has
    assert all(t.user_attrs["estimated_memory_mib"] > 0 for t in trials)
