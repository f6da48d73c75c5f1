"""`finscale report`: the scaling fit and its joint bootstrap recover known laws from stored
window predictions, the files hold every trial and each study's best, and partial, foreign and
empty storages are handled."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState
from scipy import optimize

from finscale.hpo.read import read_studies
from finscale.hpo.storage import open_storage
from finscale.predictions import encode_labels, encode_logits
from finscale.records import ATTR_N_TRIALS, ATTR_SPEC
from finscale.records import TRIAL_VAL_LABELS as ATTR_VAL_LABELS
from finscale.records import TRIAL_VAL_LOGITS as ATTR_VAL_LOGITS
from finscale.report import NothingToReportError, write_report
from finscale.report.collect import study_result
from finscale.report.export import write_exports
from finscale.report.scaling import ScalingFit, SlopeFit, fit_exponent, scaling
from finscale.spec import ExperimentSpec, load_spec
from tests.conftest import REPO
from tests.conftest import run_cli as run

BUDGETS = {"50K": 50_000, "200K": 200_000, "800K": 800_000, "3M": 3_200_000}
N_WINDOWS = 400


def window_labels(positives: int = N_WINDOWS // 2) -> np.ndarray:
    """The validation labels every study of a horizon shares."""
    labels = np.zeros(N_WINDOWS)
    labels[np.random.default_rng(99).choice(N_WINDOWS, positives, replace=False)] = 1.0
    return labels


def logits_with_bce(target: float, labels: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Logits whose mean BCE on `labels` is `target`: a margin s shifted by per-window noise."""
    sign = 2 * labels - 1

    def excess(s: float) -> float:
        return float(np.logaddexp(0.0, -(s + sign * noise)).mean()) - target

    s = optimize.brentq(excess, -60.0, 60.0, xtol=1e-12)
    return sign * s + noise


def _storage(tmp_path: Path) -> tuple[str, optuna.storages.RDBStorage]:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    return url, open_storage(url, heartbeat_interval_s=5, heartbeat_grace_s=10, max_retries=0)


def _experiment(budgets: list[str], horizons: list[int], metric: str = "val_bce") -> ExperimentSpec:
    base = load_spec(REPO / "configs" / "experiments" / "validation.yaml")
    assert isinstance(base, ExperimentSpec)
    direction = "minimize" if metric == "val_bce" else "maximize"
    return ExperimentSpec.model_validate(
        {
            **base.model_dump(),
            "name": "synth",
            "budgets": budgets,
            "horizons": horizons,
            "objective": {"metric": metric, "direction": direction},
        }
    )


def add_study(
    storage: optuna.storages.RDBStorage,
    spec_fields: dict[str, Any] | None,
    name: str,
    values: list[float],
    *,
    direction: str = "minimize",
    param_count: int = 100_000,
    se: float | None = 0.01,
    n_trials: int | None = None,
    open_trials: int = 0,
    failed: int = 0,
    positive_rate: float | None = None,
    labels: np.ndarray | None = None,
    window_noise: float = 0.01,
) -> None:
    """A study as a finscale worker leaves it: the spec in its attrs, one trial per value; with
    `labels`, each trial also stores validation logits whose mean BCE is its value (noise shared
    by every trial of every study, plus `window_noise` of the trial's own)."""
    study = optuna.create_study(storage=storage, study_name=name, direction=direction)
    if spec_fields is not None:
        study.set_user_attr(ATTR_SPEC, spec_fields)
        study.set_user_attr(ATTR_N_TRIALS, n_trials or len(values) + failed)
    archs = [f"d{16 * (i + 1)}-l{1 + i % 3}-h{2 * (1 + i % 2)}-f2" for i in range(len(values) + 4)]
    dists = {
        "arch": CategoricalDistribution(archs),
        "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        "dropout": FloatDistribution(0.0, 0.3),
    }
    rng = np.random.default_rng(len(values))
    shared = np.random.default_rng(7).normal(0, 0.3, N_WINDOWS)  # the hard windows
    own = np.random.default_rng(zlib.crc32(name.encode()))
    for i, value in enumerate(values):
        stored = {}
        if labels is not None:
            noise = shared + own.normal(0, window_noise, N_WINDOWS)
            stored = {
                ATTR_VAL_LOGITS: encode_logits(logits_with_bce(value, labels, noise)),
                ATTR_VAL_LABELS: encode_labels(labels),
            }
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                params={
                    "arch": archs[i],
                    "learning_rate": float(10 ** rng.uniform(-4, -2)),
                    "dropout": float(rng.uniform(0, 0.3)),
                },
                distributions=dists,
                user_attrs={
                    "param_count": int(param_count * (1 + 0.01 * i)),
                    "val_bce": value,
                    **({"val_bce_se": se, "val_auc_se": se} if se is not None else {}),
                    **({"val_positive_rate": positive_rate} if positive_rate else {}),
                    "epochs_run": 4,
                    "stop_reason": "max_epochs",
                    **stored,
                },
            )
        )
    for _ in range(failed):
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.FAIL,
                params={"arch": archs[0], "learning_rate": 1e-3, "dropout": 0.1},
                distributions=dists,
                user_attrs={"fail_reason": "diverged"},
            )
        )
    for _ in range(open_trials):
        study.enqueue_trial({"arch": archs[0], "learning_rate": 1e-3, "dropout": 0.1})


