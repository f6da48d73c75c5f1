"""Worker processes sharing one study on a real PostgreSQL: the budget is exact, a killed worker's
trial is rerun, SIGTERM hands the trial back, set-up is race-free, and the exit codes hold."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from finscale.hpo import inputs
from finscale.hpo.storage import open_storage
from finscale.hpo.study import worker_seed
from finscale.hpo.trial_budget import TrialBudgetState, budget_state
from finscale.model import parse_arch_id
from finscale.records import ATTR_EXTREMES, SYSTEM_REQUEUED_FROM
from finscale.settings import Settings
from finscale.spec import load_study
from tests.conftest import REPO
from tests.integration.conftest import PrivatePostgres, log_text, start_worker

STUDY = "it-30k-h1"
Env = Callable[..., dict[str, str]]


def _study(url: str, name: str = STUDY) -> optuna.Study:
    storage = open_storage(url, heartbeat_interval_s=1, heartbeat_grace_s=2, max_retries=2)
    return optuna.load_study(study_name=name, storage=storage)


def _wait_for(
    condition: Callable[[], object], *, timeout: float, what: str, every: float = 0.05
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _running_trial(url: str, worker: int | None = None) -> optuna.trial.FrozenTrial | None:
    try:
        trials = _study(url).get_trials(states=(TrialState.RUNNING,))
    except KeyError:  # not created yet
        return None
    for t in trials:
        if worker is None or t.user_attrs.get("worker") == worker:
            return t
    return None


@pytest.mark.slow
def test_three_workers_finish_exactly_n_trials(
    postgres_url: str, make_spec: Callable[..., Path], worker_env: Env
) -> None:
    # A password in the URL (trust authentication ignores it) must appear in no output.
    secret = "pw-s3cr3t-42"
    url = postgres_url.replace("postgres@", f"postgres:{secret}@", 1)
    assert secret in url
    spec = make_spec(n_trials=9)
    workers = [start_worker(spec, worker_env(url), index=i) for i in range(3)]
    outputs = [w.communicate(timeout=420) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()[-3000:]
        assert secret.encode() not in out + err
    study = _study(postgres_url)
    assert budget_state(study, 9) == TrialBudgetState(n_trials=9, finished=9, running=0, waiting=0)
    trials = study.get_trials()
    assert len(trials) == 9, [
        (t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in trials
    ]
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # the work was shared
    # One JSON line per trial event on standard output.
    events = [json.loads(line) for out, _ in outputs for line in out.decode().splitlines()]
    ends = [e for e in events if e["event"] == "trial_end"]
    assert sorted(e["trial"] for e in ends) == list(range(9))
    assert {e["event"] for e in events} == {"trial_start", "epoch", "trial_end"}
    assert all(e["study"] == STUDY for e in events)


@pytest.mark.slow
def test_a_killed_workers_trial_is_rerun_with_the_same_parameters(
    postgres_url: str, make_spec: Callable[..., Path], worker_env: Env
) -> None:
    spec = make_spec(n_trials=2, training={"epochs": 25}, early_stopping={"patience": 25})
    victim = start_worker(spec, worker_env(postgres_url), index=0)
    survivor = start_worker(spec, worker_env(postgres_url), index=1)

    def training() -> optuna.trial.FrozenTrial | None:  # its parameters all drawn
        trial = _running_trial(postgres_url, worker=0)
        return trial if trial is not None and trial.intermediate_values else None

    doomed = _wait_for(training, timeout=120, what="worker 0's trial's first epoch")
    assert isinstance(doomed, optuna.trial.FrozenTrial)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    _out, err = survivor.communicate(timeout=420)
    assert survivor.returncode == 0, err.decode()[-3000:]
    study = _study(postgres_url)
    trials = study.get_trials()
    killed = trials[doomed.number]
    assert killed.state == TrialState.FAIL
    reruns = [t for t in trials if t.system_attrs.get("failed_trial") == doomed.number]
    assert len(reruns) == 1
    assert reruns[0].params == doomed.params
    assert reruns[0].state == TrialState.COMPLETE
    assert budget_state(study, 2) == TrialBudgetState(n_trials=2, finished=2, running=0, waiting=0)


@pytest.mark.slow
def test_sigterm_hands_the_trial_back_within_a_second(
    postgres_url: str, make_spec: Callable[..., Path], worker_env: Env
) -> None:
    spec = make_spec(n_trials=1, training={"epochs": 40}, early_stopping={"patience": 40})
    worker = start_worker(spec, worker_env(postgres_url))

    def training() -> optuna.trial.FrozenTrial | None:
        trial = _running_trial(postgres_url)
        return trial if trial is not None and trial.intermediate_values else None

    # Well into training: the first epoch has been reported.
    running = _wait_for(training, timeout=120, what="a trial's first epoch", every=0.02)
    assert isinstance(running, optuna.trial.FrozenTrial)
    sent = time.time()
    worker.send_signal(signal.SIGTERM)
    try:
        out, err = worker.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 143, f"exit {worker.returncode}:\n{err.decode()[-4000:]}"
    trials = _study(postgres_url).get_trials()
    original = trials[running.number]
    assert original.state == TrialState.FAIL
    assert "interrupted: SIGTERM received" in original.user_attrs["fail_reason"]
    # Handed back (the copy queued, then the original failed) within a second of the signal.
    assert original.datetime_complete is not None
    elapsed = original.datetime_complete.timestamp() - sent
    assert elapsed < 1.0, f"handed back after {elapsed:.2f}s"
    copies = [t for t in trials if t.system_attrs.get(SYSTEM_REQUEUED_FROM) == running.number]
    assert len(copies) == 1
    copy = copies[0]
    assert copy.state == TrialState.WAITING
    assert copy.params == running.params
    ends = [json.loads(line) for line in out.decode().splitlines()]
    assert ends[-1]["event"] == "trial_end" and ends[-1]["requeued_as"] == copy.number
    # A new worker picks the trial up again and completes the study.
    resumed = start_worker(spec, worker_env(postgres_url), index=1)
    _out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()[-3000:]
    study = _study(postgres_url)
    assert budget_state(study, 1).finished == 1
    assert study.get_trials()[copy.number].state == TrialState.COMPLETE


_JOIN = """
import sys, time
from pathlib import Path
from finscale.settings import Settings
from finscale.spec import load_study
from finscale.hpo.join import join_study
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
join_study(load_study(Path(sys.argv[1])), Settings(), index=int(sys.argv[2]))
"""


@pytest.mark.slow
def test_four_workers_starting_together_create_one_study(
    postgres_url: str, make_spec: Callable[..., Path], worker_env: Env
) -> None:
    spec = make_spec(n_trials=20)
    start_at = str(time.time() + 8)  # after every process has imported torch
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _JOIN, str(spec), str(i), start_at],
            env=worker_env(postgres_url),
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    for p in processes:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-3000:]
    storage = open_storage(postgres_url, heartbeat_interval_s=1, heartbeat_grace_s=2, max_retries=0)
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == [STUDY]
    study = optuna.load_study(study_name=STUDY, storage=storage)
    forced = study.user_attrs[ATTR_EXTREMES]
    trials = study.get_trials()
    assert len(trials) == len(forced) >= 4
    assert [t.user_attrs["forced"] for t in trials] == list(forced)
    assert all(t.state == TrialState.WAITING for t in trials)


@pytest.mark.slow
def test_a_changed_spec_exits_2_with_the_differing_fields(
    postgres_url: str, make_spec: Callable[..., Path], worker_env: Env, data_dir: Path
) -> None:
    from finscale.hpo.join import join_study

    settings = Settings(storage_url=postgres_url, data_dir=data_dir)
    join_study(load_study(make_spec()), settings)
    changed = make_spec(training={"dropout": {"type": "uniform", "low": 0.0, "high": 0.5}})
    worker = start_worker(changed, worker_env(postgres_url))
    _out, err = worker.communicate(timeout=120)
    text = log_text(err)
    assert worker.returncode == 2, text[-3000:]
    assert "refusing to join it" in text
    assert "training.dropout.high: study has 0.2, spec has 0.5" in text
    assert "Traceback" not in text


def test_an_unreachable_database_exits_3(make_spec: Callable[..., Path], worker_env: Env) -> None:
    worker = start_worker(
        make_spec(),
        worker_env(
            "postgresql://postgres:hunter2@127.0.0.1:9/none", FINSCALE_STORAGE_DEADLINE_S="3"
        ),
    )
    _out, err = worker.communicate(timeout=120)
    text = log_text(err)
    assert worker.returncode == 3, text[-3000:]
    assert "storage postgresql+psycopg://postgres:***@127.0.0.1:9/none unreachable" in text
    assert re.search(r"opening the storage failed for 3s \(\d+ tries; deadline 3s", text)
    assert "last error: connection failed: " in text and "invalid data in the commit" not in text
    assert "hunter2" not in text


def test_a_missing_database_exits_2_at_once(
    postgres_url: str, make_spec: Callable[..., Path], worker_env: Env
) -> None:
    # Retrying cannot create a database: no retries for the 600 s deadline, exit 2 (the Job
    # fails instead of burning pod restarts).
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    worker = start_worker(make_spec(), worker_env(missing, FINSCALE_STORAGE_DEADLINE_S="600"))
    _out, err = worker.communicate(timeout=120)
    text = log_text(err)
    assert worker.returncode == 2, text[-3000:]
    assert 'database "no_such_database" does not exist' in text
    assert "try 1" not in text and "Traceback" not in text


def test_a_failed_authentication_exits_2_at_once(
    private_postgres: PrivatePostgres, make_spec: Callable[..., Path], worker_env: Env
) -> None:
    url = private_postgres.url.replace("postgres@", "secured@", 1)
    env = worker_env(url, FINSCALE_STORAGE_DEADLINE_S="600", PGPASSWORD="wrong")
    worker = start_worker(make_spec(), env)
    _out, err = worker.communicate(timeout=120)
    text = log_text(err)
    assert worker.returncode == 2, text[-3000:]
    assert 'password authentication failed for user "secured"' in text
    assert "try 1" not in text and "Traceback" not in text and "wrong" not in text


def test_a_restarted_worker_draws_new_parameters(
    postgres_url: str, make_spec: Callable[..., Path], data_dir: Path
) -> None:
    from finscale.hpo.join import join_study

    spec = load_study(make_spec(architecture={"forced_extremes": False}))
    settings = Settings(storage_url=postgres_url, data_dir=data_dir)

    def draw(study: optuna.Study) -> dict[str, object]:
        trial = study.ask()
        trial.suggest_float("learning_rate", 3e-4, 3e-3, log=True)
        trial.suggest_float("dropout", 0.0, 0.2)
        study.tell(trial, state=TrialState.FAIL)
        return trial.params

    # Workers of a fresh study get reproducible seeds: a study can be searched again alike.
    assert worker_seed(spec, index=0, started_trials=0) == worker_seed(
        spec, index=0, started_trials=0
    )
    # Worker 0's first life runs a trial, then dies; two later lives join at the same point.
    draw(join_study(spec, settings, index=0).study)
    lives = [join_study(spec, settings, index=0).study for _ in range(2)]
    second, third = (draw(study) for study in lives)
    assert second != third  # neither replays what another life drew
    # A trial's own training seed stays derivable from what the storage holds.
    trials = lives[0].get_trials()
    assert [inputs.trial_seed(spec, t.number) for t in trials] == [
        inputs.trial_seed(spec, n) for n in range(len(trials))
    ]


@pytest.mark.slow
def test_a_study_whose_every_trial_fails_exits_2_and_says_why(
    make_spec: Callable[..., Path], worker_env: Env, tmp_path: Path
) -> None:
    # Given bars with one absurd High (1e200) let through by bounds opened wide, as an operator
    # might for an odd instrument: every trial's loss is NaN.
    from finscale.data import Plausibility, build_datasets, load_inputs
    from tests.conftest import random_walk_bars

    bars = random_walk_bars(4800)
    bars.loc[2000, "High"] = 1e200
    csv = tmp_path / "absurd.csv"
    bars.to_csv(csv, index=False)
    wide = Plausibility(max_jump=1e300, max_day_range=1e300, max_feature=1e300, max_price=1e300)
    data = tmp_path / "absurd-data"
    inputs = load_inputs("csv", ticker="ABS", csv_path=csv, bounds=wide)
    build_datasets(inputs, data_dir=data, bounds=wide)
    spec = make_spec(
        data={"dataset": "ABS.dataset.a25"},
        n_trials=2,
        training={"epochs": 1},
        architecture={"forced_extremes": False},
    )
    env = worker_env(f"sqlite:///{tmp_path / 'absurd.db'}", FINSCALE_DATA_DIR=str(data))
    # when the study runs,
    result = subprocess.run(
        [sys.executable, "-m", "finscale", "run", str(spec), "--workers", "1"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    # then it does not end "successfully": exit 2, naming the cause.
    text = result.stderr + result.stdout
    assert result.returncode == 2, text[-3000:]
    assert re.search(r"all 2 counted trials failed; 2 of them with: .*(NaN|nan|infinite)", text), (
        text[-4000:]
    )


def test_a_bad_spec_exits_2(tmp_path: Path, worker_env: Env) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nbudgets: [2M]\nhorizons: [1]\ndata: {dataset: SPY.dataset.a25}\nn_trails: 3\n"
    )
    worker = start_worker(bad, worker_env("sqlite:///" + str(tmp_path / "s.db")))
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 2
    assert "bad.yaml: n_trails: Extra inputs are not permitted" in log_text(err)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_the_validation_experiment_runs_with_two_workers(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, worker_env: Env
) -> None:
    url = (
        request.getfixturevalue("postgres_url")
        if backend == "postgres"
        else f"sqlite:///{tmp_path / 'v.db'}"
    )
    spec = REPO / "configs" / "experiments" / "validation.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "finscale", "run", str(spec), "--workers", "2"],
        env=worker_env(url), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert "validation-50k-h1" in result.stdout and "3/3" in result.stdout
    study = _study(url, "validation-50k-h1")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for t in trials:
        # The stored parameters alone rebuild the architecture.
        dims = parse_arch_id(t.params["arch"]).dims()
        assert {k: t.user_attrs[k] for k in dims} == dims
        assert t.user_attrs["val_bce"] == t.value
        for key in (
            "val_auc",
            "param_count",
            "micro_batch",
            "epochs_run",
            "stop_reason",
            "dataset_sha256",
            "wall_time_s",
        ):
            assert key in t.user_attrs
    status = subprocess.run(
        [sys.executable, "-m", "finscale", "status"],
        env=worker_env(url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert "validation-50k-h1" in status.stdout and "3/3" in status.stdout
