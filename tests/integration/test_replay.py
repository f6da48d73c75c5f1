"""A stored trial rebuilds exactly, the final evaluation stores and resumes its runs, and a
study keeps the dataset version it was created with when the data is rebuilt."""

from __future__ import annotations

import contextlib
import gzip
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
import yaml
from optuna.trial import TrialState

from finscale.data import build_datasets, load_inputs, read_manifest
from finscale.errors import DataError, StudyMismatchError
from finscale.hpo import run_worker
from finscale.hpo.evaluate import evaluate_study
from finscale.hpo.storage import open_storage
from finscale.hpo.train_one import plan_training, retrain
from finscale.predictions import decode_labels, decode_logits
from finscale.records import ATTR_DATASET_SHA256, ATTR_WINDOWS, eval_key
from finscale.settings import Settings
from finscale.spec import load_study
from tests.conftest import SAMPLE_DIR, run_cli
from tests.integration.conftest import SMALL, _merge

STUDY = "it-30k-h1"


def _settings(tmp_path: Path, data_dir: Path) -> Settings:
    return Settings(
        storage_url=f"sqlite:///{tmp_path / 'studies.db'}",
        data_dir=data_dir,
        runs_dir=tmp_path / "runs",
        device="cpu",
        heartbeat_interval_s=1,
        heartbeat_grace_s=3,
        poll_interval_s=0.2,
    )


def _study(settings: Settings) -> optuna.Study:
    storage = open_storage(
        settings.storage_url, heartbeat_interval_s=1, heartbeat_grace_s=3, max_retries=0
    )
    return optuna.load_study(study_name=STUDY, storage=storage)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A folder holding a finished 2-trial study (`studies.db`) and its spec (`spec.yaml`), run
    once for the tests that read it: each works on a copy."""
    folder = tmp_path_factory.mktemp("finished")
    (folder / "spec.yaml").write_text(yaml.safe_dump(_merge(SMALL, {"n_trials": 2})))
    settings = _settings(folder, data_dir)
    run_worker(load_study(folder / "spec.yaml"), settings, install_signal_handlers=False)
    return folder


def _copy(finished: Path, tmp_path: Path) -> Path:
    """The finished study's storage copied into `tmp_path`; the path of its spec there."""
    for name in ("studies.db", "spec.yaml"):
        shutil.copy(finished / name, tmp_path / name)
    return tmp_path / "spec.yaml"


@pytest.mark.slow
def test_a_stored_trial_retrains_to_its_stored_value_bit_for_bit(
    tmp_path: Path,
    data_dir: Path,
    finished: Path,
    make_spec: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    env: pytest.MonkeyPatch,
) -> None:
    # given a study whose trials trained with seeds derived from the study
    spec_path = _copy(finished, tmp_path)
    settings = _settings(tmp_path, data_dir)
    trials = [t for t in _study(settings).get_trials() if t.state == TrialState.COMPLETE]
    assert len({t.user_attrs["seed"] for t in trials}) == len(trials) == 2
    recorded = trials[0].user_attrs["torch_threads"]
    assert recorded == torch.get_num_threads() >= 1  # the count each trial trained with
    seen: list[int] = []  # the thread count of each epoch retrained
    for trial in trials:
        # when the trial is planned and retrained from the storage alone, in a process set to
        # another thread count
        plan = plan_training(load_study(spec_path), settings=settings, trial=trial.number)
        assert plan.seed == trial.user_attrs["seed"] != trial.number
        assert plan.threads == trial.user_attrs["torch_threads"] == recorded
        seen.clear()
        with _threads(recorded + 1):
            run = retrain(
                plan, settings=settings, on_epoch=lambda *_: seen.append(torch.get_num_threads())
            )
            assert torch.get_num_threads() == recorded + 1  # the process's count, restored
        # then it trained with the trial's thread count, and its value comes back exactly, and
        # so do its stored metrics
        assert set(seen) == {recorded}
        assert run.result.value == trial.value
        assert run.result.val["auc"] == trial.user_attrs["val_auc"]
    # a spec that searches something else is refused, naming the field; --set changes are
    # the retraining's own and are allowed
    with pytest.raises(
        StudyMismatchError, match=r"early_stopping\.patience: study has 5, spec has 4"
    ):
        plan_training(
            load_study(make_spec(n_trials=2, early_stopping={"patience": 4})),
            settings=settings,
            trial=trials[0].number,
        )
    longer = plan_training(
        load_study(spec_path),
        settings=settings,
        trial=trials[0].number,
        changes={"training": {"epochs": 3}},
    )
    assert longer.params["epochs"] == 3 and longer.seed == trials[0].user_attrs["seed"]
    # and the command says so, with the reference and the floor beside the metrics
    for key, value in {
        "FINSCALE_STORAGE_URL": settings.storage_url,
        "FINSCALE_DATA_DIR": str(data_dir),
        "FINSCALE_DEVICE": "cpu",
    }.items():
        env.setenv(key, value)
    with _threads(recorded + 1):
        code, out, err = run_cli(
            ["train", str(spec_path), "--trial", str(trials[0].number)], capsys
        )
    assert code == 0, err
    assert f"training with {recorded} torch threads, as trial {trials[0].number}" in err
    assert f"trial {trials[0].number} of {STUDY}" in out
    assert f"stored value {trials[0].value!r}, retrained {trials[0].value!r}: the same" in out
    assert "(reference 0." in out and "the train rate 0." in out and "; floor 0." in out
    # a split without a test region says so instead of printing nothing
    code, _, err = run_cli(
        ["train", str(spec_path), "--arch", "d16-l1-h2-f2", "--epochs", "1", "--test",
         "--set", "split.test_start=null", "--set", "split.val_start=2016-01-01"],
        capsys,
    )  # fmt: skip
    assert code == 2
    assert "the split has no test region" in err