def synthetic_experiment(
    storage: optuna.storages.RDBStorage,
    *,
    alpha: float,
    horizons: tuple[int, ...] = (1, 5),
    budgets: tuple[str, ...] = ("50K", "200K", "800K"),
    trials: int = 6,
    noise: float = 0.01,
    seed: int = 0,
    metric: str = "val_bce",
    se: float = 0.01,
    predictions: bool = True,
) -> None:
    """Studies whose best error follows 0.6 · N^(-alpha), with trial-to-trial spread; with
    `predictions` (BCE only) every trial stores window logits scoring its value, with
    trial-specific window noise `se`."""
    rng = np.random.default_rng(seed)
    spec = _experiment(list(budgets), list(horizons), metric)
    labels = window_labels() if predictions and metric == "val_bce" else None
    for s in spec.expand():
        n = BUDGETS[s.budget]
        law = 0.6 * n ** (-alpha) * (1 + 0.1 * s.horizon / 5)
        errors = law * (1 + np.abs(rng.normal(0, noise, size=trials)))
        errors[0] = law  # the best trial sits on the law
        values = errors if metric == "val_bce" else 1 - errors
        add_study(
            storage,
            json.loads(s.model_dump_json()),
            s.name,
            [float(v) for v in values],
            direction=s.objective.direction,
            param_count=n,
            se=se,
            labels=labels,
            window_noise=se,
        )


# --- the fit -------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [-0.05, 0.0, 0.03, 0.12, 0.3])
@pytest.mark.parametrize("floor", [0.0, 0.3])
def test_an_exact_law_above_a_floor_is_recovered(alpha: float, floor: float) -> None:
    n = np.array([5e4, 2e5, 8e5, 3.2e6])
    fit = fit_exponent(n, floor + 0.4 * n ** (-alpha))
    assert fit.alpha == pytest.approx(alpha, abs=1e-5)
    if alpha != 0:  # a flat law leaves E and A free, only E + A is fixed
        assert fit.floor == pytest.approx(floor, abs=1e-5)
        assert fit.predict(1e5) == pytest.approx(floor + 0.4 * 1e5 ** (-alpha), rel=1e-5)
    assert fit.r2 == pytest.approx(1.0) and fit.n_points == 4


def test_a_noisy_law_is_recovered_within_tolerance() -> None:
    rng = np.random.default_rng(3)
    n = np.geomspace(1e4, 1e8, 9)
    losses = 0.3 + 0.8 * n ** (-0.2) + rng.normal(0, 0.0005, size=len(n))
    fit = fit_exponent(n, losses)
    assert fit.alpha == pytest.approx(0.2, abs=0.03)
    assert 0.95 < fit.r2 < 1.0


