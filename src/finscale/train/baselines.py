"""Simple models beside every budget, on exactly the windows, split and labels of the study:
what a transformer has to beat before its size matters.

- `base_rate`: the training split's positive rate for every window: an honest predictor (it
  sees no validation label). The report also shows the validation split's own-rate entropy, the
  best constant in hindsight, as a stricter bar.
- `logistic`: standardized window features, L2 logistic regression; C chosen by forward-chaining
  cross-validation on the training windows (log loss; a purge of one window span between each
  fold's training and validation windows), on decades from `C_GRID`, widened a decade at a time
  while the best C is at an end (within `C_LIMITS`), then refined to half a decade: the chosen C
  is a minimum with a worse neighbour on each side. (On the S&P 500 sample the optimum is near
  3e-4, below the former grid's end of 1e-3.)
- `gbt`: scikit-learn's HistGradientBoostingClassifier; the number of trees chosen by early
  stopping on the last `TAIL_SHARE` of training windows (after a purge of one span), the cap
  doubled while the best number reaches it (up to `MAX_TREES`), then refit on all training
  windows with that number.

A window's features are its last day's features, the means of its last 5 and 20 days, and the
change from its first day to its last (4·C columns). Nothing here reads a validation or test
label. Pass the features the model trains on (normalized with training statistics); the scaler
of the logistic regression is fitted on training windows only either way.

Speed: ~3,300 training windows × 25 features fit in about 2 s on one core. The fit runs on one
thread: OpenMP's busy-waiting threads made the trees six times slower on a shared machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

BASELINES = ("base_rate", "logistic", "gbt")
# Inverse L2 strength on standardized features: the decades searched first, as powers of ten,
# and how far the search may widen (at 1e-8 the model is a constant; past 1e4, unregularized).
C_GRID: tuple[float, ...] = (-4, -3, -2, -1, 0)
C_LIMITS: tuple[float, float] = (-8, 4)
MAX_TREES = 400
CV_FOLDS = 4
TAIL_SHARE = 0.15  # of training windows, for the trees' early stopping
MEAN_DAYS = (5, 20)
_GBT = {  # modest trees: a few thousand noisy windows
    "learning_rate": 0.1,
    "max_iter": 200,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "n_iter_no_change": 20,
}
_EPS = 1e-7


@dataclass(frozen=True, eq=False)
class Baseline:
    """One baseline's logits on the validation and test windows, in the order of their starts."""

    name: str
    val: np.ndarray  # (n_val,) float64 logits
    test: np.ndarray  # (n_test,) float64 logits
    details: dict[str, float | int | str] = field(default_factory=dict)  # what training chose


def window_features(features: np.ndarray, starts: np.ndarray, *, context_length: int) -> np.ndarray:
    """The design matrix of the windows at `starts`: (n, 4·C) float64.

    Columns: the last day's features, the mean of the last 5 days, of the last 20 days (or of the
    whole context when shorter), and last minus first day.
    """
    x = np.asarray(features, dtype="float64")
    s = np.asarray(starts, dtype="int64")
    last = s + context_length - 1
    cumulative = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    parts = [x[last]]
    for days in MEAN_DAYS:
        k = min(days, context_length)
        parts.append((cumulative[last + 1] - cumulative[last + 1 - k]) / k)
    parts.append(x[last] - x[s])
    return np.concatenate(parts, axis=1)


def _logits(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(q) - np.log1p(-q))


