"""Which architectures win: metric by width × depth, the depth-versus-width style of §8.1
(L/d), the influence of the head count, and which parameters matter (Optuna's evaluator)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from scipy.stats import spearmanr

from finscale.report.collect import StudyResult, trial_arch

# The research system's rule on L/d (reference §8.1).
NARROW_DEEP_ABOVE = 0.5
WIDE_SHALLOW_BELOW = 0.15
Style = Literal["narrow-deep", "balanced", "wide-shallow"]
STYLES: tuple[Style, ...] = ("wide-shallow", "balanced", "narrow-deep")
MIN_TRIALS_FOR_IMPORTANCE = 4


def style(d_model: int, n_layers: int) -> Style:
    """`narrow-deep` when L/d > 0.5, `wide-shallow` when L/d < 0.15, `balanced` between."""
    ratio = n_layers / d_model
    if ratio > NARROW_DEEP_ABOVE:
        return "narrow-deep"
    if ratio < WIDE_SHALLOW_BELOW:
        return "wide-shallow"
    return "balanced"


def completed(frame: pd.DataFrame) -> pd.DataFrame:
    """Completed trials with a value and a known architecture, with their style."""
    done = frame[(frame["state"] == "COMPLETE") & frame["value"].notna() & frame["arch"].notna()]
    done = done.copy()
    done["style"] = [
        style(int(d), int(n)) for d, n in zip(done["d_model"], done["n_layers"], strict=True)
    ]
    return done


def _best(values: pd.Series, direction: str) -> float:
    return float(values.min() if direction == "minimize" else values.max())


def width_depth(frame: pd.DataFrame) -> pd.DataFrame:
    """Per study, d_model and n_layers: the best and mean value and the number of trials."""
    done = completed(frame)
    rows = []
    for (study, d, n), cell in done.groupby(["study", "d_model", "n_layers"]):
        direction = str(cell["direction"].iloc[0])
        rows.append(
            {
                "study": study,
                "d_model": int(d),  # type: ignore[call-overload]
                "n_layers": int(n),  # type: ignore[call-overload]
                "best": _best(cell["value"], direction),
                "mean": float(cell["value"].mean()),
                "trials": len(cell),
            }
        )
    return pd.DataFrame(rows, columns=["study", "d_model", "n_layers", "best", "mean", "trials"])


def styles(frame: pd.DataFrame) -> pd.DataFrame:
    """Per study and style: the best and mean value, the number of trials and the best arch."""
    done = completed(frame)
    rows = []
    for (study, kind), group in done.groupby(["study", "style"]):
        direction = str(group["direction"].iloc[0])
        best = _best(group["value"], direction)
        rows.append(
            {
                "study": study,
                "style": kind,
                "best": best,
                "mean": float(group["value"].mean()),
                "trials": len(group),
                "best_arch": str(group.loc[group["value"] == best, "arch"].iloc[0]),
            }
        )
    out = pd.DataFrame(rows, columns=["study", "style", "best", "mean", "trials", "best_arch"])
    order = {s: i for i, s in enumerate(STYLES)}
    return out.sort_values(
        ["study", "style"], key=lambda c: c.map(order) if c.name == "style" else c
    )


def heads_effect(frame: pd.DataFrame) -> pd.DataFrame:
    """Per study: Spearman's correlation of n_heads with the value (NaN when undefined)."""
    done = completed(frame)
    rows = []
    for study, group in done.groupby("study"):
        r = math.nan
        if len(group) >= 3 and group["n_heads"].nunique() > 1 and group["value"].nunique() > 1:
            r = float(spearmanr(group["n_heads"], group["value"]).statistic)
        rows.append({"study": study, "spearman_r": r, "trials": len(group)})
    return pd.DataFrame(rows, columns=["study", "spearman_r", "trials"])


@dataclass(frozen=True)
class Importances:
    """Parameter importances of one study, or why there are none."""

    study: str
    values: dict[str, float]  # parameter → share of the value's variance it explains
    note: str
    trials: int = 0  # completed trials they rest on


def importances(result: StudyResult, *, seed: int = 0) -> Importances:
    """fANOVA importances of the architecture's dimensions and the sampled training parameters.

    The architecture is one categorical parameter in the study (`arch`); here it is split into
    d_model, n_layers, n_heads and d_ff so that the answer says which dimension matters.
    """
    archs = [(t, a) for t in result.complete if (a := trial_arch(t)) is not None]
    trials = [t for t, _ in archs]
    if len(trials) < MIN_TRIALS_FOR_IMPORTANCE:
        return Importances(
            result.name,
            {},
            f"{len(trials)} completed trials; importances need {MIN_TRIALS_FOR_IMPORTANCE}",
        )
    derived = optuna.create_study(
        direction="minimize" if result.direction == "minimize" else "maximize"
    )
    dims: dict[str, BaseDistribution] = {
        k: _int_range([a.dims()[k] for _, a in archs]) for k in archs[0][1].dims()
    }
    for t, arch in archs:
        params: dict[str, Any] = dict(arch.dims())
        distributions = dict(dims)
        for name, dist in t.distributions.items():
            if name != "arch":
                params[name] = t.params[name]
                distributions[name] = dist
        derived.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                value=float(t.value),  # type: ignore[arg-type]
            )
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
            values = optuna.importance.get_param_importances(derived, evaluator=evaluator)
    except (RuntimeError, ValueError) as e:
        return Importances(result.name, {}, f"not computed: {e}", len(trials))
    return Importances(result.name, {k: float(v) for k, v in values.items()}, "", len(trials))


def _int_range(values: list[int]) -> BaseDistribution:
    low, high = min(values), max(values)
    if low == high:
        return CategoricalDistribution([low])
    return IntDistribution(low, high)
