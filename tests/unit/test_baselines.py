"""The baselines beside every budget: fitted on training windows only, checked against an
independent computation on toy data; their tuned values are minima inside what was searched, on
toy data that push them out of the first grid and on the shipped sample's two markets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from finscale.data import build_datasets, load_inputs
from finscale.hpo.inputs import load_study_data
from finscale.spec import load_studies
from finscale.train.baselines import (
    BASELINES,
    C_LIMITS,
    MAX_TREES,
    choose_c,
    cv_log_loss,
    fit_baselines,
    window_features,
)
from tests.conftest import REPO

L, H, C = 30, 3, 4


def toy(
    *, rows: int = 1400, seed: int = 0, noise: float = 0.0
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Features of random walks' increments; the label of a window is whether the last day's
    first feature (plus `noise`) is high. Train, validation and test regions in time order."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, C)).astype("float32")
    n = rows - L - H + 1
    last = features[L - 1 : L - 1 + n, 0] + noise * rng.normal(size=n)
    labels = (last > 0.8).astype("float32")
    starts = np.arange(n)
    splits = {"train": starts[:900], "val": starts[960:1160], "test": starts[1220:]}
    return features, labels, splits


def _loop_design(features: np.ndarray, starts: np.ndarray) -> np.ndarray:
    rows = []
    for s in starts:
        window = features[s : s + L].astype("float64")
        rows.append(
            np.concatenate([window[-1], window[-5:].mean(0), window[-20:].mean(0),
                            window[-1] - window[0]])
        )  # fmt: skip
    return np.array(rows)


def test_window_features_match_a_plain_loop() -> None:
    features, _, splits = toy()
    design = window_features(features, splits["val"], context_length=L)
    assert design.shape == (len(splits["val"]), 4 * C)
    np.testing.assert_allclose(design, _loop_design(features, splits["val"]), rtol=1e-9, atol=1e-9)


def test_the_baselines_match_an_independent_fit_and_see_no_validation_label() -> None:
    features, labels, splits = toy(noise=0.5)
    got = fit_baselines(features, labels, context_length=L, horizon=H, seed=0, **splits)
    assert tuple(got) == BASELINES

    rate = float(labels[splits["train"]].astype("float64").mean())
    assert got["base_rate"].details["train_rate"] == pytest.approx(rate)
    np.testing.assert_allclose(got["base_rate"].val, np.log(rate / (1 - rate)))

    c = got["logistic"].details["C"]
    assert 10.0 ** C_LIMITS[0] <= c <= 10.0 ** C_LIMITS[1]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    model.fit(_loop_design(features, splits["train"]), labels[splits["train"]])
    for split in ("val", "test"):
        expected = model.decision_function(_loop_design(features, splits[split]))
        np.testing.assert_allclose(getattr(got["logistic"], split), expected, rtol=1e-6, atol=1e-6)

    # Validation and test labels never enter: flipping them changes nothing.
    flipped = labels.copy()
    for split in ("val", "test"):
        flipped[splits[split]] = 1 - flipped[splits[split]]
    again = fit_baselines(features, flipped, context_length=L, horizon=H, seed=0, **splits)
    for name in BASELINES:
        np.testing.assert_array_equal(again[name].val, got[name].val)
        np.testing.assert_array_equal(again[name].test, got[name].test)


def test_a_label_of_the_last_day_is_learned_almost_perfectly_and_deterministically() -> None:
    features, labels, splits = toy()
    first = fit_baselines(features, labels, context_length=L, horizon=H, seed=3, **splits)
    second = fit_baselines(features, labels, context_length=L, horizon=H, seed=3, **splits)
    y = labels[splits["val"]]
    assert roc_auc_score(y, first["logistic"].val) > 0.99
    assert roc_auc_score(y, first["gbt"].val) > 0.97
    # the tail's loss still falls at the first cap of 200 trees: more were added
    assert 200 < first["gbt"].details["n_trees"] <= MAX_TREES
    for name in BASELINES:
        np.testing.assert_array_equal(first[name].val, second[name].val)
    assert len(first["gbt"].test) == len(splits["test"])


def test_without_a_test_split_the_test_logits_are_empty() -> None:
    features, labels, splits = toy(noise=1.0)
    got = fit_baselines(features, labels, context_length=L, horizon=H,
                        train=splits["train"], val=splits["val"])  # fmt: skip
    assert all(len(b.test) == 0 for b in got.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("one class", "one class only"),
        ("nan label", "labels must be 0 or 1"),
        ("past the end", "val window starts must lie in"),
    ],
)
def test_bad_windows_are_refused_with_the_reason(change: str, message: str) -> None:
    features, labels, splits = toy()
    if change == "one class":
        labels = labels.copy()
        labels[splits["train"]] = 0
    elif change == "nan label":
        labels = labels.copy()
        labels[splits["val"][3]] = np.nan
    else:
        splits["val"] = np.append(splits["val"], len(labels) + 5)
    with pytest.raises(ValueError, match=message):
        fit_baselines(features, labels, context_length=L, horizon=H, **splits)


# --- tuned values inside what was searched ---------------------------------------------------


def _is_interior_minimum(x: np.ndarray, y: np.ndarray, c: float, loss: float, gap: int) -> bool:
    """C's cross-validated loss, and a worse one half a decade either side."""
    assert cv_log_loss(x, y, c=c, gap=gap) == pytest.approx(loss)
    return all(cv_log_loss(x, y, c=c * f, gap=gap) > loss for f in (10**-0.5, 10**0.5))