@pytest.mark.parametrize(
    ("params", "losses", "message"),
    [
        ([1e5, 2e5], [0.3, 0.2], "three distinct"),
        ([1e5, 1e5, 2e5], [0.3, 0.2, 0.1], "three distinct"),
        ([1e5, 2e5, 4e5], [0.3, -0.1, 0.1], "≥ 0"),
        ([1e5, 2e5, 4e5], [0.3], "3 parameter counts but 1"),
    ],
)
def test_a_fit_without_enough_good_points_says_why(
    params: list[float], losses: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_exponent(params, losses)


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [(-0.02, -0.001, "bigger is better"), (0.001, 0.02, "bigger is worse"),
     (-0.01, 0.01, "no detectable effect"), (float("nan"), float("nan"), "untested")],
)  # fmt: skip
def test_the_verdict_reads_the_interval_of_the_slope(low: float, high: float, verdict: str) -> None:
    slope = SlopeFit(per_decade=(low + high) / 2, intercept=0.4, low=low, high=high,
                     share_negative=0.5, n_resamples=100)  # fmt: skip
    nan = (float("nan"),) * 2
    fit = ScalingFit(budgets=("a", "b"), m=3, params=(1e5, 1e6), losses=(0.3, 0.3),
                     losses_low=nan, losses_high=nan, slope=slope, exponent=None,
                     largest_vs_smallest=None, block_length=5, n_windows=400)  # fmt: skip
    assert fit.verdict == verdict
    assert fit.sentence.startswith(verdict if verdict != "untested" else "+")


def _answers(tmp_path: Path, **kwargs: Any) -> list[Any]:
    _url, storage = _storage(tmp_path)
    synthetic_experiment(storage, **kwargs)
    results = [study_result(s) for s in read_studies(storage)]
    return scaling(results, n_resamples=400, seed=0)


def _true_slope(alpha: float, horizon: int, budgets: tuple[str, ...]) -> float:
    n = np.array([BUDGETS[b] for b in budgets], dtype=float)
    law = 0.6 * n ** (-alpha) * (1 + 0.1 * horizon / 5)
    return float(np.polyfit(np.log10(n), law, 1)[0])


def test_the_bootstrap_intervals_cover_the_true_law(tmp_path: Path) -> None:
    budgets = ("50K", "200K", "800K", "3M")
    answers = _answers(tmp_path, alpha=0.12, noise=0.02, budgets=budgets)
    assert [a.horizon for a in answers] == [1, 5]
    for a in answers:
        assert a.scaling is not None and a.fit is not None and a.uncertainty is not None
        assert a.loss_name == "val_bce (from stored predictions)"
        assert a.scaling.m == 6  # every trial: each point is the best trial, on the law
        assert a.fit.alpha == pytest.approx(0.12, abs=2e-3)  # float16 logits
        assert a.uncertainty.low <= 0.12 <= a.uncertainty.high
        s = a.scaling.slope
        assert s.low < _true_slope(0.12, a.horizon, budgets) < s.high
        assert a.verdict == "bigger is better" and a.strength == a.verdict
        assert len(a.points) == 4 and all(len(p.top_losses) == 6 for p in a.points)
        assert all(p.skill is not None and p.skill.beats_base_rate for p in a.points)


def test_more_noise_gives_a_wider_interval_and_no_scaling_includes_zero(tmp_path: Path) -> None:
    # Noise of both kinds: trial-to-trial spread and each trial's own window noise.
    quiet = _answers(tmp_path / "a", alpha=0.0, noise=0.005, se=0.02, horizons=(1,))[0]
    noisy = _answers(tmp_path / "b", alpha=0.0, noise=0.1, se=0.5, horizons=(1,))[0]
    q, n = quiet.scaling.slope, noisy.scaling.slope
    assert n.high - n.low > 2 * (q.high - q.low)
    for s in (q, n):
        assert s.low < 0 < s.high
    assert quiet.verdict == noisy.verdict == "no detectable effect"


def test_without_stored_predictions_the_values_give_points_but_no_verdict(
    tmp_path: Path,
) -> None:
    answers = _answers(tmp_path, alpha=0.2, metric="val_auc", horizons=(1,))
    a = answers[0]
    assert a.direction == "maximize" and a.loss_name == "1 − val_auc (stored value)"
    assert a.fit is not None and a.fit.alpha == pytest.approx(0.2, abs=1e-5)
    assert a.scaling is not None and a.scaling.slope.per_decade < 0
    assert a.uncertainty is None and a.verdict == "untested"
    assert "trials hold no window-level predictions" in a.note


