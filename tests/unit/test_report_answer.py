"""The answer a researcher acts on: one experiment at a time, only comparable studies fitted
together, flags for trials that cannot carry a conclusion, and the final evaluation on test as
the headline, paired against the baselines on the same windows."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from finscale.predictions import encode_labels, encode_logits
from finscale.records import (
    ATTR_BASELINES,
    ATTR_EVAL_PREFIX,
    ATTR_FIELDS,
    ATTR_N_TRIALS,
    ATTR_SPEC,
    ATTR_WINDOWS,
    StoredStudy,
)
from finscale.records import TRIAL_VAL_LOGITS as ATTR_VAL_LOGITS
from finscale.report import (
    IncomparableStudiesError,
    NothingToReportError,
    SeveralExperimentsError,
    write_report,
)
from finscale.report.checks import study_flags
from finscale.report.collect import study_result

N = 600  # windows per split
RNG = np.random.default_rng(3)
VAL_Y = (RNG.random(N) < 0.2).astype(float)
TEST_Y = (RNG.random(N) < 0.2).astype(float)
SIGNAL_VAL = RNG.normal(size=N)
SIGNAL_TEST = RNG.normal(size=N)


def _definition(experiment: str, budget: str, **changes: str) -> dict[str, str]:
    fields = {
        "experiment": json.dumps(experiment),
        "name": json.dumps(f"{experiment}-{budget.lower()}-h1"),
        "budget": json.dumps(budget),
        "horizon": "1",
        "grid": json.dumps([f"arch-of-{budget}"]),
        "training.epochs": "4",
        "model.revin": "false",
        "dataset_sha256": json.dumps("ab" * 32),
    }
    return {**fields, **changes}


def _windows(split_y: np.ndarray, start: int) -> dict[str, Any]:
    return {
        "n": len(split_y),
        "labels": encode_labels(split_y),
        "runs": [[start, start + len(split_y) - 1]],
        "first_date": "2015-01-02",
        "last_date": "2017-06-30",
        "positive_rate": float(split_y.mean()),
    }


def _skilled(
    y: np.ndarray, signal: np.ndarray, skill: float, rng: np.random.Generator
) -> np.ndarray:
    """Logits that rank positives higher by `skill` standard deviations, around the base rate."""
    z = skill * (y - y.mean()) / y.std() + signal * 0.3 + rng.normal(0, 0.5, len(y))
    return math.log(0.2 / 0.8) + 0.5 * z


SIZES = {"50K": 50_000, "500K": 500_000, "5M": 5_000_000}


def _trial(number: int, value: float, logits: np.ndarray, size: int, **attrs: Any) -> FrozenTrial:
    trial = create_trial(
        value=value,
        params={"arch": "d32-l2-h4-f2"},
        distributions={"arch": CategoricalDistribution(["d32-l2-h4-f2"])},
        user_attrs={
            "param_count": size,
            "val_bce": value,
            "best_epoch": 3,
            "epochs_run": 8,
            "stop_reason": "early_stopping",
            "val_pred_std": 0.05,
            ATTR_VAL_LOGITS: encode_logits(logits),
            **attrs,
        },
    )
    trial.number = number
    return trial


def _study(
    experiment: str,
    budget: str,
    *,
    skill: float,
    definition: dict[str, str] | None = None,
    evaluated: bool = True,
    trial_attrs: dict[str, Any] | None = None,
) -> StoredStudy:
    rng = np.random.default_rng(abs(hash((experiment, budget))) % 2**32)
    name = f"{experiment}-{budget.lower()}-h1"
    trials = []
    for number in range(3):
        logits = _skilled(VAL_Y, SIGNAL_VAL, skill - 0.1 * number, rng)
        value = float(np.mean(np.logaddexp(0, logits) - VAL_Y * logits))
        trials.append(_trial(number, value, logits, SIZES[budget], **(trial_attrs or {})))
    attrs: dict[str, Any] = {
        ATTR_SPEC: {
            "experiment": experiment,
            "budget": budget,
            "horizon": 1,
            "objective": {"metric": "val_bce"},
        },
        ATTR_N_TRIALS: 3,
        ATTR_FIELDS: definition or _definition(experiment, budget),
        ATTR_WINDOWS: {
            "horizon": 1,
            "train": {"n": 3000, "positive_rate": 0.2},
            "val": _windows(VAL_Y, 1000),
            "test": _windows(TEST_Y, 2000),
        },
        ATTR_BASELINES: {
            "base_rate": {
                "val": encode_logits(np.full(N, math.log(0.25))),
                "test": encode_logits(np.full(N, math.log(0.25))),
                "details": {"train_rate": 0.2},
            },
            "logistic": {
                "val": encode_logits(_skilled(VAL_Y, SIGNAL_VAL, 0.3, rng)),
                "test": encode_logits(_skilled(TEST_Y, SIGNAL_TEST, 0.3, rng)),
                "details": {"C": 1.0},
            },
        },
    }
    if evaluated:
        best = min(trials, key=lambda t: t.value or 0.0)
        for seed in range(2):
            test_logits = _skilled(TEST_Y, SIGNAL_TEST, skill, rng)
            attrs[f"{ATTR_EVAL_PREFIX}{best.number}.{seed}"] = {
                "trial": best.number,
                "seed_index": seed,
                "seed": seed,
                "arch": "d32-l2-h4-f2",
                "param_count": SIZES[budget],
                "refit": False,
                "best_epoch": 3,
                "epochs_run": 8,
                "val": {"bce": best.value, "auc": 0.7},
                "test": {
                    "bce": float(np.mean(np.logaddexp(0, test_logits) - TEST_Y * test_logits)),
                    "auc": 0.7,
                },
                "test_logits": encode_logits(test_logits),
                "wall_time_s": 1.0,
            }
    return StoredStudy(name=name, direction="minimize", user_attrs=attrs, trials=trials)


def test_the_report_asks_for_an_experiment_when_the_storage_holds_several(
    tmp_path: Path,
) -> None:
    # given the validation study of `make run` beside a scaling experiment
    stored = [
        _study("validation", "50K", skill=0.5),
        _study("scaling", "50K", skill=0.5),
        _study("scaling", "500K", skill=0.5),
    ]
    # when reported without naming one, then it refuses and lists them
    with pytest.raises(
        SeveralExperimentsError,
        match=r"several experiments: scaling \(2 studies\), validation \(1 study\).*--experiment",
    ):
        write_report(stored, tmp_path, storage="s", plots=False, n_resamples=50)
    # and with one named, only its studies are fitted
    report = write_report(
        stored, tmp_path, storage="s", experiment="scaling", plots=False, n_resamples=50
    )
    assert [r.name for r in report.studies] == ["scaling-50k-h1", "scaling-500k-h1"]
    # and a name in other casing is the same experiment (experiment names are lower-case)
    again = write_report(
        stored, tmp_path, storage="s", experiment="Scaling", plots=False, n_resamples=50
    )
    assert [r.name for r in again.studies] == ["scaling-50k-h1", "scaling-500k-h1"]
    # and one the storage does not hold is refused, naming those it does
    with pytest.raises(
        NothingToReportError,
        match=r"no study of experiment 'scalng'.*experiments: scaling \(2 studies\), valid",
    ):
        write_report(stored, tmp_path, storage="s", experiment="scalng", plots=False)


def test_studies_that_differ_in_more_than_the_budget_are_not_fitted_together(
    tmp_path: Path,
) -> None:
    # given one budget retrained with more epochs than the others
    stored = [
        _study("scaling", "50K", skill=0.5),
        _study(
            "scaling",
            "500K",
            skill=0.5,
            definition=_definition("scaling", "500K", **{"training.epochs": "30"}),
        ),
    ]
    # then the report refuses, naming the field and each study's value
    with pytest.raises(
        IncomparableStudiesError,
        match=r"training\.epochs: scaling-50k-h1: 4, scaling-500k-h1: 30",
    ):
        write_report(stored, tmp_path, storage="s", plots=False, n_resamples=50)


def test_the_final_evaluation_is_the_headline_with_paired_tests_on_test(tmp_path: Path) -> None:
    # given three evaluated budgets whose models have real skill on test
    stored = [_study("scaling", b, skill=s) for b, s in (("50K", 1.0), ("500K", 1.2), ("5M", 1.4))]
    # when reported
    report = write_report(stored, tmp_path, storage="s", plots=False, n_resamples=200)
    # then each budget has a final model on test, chosen on validation, with its seeds' spread
    (final,) = report.finals
    assert [m.budget for m in final.models] == ["50K", "500K", "5M"]
    assert all(m.seeds == 2 and math.isfinite(m.test_bce_sd) for m in final.models)
    # the skilled models beat the reference on the same test windows, by the paired test
    assert all(m.skill.vs_base_rate.p_lower < 0.025 for m in final.models)
    assert all("reference" in m.beats for m in final.models)
    assert set(final.models[0].skill.vs_baselines) == {"logistic"}
    assert final.fit is not None and final.fit.split == "test"
    summary = report.summary.read_text()
    answer = summary.split("## The answer")[1].split("##")[0]
    assert "**Horizon 1, on test**" in answer
    assert "50K's final model is better than the reference (" in answer
    assert "Across budgets 50K, 500K, 5M: " in answer and "test windows" in answer
    assert "## Final evaluation on test" in summary
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert analysis["final"][0]["models"][0]["vs_base_rate"]["test"].startswith("paired")


def test_without_an_evaluation_the_answer_says_the_numbers_are_validation(
    tmp_path: Path,
) -> None:
    stored = [_study("scaling", b, skill=1.0, evaluated=False) for b in ("50K", "500K")]
    report = write_report(stored, tmp_path, storage="s", plots=False, n_resamples=50)
    assert report.finals == []
    assert "run `finscale evaluate SPEC`" in report.summary.read_text()


def test_trials_still_improving_or_constant_are_flagged_in_the_answer(tmp_path: Path) -> None:
    # given a budget whose trials all stopped at their last epoch, predicting a constant
    lazy = {"best_epoch": 4, "epochs_run": 4, "stop_reason": "max_epochs", "val_pred_std": 1e-4}
    stored = [
        _study("scaling", "50K", skill=1.0),
        _study("scaling", "500K", skill=1.0, trial_attrs=lazy),
    ]
    report = write_report(stored, tmp_path, storage="s", plots=False, n_resamples=50)
    flags = {f.study: f for f in report.flags}
    assert flags["scaling-50k-h1"].sentences() == []
    lazy_flags = flags["scaling-500k-h1"]
    assert lazy_flags.best_still_improving and lazy_flags.best_constant
    answer = report.summary.read_text().split("## The answer")[1].split("##")[0]
    assert "**Caution** — scaling-500k-h1: its best trial was still improving" in answer
    assert "near-constant probability" in answer


def test_a_budget_that_lost_most_of_its_trials_is_flagged() -> None:
    study = _study("scaling", "5M", skill=1.0)
    failed = [
        create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": "out of memory"})
        for _ in range(4)
    ]
    for i, t in enumerate(failed):
        t.number = 3 + i
    result = study_result(
        StoredStudy(study.name, study.direction, study.user_attrs, [*study.trials, *failed])
    )
    flags = study_flags(result)
    assert flags.mostly_lost and "4 of 7 finished trials were pruned or failed" in " ".join(
        flags.sentences()
    )


def test_a_final_model_of_one_seed_is_not_called_a_mean_over_seeds() -> None:
    from finscale.report.answer import _over_seeds

    assert _over_seeds([1]) == "that of its one run"
    assert _over_seeds([2]) == "the mean over its 2 seeds' runs"
    assert _over_seeds([1, 3]) == "the mean over its 1–3 seeds' runs"
