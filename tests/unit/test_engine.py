"""The search engine on SQLite with a cheap objective (no training): the budget is exact, an
interrupted trial is handed back and rerun, racing workers never overshoot, a dead worker's
trial is failed as stale and rerun with its parameters, and a worker of other code joins a
study only when allowed."""

from __future__ import annotations

import io
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from finscale.errors import (
    CodeMismatchError,
    DeviceUnusableError,
    ExitCode,
    Interrupted,
    StudyFailedError,
)
from finscale.hpo.join import join_study
from finscale.hpo.storage import open_storage
from finscale.hpo.trial_budget import (
    STALE_REASON,
    SYSTEM_REQUEUED_FROM,
    TrialBudgetState,
    budget_state,
    reserve_trial,
)
from finscale.hpo.worker import WorkerReport, run_worker
from finscale.identity import code_sha256
from finscale.model import Arch
from finscale.records import ATTR_CODE_SHA256, TRIAL_DEVICE_FAULTS, TRIAL_WORKER
from finscale.settings import Settings
from finscale.spec import StudySpec, load_study
from tests.conftest import run_cli

SPEC: dict[str, Any] = {
    "name": "eng",
    "budgets": ["30K"],
    "horizons": [1],
    "data": {"dataset": "GSPC.dataset.a25"},
    "split": {"mode": "chronological", "val_start": "2015-01-01", "test_start": "2017-01-01"},
    "architecture": {
        "d_model": [16, 24, 32],
        "n_layers": [1, 2],
        "n_heads": [2, 4],
        "d_ff_ratio": [2],
        "tolerance": 0.6,
        "forced_extremes": True,
    },
    "training": {"epochs": 1, "batch_size": 512, "precision": "fp32"},
    "sampler": {"type": "tpe", "seed": 1, "n_startup_trials": 3},
    "pruner": {"type": "none"},
    "n_trials": 4,
    "workers": 2,
    "resources": {"gpus": 0, "memory_request": "2Gi", "memory_limit": "2Gi"},
}


def _spec(folder: Path, n_trials: int) -> StudySpec:
    path = folder / f"spec-{n_trials}.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "n_trials": n_trials}))
    return load_study(path)


def _settings(folder: Path, data_dir: Path) -> Settings:
    return Settings(
        storage_url=f"sqlite:///{folder / 'studies.db'}",
        data_dir=data_dir,
        runs_dir=folder / "runs",
        device="cpu",
        heartbeat_interval_s=1,
        heartbeat_grace_s=2,
        poll_interval_s=0.1,
        storage_deadline_s=5,
    )