def test_the_bootstrap_is_seeded(tmp_path: Path) -> None:
    _url, storage = _storage(tmp_path)
    synthetic_experiment(storage, alpha=0.1, noise=0.05)
    results = [study_result(s) for s in read_studies(storage)]
    a = scaling(results, n_resamples=300, seed=7)[0].scaling
    b = scaling(results, n_resamples=300, seed=7)[0].scaling
    c = scaling(results, n_resamples=300, seed=8)[0].scaling
    assert a is not None and b is not None and c is not None
    assert a.slope == b.slope and a.exponent == b.exponent
    assert a.slope != c.slope


# --- the files -----------------------------------------------------------------------------------


def test_trials_csv_holds_figures_not_window_arrays_and_times_with_their_offset(
    tmp_path: Path,
) -> None:
    # Given a study whose trials store their validation logits and labels (as workers do),
    _, storage = _storage(tmp_path)
    (spec,) = _experiment(["50K"], [1]).expand()
    fields = json.loads(spec.model_dump_json())
    add_study(storage, fields, spec.name, [0.69, 0.68], labels=window_labels())
    results = [study_result(s) for s in read_studies(storage)]
    stored = results[0].trials[0]
    assert {ATTR_VAL_LOGITS, ATTR_VAL_LABELS} <= set(stored.user_attrs)
    # when the trials are exported,
    write_exports(results, tmp_path)
    frame = pd.read_csv(tmp_path / "trials.csv")
    # then no column holds a window array (they stay in the storage),
    assert ATTR_VAL_LOGITS not in frame.columns and ATTR_VAL_LABELS not in frame.columns
    encoded = frame.astype(str).apply(lambda c: c.str.match(r"(f16z?|bits):\d+:"))
    assert not encoded.any().any()
    assert "val_bce" in frame.columns
    # and the times are ISO 8601 with their UTC offset (Optuna's naive times are UTC).
    for column in ("datetime_start", "datetime_complete"):
        times = [datetime.fromisoformat(text) for text in frame[column]]
        assert all(t.utcoffset() == timedelta(0) for t in times), frame[column].tolist()
    assert stored.datetime_start is not None
    assert datetime.fromisoformat(frame["datetime_start"][0]) == stored.datetime_start.replace(
        tzinfo=UTC
    )


def test_the_report_files_hold_every_trial_and_each_studys_best(tmp_path: Path) -> None:
    url, storage = _storage(tmp_path)
    synthetic_experiment(storage, alpha=0.1, trials=6)
    out = tmp_path / "report"
    report = write_report(read_studies(storage), out, storage=url, n_resamples=200)

    frame = pd.read_csv(out / "trials.csv")
    assert len(frame) == 6 * 6
    assert set(frame["study"]) == {
        f"synth-{b}-h{h}" for b in ("50k", "200k", "800k") for h in (1, 5)
    }
    for column in ("state", "value", "arch", "d_model", "n_layers", "n_heads", "d_ff",
                   "param_count", "param_learning_rate", "param_dropout", "duration_s",
                   "val_bce", "val_bce_se", "epochs_run", "budget", "horizon"):  # fmt: skip
        assert column in frame.columns, column
    # The stored params alone give the architecture's dimensions.
    first = frame.iloc[0]
    assert first["arch"] == f"d{first['d_model']}-l{first['n_layers']}-h{first['n_heads']}-f2"
    assert (frame["state"] == "COMPLETE").all()

    rows = json.loads((out / "trials.json").read_text())
    assert len(rows) == len(frame)
    assert {r["trial"] for r in rows if r["study"] == "synth-50k-h1"} == set(range(6))

    best = json.loads((out / "best.json").read_text())
    assert set(best) == set(frame["study"])
    for name, record in best.items():
        values = frame.loc[frame["study"] == name, "value"]
        assert record["best"]["value"] == pytest.approx(values.min())
        assert record["best"]["architecture"]["param_count"] > 0
        assert record["partial"] is False and record["finished"] == record["n_trials"] == 6

    analysis = json.loads((out / "analysis.json").read_text())
    assert [s["horizon"] for s in analysis["scaling"]] == [1, 5]
    assert analysis["scaling"][0]["alpha"] == pytest.approx(0.1, abs=2e-3)
    assert analysis["scaling"][0]["verdict"] == "bigger is better"
    assert analysis["scaling"][0]["points"][0]["skill"]["vs_base_rate"]["lag"] >= 1

    for name in ("scaling-h1.png", "scaling-h5.png", "width-depth.png",
                 "history-synth-50k-h1.png"):  # fmt: skip
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    summary = (out / "summary.md").read_text()
    assert "## The answer" in summary
    a1 = report.scaling[0]
    assert f"α = {a1.fit.alpha:.3f}" in summary  # type: ignore[union-attr]
    assert f"{a1.uncertainty.low:.3f} to {a1.uncertainty.high:.3f}" in summary  # type: ignore[union-attr]
    assert "Across budgets 50K, 200K, 800K: bigger is better: " in summary
    assert "Partial experiment" not in summary
    assert "![scaling at horizon 1](scaling-h1.png)" in summary
    assert report.partial == []