def _forward_folds(n: int, *, folds: int, gap: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over n time-ordered samples: train on all before a block, skip
    `gap`, validate on the block."""
    size = n // (folds + 1)
    out = []
    for f in range(1, folds + 1):
        begin = f * size
        end = n if f == folds else begin + size
        train = np.arange(0, max(begin - gap, 0))
        if len(train) and end > begin:
            out.append((train, np.arange(begin, end)))
    return out


def _logistic(c: float, seed: int) -> Pipeline:
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed)
    )


def cv_log_loss(x: np.ndarray, y: np.ndarray, *, c: float, gap: int, seed: int = 0) -> float:
    """The mean log loss of the logistic baseline with this C over forward-chaining folds of
    the training windows (each fold's training windows end `gap` windows before its own)."""
    losses = []
    for tr, va in _forward_folds(len(y), folds=CV_FOLDS, gap=gap):
        if 0 < y[tr].mean() < 1:
            model = _logistic(c, seed).fit(x[tr], y[tr])
            losses.append(log_loss(y[va], model.predict_proba(x[va])[:, 1], labels=[0, 1]))
    return float(np.mean(losses)) if losses else np.inf


def choose_c(x: np.ndarray, y: np.ndarray, *, gap: int, seed: int = 0) -> tuple[float, float]:
    """The C with the least `cv_log_loss`, and that loss.

    The decades of `C_GRID` first, one more decade beyond an end while the best C is there (not
    past `C_LIMITS`), then half a decade either side of the best: the C returned has a worse
    neighbour on each side, unless it sits at a limit.
    """
    scores: dict[float, float] = {}  # log10 C → its loss

    def score(power: float) -> None:
        if power not in scores:
            scores[power] = cv_log_loss(x, y, c=10.0**power, gap=gap, seed=seed)

    for power in C_GRID:
        score(power)
    while True:
        best = min(scores, key=lambda p: (scores[p], p))
        if best == min(scores) and best > C_LIMITS[0]:
            score(best - 1)
        elif best == max(scores) and best < C_LIMITS[1]:
            score(best + 1)
        else:
            break
    for power in (best - 0.5, best + 0.5):
        if C_LIMITS[0] <= power <= C_LIMITS[1]:
            score(power)
    best = min(scores, key=lambda p: (scores[p], p))
    return 10.0**best, scores[best]


def _gbt(
    x: np.ndarray, y: np.ndarray, *, gap: int, seed: int
) -> tuple[HistGradientBoostingClassifier, int]:
    tail = max(round(TAIL_SHARE * len(y)), 1)
    head = len(y) - tail - gap
    options = {**_GBT, "random_state": seed}
    n_trees = int(_GBT["max_iter"])
    if head > 0 and 0 < y[:head].mean() < 1:
        n_trees = _trees_by_early_stopping(x, y, head=head, tail=tail, options=options)
    model = HistGradientBoostingClassifier(**{**options, "max_iter": n_trees}, early_stopping=False)
    return model.fit(x, y), n_trees


def _trees_by_early_stopping(
    x: np.ndarray, y: np.ndarray, *, head: int, tail: int, options: dict[str, Any]
) -> int:
    """The number of trees with the least log loss on the tail, fitted on the head; while the
    best number is the cap (the loss still falling), more trees are added, up to `MAX_TREES`."""
    cap = int(options["max_iter"])
    probe = HistGradientBoostingClassifier(**options, early_stopping=True, warm_start=True)
    while True:
        probe.set_params(max_iter=cap)
        probe.fit(x[:head], y[:head], X_val=x[-tail:], y_val=y[-tail:])
        losses = [
            log_loss(y[-tail:], p[:, 1], labels=[0, 1])
            for p in probe.staged_predict_proba(x[-tail:])
        ]
        n_trees = int(np.argmin(losses)) + 1
        if n_trees < cap or cap >= MAX_TREES:
            return n_trees
        cap = min(2 * cap, MAX_TREES)


def _check(labels: np.ndarray, starts: np.ndarray, name: str, n_rows: int, length: int) -> None:
    if len(starts) == 0:
        return
    if starts.min() < 0 or starts.max() >= len(labels) or starts.max() + length > n_rows:
        raise ValueError(
            f"{name} window starts must lie in 0..{min(len(labels), n_rows - length + 1) - 1}, "
            f"got {starts.min()}..{starts.max()}"
        )
    values = labels[starts]
    if not np.isin(values, (0.0, 1.0)).all():
        raise ValueError(f"{name} windows: labels must be 0 or 1 (NaN: a window without a label)")


def fit_baselines(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    context_length: int,
    horizon: int,
    train: np.ndarray,
    val: np.ndarray,
    test: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, Baseline]:
    """Fit the baselines on the training windows and predict the validation and test windows.

    Args:
        features: (T, C) features of every row, as the model reads them.
        labels: (N,) 0/1, labels[s] is the label of the window starting at row s.
        context_length: rows a window reads (L).
        horizon: days its label looks ahead (h); with L it sets the purge of one window span
            between a cross-validation fold's training and validation windows.
        train: training window starts, sorted.
        val: validation window starts, sorted.
        test: test window starts (None or empty: no test split).
        seed: seed of the models (they are deterministic given it).

    Returns:
        `BASELINES` name → `Baseline`: `base_rate` (details: train_rate), `logistic` (C,
        cv_log_loss), `gbt` (n_trees).

    Raises:
        ValueError: a window start out of range, a label that is not 0 or 1 at a requested
            window, or training labels of one class.
    """
    x_rows = np.asarray(features)
    y_all = np.asarray(labels, dtype="float64")
    test = np.zeros(0, dtype="int64") if test is None else np.asarray(test, dtype="int64")
    splits = {"train": np.asarray(train, "int64"), "val": np.asarray(val, "int64"), "test": test}
    for name, starts in splits.items():
        _check(y_all, starts, name, len(x_rows), context_length)
    y = y_all[splits["train"]]
    rate = float(y.mean()) if len(y) else float("nan")
    if not 0 < rate < 1:
        raise ValueError(f"training windows hold one class only (positive rate {rate})")
    design = {
        k: window_features(x_rows, v, context_length=context_length) for k, v in splits.items()
    }
    with threadpool_limits(limits=1):
        return _fit(design, y, rate, span=context_length + horizon, seed=seed)


def _fit(
    design: dict[str, np.ndarray], y: np.ndarray, rate: float, *, span: int, seed: int
) -> dict[str, Baseline]:
    constant = float(_logits(np.array([rate]))[0])
    out = {
        "base_rate": Baseline(
            "base_rate",
            np.full(len(design["val"]), constant),
            np.full(len(design["test"]), constant),
            {"train_rate": rate},
        )
    }
    c, cv_loss = choose_c(design["train"], y, gap=span, seed=seed)
    logistic = _logistic(c, seed).fit(design["train"], y)
    out["logistic"] = Baseline(
        "logistic",
        _predict(logistic, design["val"]),
        _predict(logistic, design["test"]),
        {"C": c, "cv_log_loss": cv_loss},
    )
    gbt, n_trees = _gbt(design["train"], y, gap=span, seed=seed)
    out["gbt"] = Baseline(
        "gbt", _predict(gbt, design["val"]), _predict(gbt, design["test"]), {"n_trees": n_trees}
    )
    return out


def _predict(model: Pipeline | HistGradientBoostingClassifier, x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return np.zeros(0)
    return np.asarray(model.decision_function(x), dtype="float64")
