"""Training one trial (`finscale.hpo.fit`): the one path the objective, `finscale train` and the
final evaluation take, so that a retrained trial reproduces the search's run."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch

from finscale.data import Prepared, prepare
from finscale.errors import DataError, ExitCode, SpecError, StudyNotFoundError
from finscale.hpo import inputs
from finscale.hpo.fit import (
    DoesNotFitError,
    fit_trial,
    rebuild_trial,
    require_test_region,
)
from finscale.hpo.train_one import default_spec
from finscale.model import parse_arch_id
from finscale.spec import StudySpec
from tests.conftest import random_walk_bars

ARCH = parse_arch_id("d16-l1-h2-f2")
CPU = torch.device("cpu")
BARS = 900  # rows: a few hundred windows per split, so that each fit takes a second


@pytest.fixture(scope="module")
def spec() -> StudySpec:
    return default_spec().with_changes(
        {
            "model": {"context_length": 20, "patch_length": 5, "stride": 5},
            "split": {
                "val_start": "2001-10-01",
                "test_start": "2002-09-01",
                "min_val_windows": 100,
                "min_test_windows": 100,
            },
        }
    )


@pytest.fixture(scope="module")
def prepared(spec: StudySpec) -> Prepared:
    return prepare(
        random_walk_bars(BARS),
        context_length=spec.model.context_length,
        horizon=1,
        threshold=0.0,
        split=inputs.split_settings(spec),
    )


@pytest.fixture(scope="module")
def params(spec: StudySpec) -> dict[str, float | int]:
    return inputs.check_params(
        {**inputs.typical_params(spec), "epochs": 1, "batch_size": 64}, where="test"
    )


def test_one_seed_gives_the_same_logits_twice(
    spec: StudySpec, prepared: Prepared, params: dict[str, float | int]
) -> None:
    runs = [
        fit_trial(spec, prepared, ARCH, params, seed=seed, device=CPU, predict_test=True)
        for seed in (7, 7, 8)
    ]
    first, again, other = runs
    assert first.result.value == again.result.value
    np.testing.assert_array_equal(first.result.val_logits, again.result.val_logits)
    assert first.test_logits is not None and again.test_logits is not None
    np.testing.assert_array_equal(first.test_logits, again.test_logits)
    assert first.test == again.test
    assert not np.array_equal(first.result.val_logits, other.result.val_logits)
    assert len(first.test_logits) == len(prepared.splits.test)
    assert first.arch.id == ARCH.id and first.param_count == first.arch.param_count > 0


def test_a_run_trains_with_the_thread_count_it_is_given_and_restores_the_process_s(
    spec: StudySpec, prepared: Prepared, params: dict[str, float | int]
) -> None:
    before = torch.get_num_threads()
    wanted = before + 1  # another count than the process's, whatever the machine
    seen: list[int] = []
    fit_trial(
        spec, prepared, ARCH, params, seed=0, device=CPU, threads=wanted,
        on_epoch=lambda *_: seen.append(torch.get_num_threads()),
    )  # fmt: skip
    assert seen == [wanted]
    assert torch.get_num_threads() == before


def test_the_memory_plan_is_shown_before_training(
    spec: StudySpec, prepared: Prepared, params: dict[str, float | int]
) -> None:
    seen = []
    fit = fit_trial(spec, prepared, ARCH, params, seed=0, device=CPU, on_plan=seen.append)
    assert seen == [fit.batch]
    assert fit.test is None and fit.test_logits is None  # not asked to predict test


def test_a_refit_trains_every_epoch_on_train_and_validation(
    spec: StudySpec, prepared: Prepared, params: dict[str, float | int]
) -> None:
    fit = fit_trial(
        spec, prepared, ARCH, {**params, "epochs": 9}, seed=0, device=CPU, refit_epochs=3
    )
    assert fit.result.epochs_run == 3
    assert fit.result.stop_reason == "max_epochs"


def test_an_architecture_that_does_not_fit_is_a_spec_error(
    spec: StudySpec,
    prepared: Prepared,
    params: dict[str, float | int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("finscale.hpo.fit.available_memory_bytes", lambda *_a, **_k: 1024)
    with pytest.raises(DoesNotFitError) as caught:
        fit_trial(spec, prepared, ARCH, params, seed=0, device=CPU)
    error = caught.value
    assert isinstance(error, SpecError) and error.exit_code == ExitCode.BAD_INPUT
    assert str(error) == f"d16-l1-h2-f2 does not fit this device: {error.reason}"
    assert error.reason  # the memory plan's own words


def test_scoring_on_test_needs_a_test_region(spec: StudySpec) -> None:
    no_test = spec.with_changes({"split": {"test_start": None}})
    prepared = prepare(
        random_walk_bars(BARS),
        context_length=20,
        horizon=1,
        threshold=0.0,
        split=inputs.split_settings(no_test),
    )
    with pytest.raises(DataError, match=r"the split has no test region; give one .* to evaluate"):
        require_test_region(no_test, prepared, then="to evaluate on test")


def test_a_stored_trial_is_rebuilt_from_the_storage_alone(spec: StudySpec) -> None:
    searched = optuna.distributions.CategoricalDistribution(["d16-l1-h2-f2"])
    stored = {**inputs.typical_params(spec), "learning_rate": 3e-4}
    trial = optuna.trial.create_trial(
        params={"arch": "d16-l1-h2-f2", **stored},
        distributions={
            "arch": searched,
            **{k: optuna.distributions.CategoricalDistribution([v]) for k, v in stored.items()},
        },
        value=0.69,
        user_attrs={"seed": 1234, "torch_threads": 3},
    )
    rebuilt = rebuild_trial(spec, trial)
    assert (rebuilt.arch, rebuilt.seed, rebuilt.value) == ("d16-l1-h2-f2", 1234, 0.69)
    assert rebuilt.threads == 3
    assert rebuilt.params["learning_rate"] == 3e-4
    assert rebuilt.params == stored

    old = optuna.trial.create_trial(
        params=trial.params, distributions=trial.distributions, value=0.7
    )
    assert rebuild_trial(spec, old).seed == old.number  # stored before the seed attribute
    assert rebuild_trial(spec, old).threads is None  # and before the thread count

    no_arch = optuna.trial.create_trial(params={}, distributions={}, value=0.7)
    with pytest.raises(StudyNotFoundError, match="has no architecture parameter"):
        rebuild_trial(spec, no_arch)