def test_a_partial_experiment_is_reported_and_says_so(tmp_path: Path) -> None:
    url, storage = _storage(tmp_path)
    spec = _experiment(["50K", "200K", "800K"], [1])
    small, middle, large = (json.loads(s.model_dump_json()) for s in spec.expand())
    add_study(storage, small, "synth-50k-h1", [0.40, 0.41, 0.43], param_count=50_000)
    # Half-way: two finished (one failed), two waiting in the queue.
    add_study(storage, middle, "synth-200k-h1", [0.38], param_count=200_000, n_trials=4,
              open_trials=2, failed=1)  # fmt: skip
    # Started, nothing finished yet.
    add_study(storage, large, "synth-800k-h1", [], param_count=800_000, n_trials=3, open_trials=1)
    out = tmp_path / "report"
    report = write_report(read_studies(storage), out, storage=url, n_resamples=200)

    assert report.partial == ["synth-200k-h1", "synth-800k-h1"]
    summary = (out / "summary.md").read_text()
    assert "Partial experiment" in summary and "synth-200k-h1, synth-800k-h1" in summary
    assert "no completed trial yet in synth-800k-h1" in summary
    a = report.scaling[0]
    assert [p.budget for p in a.points] == ["50K", "200K"]
    assert a.scaling is not None and a.fit is None
    assert "two budgets: no exponent" in a.note
    best = json.loads((out / "best.json").read_text())
    assert best["synth-200k-h1"]["partial"] is True and best["synth-200k-h1"]["finished"] == 2
    assert best["synth-800k-h1"]["best"] is None
    frame = pd.read_csv(out / "trials.csv")
    assert sorted(frame.loc[frame["study"] == "synth-200k-h1", "state"]) == [
        "COMPLETE", "FAIL", "WAITING", "WAITING"
    ]  # fmt: skip


def test_one_budget_gives_no_fit_and_says_why(tmp_path: Path) -> None:
    url, storage = _storage(tmp_path)
    spec = _experiment(["50K"], [1])
    add_study(storage, json.loads(spec.expand()[0].model_dump_json()), "synth-50k-h1", [0.4, 0.5])
    report = write_report(read_studies(storage), tmp_path / "r", storage=url, plots=False)
    assert report.scaling[0].fit is None
    assert "1 budget with results; a fit needs two" in report.scaling[0].note
    assert "there is no fit" in report.summary.read_text()
    assert not list((tmp_path / "r").glob("*.png"))