@pytest.fixture(scope="module")
def created_study(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A storage holding the study set up, with no trial run: its windows and baselines take
    seconds to store, so that each test starts from a copy (and raises the budget it needs)."""
    folder = tmp_path_factory.mktemp("created")
    join_study(_spec(folder, 2), _settings(folder, data_dir)).storage.remove_session()
    return folder / "studies.db"


@pytest.fixture
def make_study(tmp_path: Path) -> Callable[..., StudySpec]:
    def make(n_trials: int) -> StudySpec:
        return _spec(tmp_path, n_trials)

    return make


@pytest.fixture
def settings(tmp_path: Path, data_dir: Path, created_study: Path) -> Settings:
    shutil.copy(created_study, tmp_path / "studies.db")
    return _settings(tmp_path, data_dir)


class Sleeping:
    """An objective that picks an architecture as the real one does, sleeps, and scores it;
    `interrupt_on` trial numbers raise `Interrupted` as a signal would."""

    delay_s = 0.05
    interrupt_on: frozenset[int] = frozenset()
    faulty_device = False  # every trial meets a GPU fault, as on a node whose GPU is failing

    def __init__(
        self,
        spec: StudySpec,
        *,
        grid: list[Arch],
        check_stop: Callable[[], None] | None = None,
        **_: object,
    ) -> None:
        self.ids = [a.id for a in grid]
        self.check_stop = check_stop or (lambda: None)

    def __call__(self, trial: optuna.Trial) -> float:
        arch = str(trial.suggest_categorical("arch", self.ids))
        time.sleep(self.delay_s)
        self.check_stop()
        if trial.number in self.interrupt_on:
            raise Interrupted("SIGTERM received")
        if self.faulty_device:
            raise RuntimeError(
                "CUDA error: an illegal memory access was encountered\nCUDA kernel errors "
                "might be asynchronously reported at some other API call"
            )
        return float(len(arch)) / 100


def _run(spec: StudySpec, settings: Settings, **kwargs: Any) -> WorkerReport:
    kwargs.setdefault("make_objective", Sleeping)
    return run_worker(spec, settings, events=io.StringIO(), install_signal_handlers=False, **kwargs)


def _study(spec: StudySpec, settings: Settings) -> optuna.Study:
    storage = open_storage(
        settings.storage_url, heartbeat_interval_s=1, heartbeat_grace_s=2, max_retries=2
    )
    return optuna.load_study(study_name=spec.name, storage=storage)


def _exact(n: int) -> TrialBudgetState:
    return TrialBudgetState(n_trials=n, finished=n, running=0, waiting=0)


def test_one_worker_runs_exactly_the_budget(
    make_study: Callable[..., StudySpec], settings: Settings
) -> None:
    spec = make_study(5)
    report = _run(spec, settings)
    assert report.trials_run == 5
    assert report.final == _exact(5)
    trials = _study(spec, settings).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    # A second worker on a spent budget runs nothing.
    assert _run(spec, settings).trials_run == 0
    assert len(_study(spec, settings).get_trials()) == 5


def test_an_interrupted_trial_is_handed_back_and_rerun_with_its_parameters(
    make_study: Callable[..., StudySpec], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_study(3)
    monkeypatch.setattr(Sleeping, "interrupt_on", frozenset({1}))
    with pytest.raises(Interrupted):
        _run(spec, settings)
    study = _study(spec, settings)
    interrupted = study.get_trials()[1]
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs["fail_reason"].startswith("interrupted")
    copies = [t for t in study.get_trials() if SYSTEM_REQUEUED_FROM in t.system_attrs]
    assert [(c.state, c.system_attrs[SYSTEM_REQUEUED_FROM]) for c in copies] == [
        (TrialState.WAITING, 1)
    ]
    assert copies[0].params == interrupted.params
    assert budget_state(study, 3).finished == 1  # the failed original is not counted
    monkeypatch.setattr(Sleeping, "interrupt_on", frozenset())
    report = _run(spec, settings)
    assert report.final == _exact(3)
    assert report.trials_run == 2  # the copy, then one new trial
    rerun = study.get_trials()[copies[0].number]
    assert rerun.state == TrialState.COMPLETE
    assert rerun.params == interrupted.params


def test_racing_workers_never_exceed_the_budget(
    make_study: Callable[..., StudySpec], settings: Settings
) -> None:
    spec = make_study(6)
    join_study(spec, settings)  # created once, so that the race is over trials only
    reports: list[WorkerReport] = []
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            reports.append(_run(spec, settings, index=index))
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert sum(r.trials_run for r in reports) == 6
    assert all(r.final == _exact(6) for r in reports)
    trials = _study(spec, settings).get_trials()
    assert sorted(t.number for t in trials) == list(range(6))
    assert {t.state for t in trials} == {TrialState.COMPLETE}


def test_a_dead_workers_trial_goes_stale_and_is_rerun_with_its_parameters(
    make_study: Callable[..., StudySpec], settings: Settings
) -> None:
    spec = make_study(2)
    joined = join_study(spec, settings)
    # A worker that reserved a trial, chose its architecture and died: no more heartbeats.
    abandoned, _ = reserve_trial(joined.study, joined.storage, n_trials=spec.n_trials)
    assert abandoned is not None
    abandoned.suggest_categorical("arch", [a.id for a in joined.grid])
    report = _run(spec, settings)
    assert report.final == _exact(2)
    study = _study(spec, settings)
    dead = study.get_trials()[abandoned.number]
    assert dead.state == TrialState.FAIL
    assert STALE_REASON in dead.user_attrs["fail_reason"]
    reruns = [t for t in study.get_trials() if t.system_attrs.get("failed_trial") == dead.number]
    assert len(reruns) == 1
    assert reruns[0].state == TrialState.COMPLETE
    assert reruns[0].params == dead.params


def _held_by(spec: StudySpec, settings: Settings, worker: int | None) -> int:
    """A trial reserved (one heartbeat) by worker `worker` (None: one that died before naming
    itself), whose heartbeats then stop: a live peer for a grace period, then a dead one."""
    joined = join_study(spec, settings)
    held, _ = reserve_trial(joined.study, joined.storage, n_trials=spec.n_trials)
    assert held is not None
    held.suggest_categorical("arch", [a.id for a in joined.grid])
    if worker is not None:
        held.set_user_attr(TRIAL_WORKER, worker)
    return held.number


def test_an_idle_pod_leaves_at_once_while_a_peers_trial_runs(
    make_study: Callable[..., StudySpec], settings: Settings
) -> None:
    spec = make_study(1)
    number = _held_by(spec, settings, worker=0)
    started = time.monotonic()
    report = _run(spec, settings, index=1, until="idle")
    # it left before the peer's trial could go stale: its device is free at once
    assert report.outcome == "idle" and report.trials_run == 0
    assert time.monotonic() - started < settings.heartbeat_grace_s
    assert _study(spec, settings).get_trials()[number].state == TrialState.RUNNING


@pytest.mark.parametrize("worker", [0, None], ids=["its own index", "a worker never named"])
def test_a_replaced_pod_reruns_the_trial_its_predecessor_left_and_ends_the_study(
    make_study: Callable[..., StudySpec], settings: Settings, worker: int | None
) -> None:
    # given a trial left running by the dead pod of index 0 (or by a worker that died before
    # naming itself), and no other worker left
    spec = make_study(2)
    number = _held_by(spec, settings, worker=worker)
    # when index 0's next pod joins, told to leave when idle
    report = _run(spec, settings, index=0, until="idle")
    # then it waits for the trial to go stale, reruns it, runs the rest and sees the study end
    assert report.outcome == "done" and report.final == _exact(2)
    trials = _study(spec, settings).get_trials()
    assert trials[number].state == TrialState.FAIL
    reruns = [t for t in trials if t.system_attrs.get("failed_trial") == number]
    assert [t.state for t in reruns] == [TrialState.COMPLETE]
    assert reruns[0].params == trials[number].params


def test_a_dev_loops_changed_build_runs_a_fresh_study_and_a_rebuild_rejoins_its_own(
    make_study: Callable[..., StudySpec], settings: Settings
) -> None:
    # given a study whose budget a first build spent
    spec = make_study(2)
    assert _run(spec, settings).trials_run == 2
    # when a changed build's worker runs the study of its build (FINSCALE_STUDY_PER_BUILD)
    changed = spec.for_build("c0de" * 16)
    report = _run(changed, settings)
    # then it runs a fresh study, of an experiment of its own, rather than 0 trials
    assert report.trials_run == 2 and report.study == changed.name != spec.name
    assert changed.experiment.startswith(f"{spec.experiment}-")
    # and the same build again rejoins its own, finished study
    assert _run(spec.for_build("c0de" * 16), settings).trials_run == 0
    assert spec.for_build("beef" * 16).name not in (spec.name, changed.name)


def test_a_device_that_fails_under_a_trial_hands_it_back_and_the_worker_exits_4(
    make_study: Callable[..., StudySpec], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a worker on a node whose GPU fails mid-trial
    spec = make_study(2)
    monkeypatch.setenv("NODE_NAME", "gpu-node-7")
    monkeypatch.setattr(Sleeping, "faulty_device", True)
    with pytest.raises(DeviceUnusableError) as raised:
        _run(spec, settings)
    # then it exits 4 naming the node and the fault, and the trial is not counted: a copy
    # with its parameters waits for a healthy node
    assert raised.value.exit_code == ExitCode.DEVICE_UNUSABLE == 4
    assert "gpu-node-7" in str(raised.value) and "illegal memory access" in str(raised.value)
    study = _study(spec, settings)
    (first,) = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert "device fault on node gpu-node-7" in first.user_attrs["fail_reason"]
    (copy,) = [t for t in study.get_trials() if t.user_attrs.get("requeued_from") == first.number]
    assert copy.state == TrialState.WAITING and copy.params == first.params
    assert copy.user_attrs[TRIAL_DEVICE_FAULTS] == 1
    assert budget_state(study, 2).finished == 0
    # when a pod on a healthy node runs the study, the budget is spent exactly
    monkeypatch.setattr(Sleeping, "faulty_device", False)
    report = _run(spec, settings)
    assert report.final == _exact(2) and report.trials_run == 2


def test_a_trial_that_every_device_fails_under_counts_as_failed_after_max_retries(
    make_study: Callable[..., StudySpec], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a trial that breaks every GPU it meets (max_retries 2: two hand-backs)
    spec = make_study(1)
    monkeypatch.setattr(Sleeping, "faulty_device", True)
    pods = 0
    while True:  # pod after pod, each on another node, each exits 4 until the budget is spent
        pods += 1
        assert pods <= 10, "a trial went round the nodes for ever"
        try:
            _run(spec, settings)
        except DeviceUnusableError:
            continue
        except StudyFailedError:  # its one counted trial failed: a study nothing can finish
            break
    trials = {t.number: t for t in _study(spec, settings).get_trials()}
    # then the third device to fail under one trial fails it for good instead of handing it
    # back again, and the budget moves on
    (last,) = [t for t in trials.values() if "devices failed under it" in t.user_attrs.get(
        "fail_reason", "")]  # fmt: skip
    assert "3 devices failed under it" in last.user_attrs["fail_reason"]
    lineage = [last]
    while "requeued_from" in lineage[-1].user_attrs:
        lineage.append(trials[lineage[-1].user_attrs["requeued_from"]])
    assert [t.user_attrs.get(TRIAL_DEVICE_FAULTS, 0) for t in lineage] == [2, 1, 0]
    assert {t.state for t in lineage} == {TrialState.FAIL}
    assert pods == 6  # two forced trials, handed back twice each; the 6th pod finds it spent
    assert budget_state(_study(spec, settings), 1).finished == 1


def test_a_trials_own_cuda_errors_are_not_a_devices() -> None:
    import torch

    from finscale.train.device import device_fault

    assert device_fault(RuntimeError("CUDA error: uncorrectable ECC error encountered")) == (
        "CUDA error: uncorrectable ECC error encountered"
    )
    assert device_fault(RuntimeError("CUDA error: device-side assert triggered")) is None
    assert device_fault(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate")) is None
    assert device_fault(ValueError("a bug of ours")) is None


# --- the code a study was created by --------------------------------------------------------

OTHER_CODE = "c0de" * 16  # the digest of a changed checkout or a rebuilt image


def _other_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("finscale.hpo.join.code_sha256", lambda: OTHER_CODE)


def test_a_worker_of_the_same_code_joins_and_the_study_names_its_code(
    make_study: Callable[..., StudySpec], settings: Settings
) -> None:
    spec = make_study(2)
    assert _run(spec, settings).final == _exact(2)
    assert _study(spec, settings).user_attrs[ATTR_CODE_SHA256] == code_sha256()


def test_a_worker_of_other_code_is_refused_with_exit_2_naming_both_codes(
    make_study: Callable[..., StudySpec],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given a study created by this code, and a worker whose code differs
    spec = make_study(2)
    _other_code(monkeypatch)
    # when it joins, then it is refused before it runs anything
    with pytest.raises(CodeMismatchError) as refused:
        _run(spec, settings)
    assert refused.value.exit_code == ExitCode.BAD_INPUT
    message = str(refused.value)
    assert code_sha256() in message and OTHER_CODE in message
    assert "--allow-code-change" in message and "FINSCALE_ALLOW_CODE_CHANGE=1" in message
    assert {t.state for t in _study(spec, settings).get_trials()} == {TrialState.WAITING}
    # and `finscale worker` exits 2 with that message
    for name, value in {
        "STORAGE_URL": settings.storage_url,
        "DATA_DIR": str(settings.data_dir),
        "RUNS_DIR": str(settings.runs_dir),
        "DEVICE": "cpu",
    }.items():
        env.setenv(f"FINSCALE_{name}", value)
    code, _, err = run_cli(["worker", str(_spec_path(spec, settings))], capsys)
    assert code == 2
    assert "created by finscale code" in err and OTHER_CODE in err


def test_a_worker_of_other_code_joins_when_allowed_with_a_warning(
    make_study: Callable[..., StudySpec],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec = make_study(3)
    _run(make_study(2), settings)  # the study, created by this code, with 2 of 3 trials run
    _other_code(monkeypatch)
    allowed = settings.model_copy(update={"allow_code_change": True})
    with caplog.at_level(logging.WARNING, logger="finscale.hpo.study"):
        report = _run(spec, allowed)
    assert report.trials_run == 1 and report.final == _exact(3)
    warned = [r.getMessage() for r in caplog.records if "this worker runs" in r.getMessage()]
    assert warned and code_sha256()[:12] in warned[0] and OTHER_CODE[:12] in warned[0]
    assert _study(spec, settings).user_attrs[ATTR_CODE_SHA256] == code_sha256()  # unchanged
    # `finscale worker --allow-code-change` allows it too (the budget is spent: it exits 0)
    for name, value in {
        "STORAGE_URL": settings.storage_url,
        "DATA_DIR": str(settings.data_dir),
        "RUNS_DIR": str(settings.runs_dir),
        "DEVICE": "cpu",
    }.items():
        env.setenv(f"FINSCALE_{name}", value)
    path = str(_spec_path(spec, settings))
    assert run_cli(["worker", path], capsys)[0] == 2
    code, _, err = run_cli(["worker", path, "--allow-code-change"], capsys)
    assert code == 0 and "3/3 trials finished" in err


def test_a_study_stored_without_a_code_identity_is_joined_with_a_warning(
    make_study: Callable[..., StudySpec],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a study as a finscale that kept no code identity left it
    spec = make_study(2)
    database = settings.storage_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as connection:
        connection.execute("DELETE FROM study_user_attributes WHERE key = ?", (ATTR_CODE_SHA256,))
    connection.close()
    # when a worker joins it, then it runs, says so, and does not claim the study for its code
    with caplog.at_level(logging.WARNING, logger="finscale.hpo.study"):
        assert _run(spec, settings).final == _exact(2)
    assert any("without the identity of the code" in r.getMessage() for r in caplog.records)
    assert ATTR_CODE_SHA256 not in _study(spec, settings).user_attrs


def _spec_path(spec: StudySpec, settings: Settings) -> Path:
    """The spec file `make_study` wrote for `spec` (beside the storage)."""
    return (
        Path(settings.storage_url.removeprefix("sqlite:///")).parent / f"spec-{spec.n_trials}.yaml"
    )


class Scored(Sleeping):
    """A deterministic objective over the architecture and a learning rate: what TPE proposes
    next depends on every value before it, as with training."""

    delay_s = 0.0

    def __call__(self, trial: optuna.Trial) -> float:
        arch = str(trial.suggest_categorical("arch", self.ids))
        rate = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        return len(arch) / 100 + abs(rate - 1e-3) * 10


def test_a_study_run_by_one_seeded_worker_proposes_the_same_trials_again(
    tmp_path: Path, data_dir: Path, created_study: Path
) -> None:
    # given: the same seeded study in two fresh storages, each run by one worker
    proposed = []
    for run in ("first", "second"):
        folder = tmp_path / run
        folder.mkdir()
        shutil.copy(created_study, folder / "studies.db")
        spec, settings = _spec(folder, 8), _settings(folder, data_dir)
        _run(spec, settings, make_objective=Scored)
        trials = _study(spec, settings).get_trials()
        proposed.append([(t.params, t.value) for t in trials])
    # then: the same parameters, in the same order, past TPE's start-up trials
    assert len(proposed[0]) == 8
    assert proposed[0] == proposed[1]
    # and the report says so
    from finscale.hpo import open_for_reading, read_studies
    from finscale.report.collect import study_result
    from finscale.report.reproducibility import reproducibility

    storage = open_for_reading(settings)
    assert storage is not None
    (result,) = [study_result(s) for s in read_studies(storage, [spec.name])]
    assert "eng-30k-h1 ran on one worker with a seeded sampler" in reproducibility([result])