@pytest.mark.parametrize(
    ("first_decades", "where"),
    [((-7, -6, -5), "above"), ((0, 1, 2), "below")],
    ids=["first-decades-too-strong", "first-decades-too-weak"],
)
def test_the_c_search_widens_past_its_first_decades_until_the_best_is_inside(
    first_decades: tuple[float, ...], where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given windows whose best C (about 10^-2.5 here) lies beyond the decades searched first
    monkeypatch.setattr("finscale.train.baselines.C_GRID", first_decades)
    features, labels, _ = toy(noise=6.0, rows=2400)
    train = np.arange(2000)
    x = window_features(features, train, context_length=L)
    y = labels[train].astype("float64")
    # when C is chosen
    c, loss = choose_c(x, y, gap=L + H)
    # then the search went past the first decades, to a minimum with worse neighbours
    assert c > 10.0 ** max(first_decades) if where == "above" else c < 10.0 ** min(first_decades)
    assert _is_interior_minimum(x, y, c, loss, L + H)


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("data")
    build_datasets(load_inputs("sample", kinds=["a25"]), data_dir=directory)
    build_datasets(load_inputs("sample", ticker="IXIC", kinds=["a25"]), data_dir=directory)
    return directory


@pytest.mark.parametrize("experiment", ["sample-scaling", "nasdaq-scaling"])
def test_on_the_shipped_sample_the_tuned_values_are_inside_their_search(
    experiment: str, sample_data: Path
) -> None:
    spec = load_studies(REPO / "configs" / "experiments" / f"{experiment}.yaml")[0]
    prepared = load_study_data(spec, sample_data).prepared
    splits, span = prepared.splits, spec.model.context_length + spec.horizon
    fitted = fit_baselines(
        prepared.features,
        prepared.windows.labels,
        context_length=spec.model.context_length,
        horizon=spec.horizon,
        train=splits.train,
        val=splits.val,
        test=splits.test,
    )
    chosen = fitted["logistic"].details
    x = window_features(prepared.features, splits.train, context_length=spec.model.context_length)
    y = prepared.windows.labels[splits.train].astype("float64")
    # the logistic C: a minimum with a worse C half a decade either side (the grid of 1e-3 … 10
    # it replaced stopped at 1e-3, its loss still falling; the optimum is near 3e-4)
    assert _is_interior_minimum(x, y, float(chosen["C"]), float(chosen["cv_log_loss"]), span)
    assert math.log10(float(chosen["C"])) < -3
    # the trees: early stopping found its best number before the cap, after more than one
    assert 1 < int(fitted["gbt"].details["n_trees"]) < MAX_TREES