@pytest.mark.parametrize(("best", "beats"), [(0.30, True), (0.40, False)])
def test_the_answer_says_whether_the_best_trials_beat_the_reference(
    tmp_path: Path, best: float, beats: bool
) -> None:
    # given trials that stored their labels but a study without a training rate (an early
    # release): the split's own rate stands in as the reference, and the answer says so
    url, storage = _storage(tmp_path)
    spec = _experiment(["50K", "200K"], [1])
    labels = window_labels(positives=62)  # 62/400 = 0.155 positive
    p = 62 / N_WINDOWS
    entropy = -(p * np.log(p) + (1 - p) * np.log(1 - p))  # the best constant's BCE, 0.4318
    for s, value in zip(spec.expand(), (best, best + 0.001), strict=True):
        add_study(storage, json.loads(s.model_dump_json()), s.name, [value, value + 0.01],
                  param_count=s.budget_params, labels=labels)  # fmt: skip
    report = write_report(read_studies(storage), tmp_path / "r", storage=url, plots=False)
    point = report.scaling[0].points[0]
    assert point.base_rate_loss == pytest.approx(entropy, abs=1e-9)
    assert point.skill is not None
    assert point.skill.vs_base_rate.mean == pytest.approx(best - entropy, abs=1e-3)
    assert point.skill.beats_base_rate is beats
    summary = report.summary.read_text()
    assert "the training rate was not stored, so this stricter bar stands in" in summary
    if beats:
        assert "50K's best trial is better than the reference (" in summary
        assert "No predictor on these windows" not in summary
    else:
        assert "50K's best trial is not distinguishable from the reference (" in summary
        assert "No predictor on these windows, transformer or baseline, is better" in summary


def test_a_study_finscale_did_not_set_up_is_exported_but_not_fitted(tmp_path: Path) -> None:
    url, storage = _storage(tmp_path)
    add_study(storage, None, "someone-elses", [0.3, 0.2])
    report = write_report(read_studies(storage), tmp_path / "r", storage=url, plots=False)
    assert report.scaling == []
    assert len(pd.read_csv(tmp_path / "r" / "trials.csv")) == 2
    assert "No scaling answer" in report.summary.read_text()


def test_an_empty_storage_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NothingToReportError, match=r"no studies in sqlite:///x\.db"):
        write_report([], tmp_path / "r", storage="sqlite:///x.db")
    assert not (tmp_path / "r").exists()


# --- the command ---------------------------------------------------------------------------------


def test_the_command_writes_the_report_of_the_configured_storage(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, storage = _storage(tmp_path)
    synthetic_experiment(storage, alpha=0.2, horizons=(1,))
    add_study(storage, None, "other", [0.3])
    env.setenv("FINSCALE_STORAGE_URL", url)
    out_dir = tmp_path / "r"
    args = ["report", "--out", str(out_dir), "--experiment", "synth", "--resamples", "200"]
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert "horizon 1, validation: bigger is better: " in out
    assert "exponent of the reducible loss α = 0.200" in out
    assert set(pd.read_csv(out_dir / "trials.csv")["study"]) == {
        "synth-50k-h1", "synth-200k-h1", "synth-800k-h1"
    }  # fmt: skip


def test_with_its_spec_the_report_names_the_studies_not_started(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, storage = _storage(tmp_path)
    spec = _experiment(["50K", "200K", "800K"], [1])
    spec_file = tmp_path / "synth.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    for s in spec.expand()[:2]:  # the 800K study has not been created yet
        add_study(storage, json.loads(s.model_dump_json()), s.name, [0.4, 0.41],
                  param_count=s.budget_params)  # fmt: skip
    add_study(storage, None, "unrelated", [0.3])
    env.setenv("FINSCALE_STORAGE_URL", url)
    out_dir = tmp_path / "r"
    args = ["report", "--spec", str(spec_file), "--out", str(out_dir), "--resamples", "100"]
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert "partial: synth-800k-h1 not started" in out
    summary = (out_dir / "summary.md").read_text()
    assert "1 of 3 have not started (synth-800k-h1)" in summary
    assert set(pd.read_csv(out_dir / "trials.csv")["study"]) == {"synth-50k-h1", "synth-200k-h1"}


@pytest.mark.parametrize("create", [True, False])
def test_the_command_on_an_empty_or_missing_storage_exits_2_with_a_message(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], create: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    if create:
        _storage(tmp_path)
    env.setenv("FINSCALE_STORAGE_URL", url)
    code, _out, err = run(["report", "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    assert "no studies in sqlite:///" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_the_command_names_a_missing_study(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, storage = _storage(tmp_path)
    add_study(storage, None, "only", [0.3])
    env.setenv("FINSCALE_STORAGE_URL", url)
    code, _out, err = run(["report", "--study", "nope", "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    assert "no study 'nope'" in err and "['only']" in err