@pytest.mark.slow
def test_the_evaluation_stores_each_run_and_resumes(
    tmp_path: Path,
    data_dir: Path,
    finished: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a finished study
    spec = load_study(_copy(finished, tmp_path))
    settings = _settings(tmp_path, data_dir)
    best = min(
        (t for t in _study(settings).get_trials() if t.state == TrialState.COMPLETE),
        key=lambda t: t.value or 0.0,
    )
    # when its best trial is evaluated with two seeds, in a process set to another thread count
    recorded = best.user_attrs["torch_threads"]
    with _threads(recorded + 1), caplog.at_level(logging.INFO, logger="finscale.hpo.fit"):
        first = evaluate_study(spec, settings, top_k=1, seeds=2)
    # then it trains with the trial's
    assert f"training with {recorded} torch threads, as trial {best.number} did" in caplog.text
    # and both runs are stored with their test logits, one per test window
    assert first.trained == 2 and [r.trial for r in first.runs] == [best.number] * 2
    attrs = _study(settings).user_attrs
    windows = attrs[ATTR_WINDOWS]
    for index in range(2):
        record = attrs[eval_key(best.number, index)]
        assert len(decode_logits(record["test_logits"])) == windows["test"]["n"] > 0
    assert len(decode_labels(windows["test"]["labels"])) == windows["test"]["n"]
    # seed 0 is the trial's own: its validation value is the search's, exactly
    assert first.runs[0].val["bce"] == best.value
    assert first.runs[1].seed != first.runs[0].seed
    # and a second call trains nothing
    again = evaluate_study(spec, settings, top_k=1, seeds=2)
    assert again.trained == 0
    assert [(r.trial, r.seed, r.test["bce"], r.test_logits) for r in again.runs] == [
        (r.trial, r.seed, r.test["bce"], r.test_logits) for r in first.runs
    ]


@contextlib.contextmanager
def _threads(count: int) -> Iterator[None]:
    """The process at `count` torch threads for the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rebuilt_sample(directory: Path) -> Path:
    """The shipped S&P 500 sample without its last 20 days, as a CSV."""
    with gzip.open(SAMPLE_DIR / "GSPC.csv.gz", "rt") as f:
        bars = pd.read_csv(f)
    path = directory / "GSPC-short.csv"
    bars.iloc[:-20].to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_a_study_keeps_its_dataset_version_when_the_data_is_rebuilt(
    tmp_path: Path, data_dir: Path, make_spec: Callable[..., Path]
) -> None:
    # given a study created on the sample dataset, in a data directory of its own
    own = tmp_path / "data"
    shutil.copytree(data_dir, own)
    spec = load_study(make_spec(n_trials=1))
    settings = _settings(tmp_path, own)
    run_worker(spec, settings, install_signal_handlers=False)
    original = _study(settings).user_attrs[ATTR_DATASET_SHA256]
    # when the dataset is rebuilt from other bars (a new download)
    build_datasets(
        load_inputs("csv", ticker="GSPC", csv_path=_rebuilt_sample(tmp_path), kinds=["a25"]),
        data_dir=own,
    )
    latest = read_manifest(own).latest("GSPC.dataset.a25")
    assert latest is not None and latest.sha256 != original
    # then a worker joining the study with a larger budget trains on the pinned version
    more = spec.model_copy(update={"n_trials": 2})
    run_worker(more, settings, install_signal_handlers=False)
    trials = _study(settings).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert {t.user_attrs["dataset_sha256"] for t in trials} == {original}
    # and when that version is gone, a worker exits 2 naming both versions
    for entry in read_manifest(own).entries:
        if entry.sha256 == original:
            (own / entry.path).unlink()
    with pytest.raises(
        DataError, match=rf"created with GSPC\.dataset\.a25 {original}.*{latest.sha256}"
    ):
        run_worker(spec.model_copy(update={"n_trials": 3}), settings, install_signal_handlers=False)
