"""The baselines beside every budget: fitted on training windows only, checked against an
independent computation on toy data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from finscale.train.baselines import BASELINES, C_GRID, fit_baselines, window_features

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
    assert c in C_GRID
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
    assert first["gbt"].details["n_trees"] >= 1
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
