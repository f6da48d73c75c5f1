"""Search sanity: a study whose sampler chose no architecture (every trial forced or enqueued),
one that drew fewer architectures than its sampler's start-up phase, and one whose best trial is
a forced extreme are flagged, each with what to do; a healthy search is not. Studies are run for
real (Optuna's TPE sampler, trials enqueued the way a finscale worker enqueues the extremes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from finscale.hpo.read import read_studies
from finscale.hpo.storage import open_storage
from finscale.records import ATTR_N_TRIALS, ATTR_SPEC, TRIAL_FORCED
from finscale.report import write_report
from finscale.report.checks import StudyFlags, study_flags
from finscale.report.collect import study_result

ARCHS = ["d8-l4-h4-f4", "d24-l1-h4-f2", "d16-l1-h4-f2", "d16-l4-h4-f2", "d16-l2-h2-f2"]
EXTREMES = {"narrowest": ARCHS[0], "widest": ARCHS[1], "shallowest": ARCHS[2], "deepest": ARCHS[3]}


def _storage(tmp_path: Path) -> tuple[str, optuna.storages.RDBStorage]:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    return url, open_storage(url, heartbeat_interval_s=5, heartbeat_grace_s=10, max_retries=0)


def run_search(
    storage: optuna.storages.RDBStorage,
    budget: str,
    *,
    n_trials: int,
    forced: int,
    startup: int,
    ran: int | None = None,
    sampler: str = "tpe",
    enqueued: list[str] | None = None,
    loss: dict[str, float] | None = None,
) -> str:
    """A study set up as a finscale worker sets one up (spec stored, the first `forced` extremes
    enqueued with their names, `enqueued` architectures queued by hand), then `ran` trials (all
    of the budget by default) of an objective whose loss depends on the architecture."""
    name = f"search-{budget.lower()}-h1"
    spec: dict[str, Any] = {
        "experiment": "search",
        "budget": budget,
        "horizon": 1,
        "objective": {"metric": "val_bce"},
        "sampler": {"type": sampler, "seed": 3, "n_startup_trials": startup},
        "n_trials": n_trials,
    }
    chosen = (
        optuna.samplers.TPESampler(n_startup_trials=startup, seed=3)
        if sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=3)
    )
    study = optuna.create_study(storage=storage, study_name=name, sampler=chosen)
    study.set_user_attr(ATTR_SPEC, spec)
    study.set_user_attr(ATTR_N_TRIALS, n_trials)
    for extreme, arch in list(EXTREMES.items())[:forced]:
        study.enqueue_trial({"arch": arch}, user_attrs={TRIAL_FORCED: extreme})
    for arch in enqueued or []:
        study.enqueue_trial({"arch": arch})
    losses = loss or {}

    def objective(trial: optuna.Trial) -> float:
        arch = str(trial.suggest_categorical("arch", ARCHS))
        trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        value = losses.get(arch, 0.5) + 0.001 * trial.number  # earlier trials win ties
        trial.set_user_attr("param_count", 10_000 + 100 * ARCHS.index(arch))
        trial.set_user_attr("val_bce", value)
        return value

    study.optimize(objective, n_trials=n_trials if ran is None else ran)
    return name


def _flags(storage: optuna.storages.RDBStorage) -> dict[str, StudyFlags]:
    return {s.name: study_flags(study_result(s)) for s in read_studies(storage)}


def test_each_kind_of_failed_search_is_flagged_in_the_summary_and_analysis(
    tmp_path: Path,
) -> None:
    url, storage = _storage(tmp_path)
    # given: every trial forced (n_trials 4, four extremes); fewer sampled (2) than the
    # sampler's start-up (4); a forced extreme that beats every sampled trial; a healthy search
    only_forced = run_search(storage, "10K", n_trials=4, forced=4, startup=2)
    few = run_search(storage, "50K", n_trials=5, forced=3, startup=4)
    corner = run_search(
        storage, "200K", n_trials=8, forced=2, startup=2, loss={EXTREMES["widest"]: 0.1}
    )
    healthy = run_search(
        storage, "800K", n_trials=8, forced=2, startup=2, loss=dict.fromkeys(ARCHS[:2], 0.9)
    )

    report = write_report(
        read_studies(storage), tmp_path / "r", storage=url, plots=False, n_resamples=50
    )

    flags = {f.study: f for f in report.flags}
    assert flags[only_forced].no_search and (
        flags[only_forced].sampled,
        flags[only_forced].forced,
    ) == (0, 4)
    assert flags[few].few_sampled and not flags[few].no_search and flags[few].sampled == 2
    assert flags[corner].best_forced == "widest"
    assert not (flags[corner].no_search or flags[corner].few_sampled)
    assert not (flags[healthy].no_search or flags[healthy].few_sampled)
    assert flags[healthy].best_forced is None and flags[healthy].sentences() == []

    answer = report.summary.read_text().split("## The answer")[1].split("\n## ")[0]
    assert (
        f"{only_forced}: the sampler chose no architecture: all 4 finished trials were forced "
        "extremes or enqueued, so this budget was not searched; raise n_trials to at least 6 "
        "(4 forced + 2 start-up)"
    ) in answer
    assert (
        f"{few}: only 2 of its 5 finished trials had an architecture drawn by the sampler, fewer "
        "than sampler.n_startup_trials (4), so the grid was barely explored; raise n_trials to "
        "at least 7 (3 forced + 4 start-up)"
    ) in answer
    assert (
        f'{corner}: its best trial is the forced extreme "widest", not one the sampler drew'
        in answer
    )
    assert "widen the grid past that edge" in answer
    assert healthy not in answer

    stored = {
        f["study"]: f for f in json.loads((tmp_path / "r" / "analysis.json").read_text())["flags"]
    }
    assert stored[only_forced]["no_search"] is True
    assert stored[few]["few_sampled"] is True and stored[few]["startup_trials"] == 4
    assert stored[corner]["best_forced"] == "widest"
    assert not any(stored[healthy][k] for k in ("no_search", "few_sampled", "best_forced"))
    assert stored[healthy]["sentences"] == []


def test_trials_enqueued_by_hand_with_an_architecture_are_not_the_samplers(tmp_path: Path) -> None:
    _, storage = _storage(tmp_path)
    name = run_search(storage, "10K", n_trials=3, forced=1, startup=0, enqueued=ARCHS[3:5])
    flags = _flags(storage)[name]
    assert flags.no_search and flags.forced == 3
    assert "raise n_trials to at least 4 (3 forced + 1)" in " ".join(flags.sentences())


def test_a_best_trial_enqueued_by_hand_is_named_as_such(tmp_path: Path) -> None:
    _, storage = _storage(tmp_path)
    name = run_search(
        storage, "10K", n_trials=6, forced=0, startup=2, enqueued=[ARCHS[4]], loss={ARCHS[4]: 0.1}
    )
    flags = _flags(storage)[name]
    assert flags.best_forced == "enqueued" and not flags.few_sampled
    assert "its best trial is a trial enqueued with its architecture fixed" in flags.sentences()[0]


def test_a_study_that_has_not_spent_its_budget_is_told_to_wait(tmp_path: Path) -> None:
    _, storage = _storage(tmp_path)
    # given: 3 forced trials finished of a budget of 10 (start-up 2): the search comes next
    name = run_search(storage, "10K", n_trials=10, forced=3, startup=2, ran=3)
    flags = _flags(storage)[name]
    assert flags.no_search
    assert "has not spent its budget yet" in flags.sentences()[0]


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_the_start_up_flag_applies_to_tpe_only(tmp_path: Path, sampler: str) -> None:
    _, storage = _storage(tmp_path)
    name = run_search(storage, "10K", n_trials=4, forced=1, startup=5, sampler=sampler)
    flags = _flags(storage)[name]
    assert flags.sampled == 3 and not flags.no_search
    assert flags.few_sampled == (sampler == "tpe")
    assert (flags.startup_trials is None) == (sampler == "random")
