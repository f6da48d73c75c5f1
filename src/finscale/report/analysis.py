"""analysis.json: the report's results in their JSON form, written from the typed results.

Each class's form names its JSON fields where they differ from its own fields (`jsonform`;
a class without one, such as `stats.Skill`, is written field by field);
the file is what the 0.1.0 release wrote, key for key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from finscale.report.architecture import Importances
from finscale.report.checks import StudyFlags
from finscale.report.export import records
from finscale.report.final import FinalAnswer, FinalModel
from finscale.report.jsonform import Forms, fields_of, pair, to_json
from finscale.report.scaling import BudgetPoint, ScalingResult
from finscale.report.stats import AucTest, PairedTest

_TEST = {
    "se": "se",
    "ci95": "ci95",
    "p_value": "p_value",
    "effective_n": "effective_n",
    "lag": "lag",
    "test": "test",
}

FORMS: Forms = {
    ScalingResult: {
        "horizon": "horizon",
        "metric": "metric",
        "direction": "direction",
        "loss": "loss_name",
        "verdict": "verdict",
        "sentence": "scaling.sentence",
        "m": "scaling.m",
        "slope_per_decade": "scaling.slope.per_decade",
        "slope_ci95": pair("scaling.slope"),
        "slope_share_negative": "scaling.slope.share_negative",
        "resamples": "scaling.slope.n_resamples",
        "block_length": "scaling.block_length",
        "n_windows": "scaling.n_windows",
        "largest_vs_smallest": "scaling.largest_vs_smallest",
        "alpha": "scaling.exponent.alpha",
        "alpha_ci95": pair("scaling.exponent"),
        "share_alpha_positive": "scaling.exponent.share_positive",
        "share_alpha_at_grid_edge": "scaling.exponent.share_at_edge",
        "floor": "scaling.exponent.floor",
        "coefficient": "scaling.exponent.coefficient",
        "reference_params": "scaling.exponent.reference_params",
        "r2": "scaling.exponent.r2",
        "top_k": "top_k",
        "note": "note",
        "points": "points",
    },
    BudgetPoint: {
        "budget": "budget",
        "study": "study",
        "trial": "trial",
        "arch": "arch",
        "param_count": "param_count",
        "value": "value",
        "completed": "completed",
        "lost": "lost",
        "loss": "loss",
        "loss_ci95": pair("", "loss_low", "loss_high"),
        "point_params": "point_params",
        "base_rate_loss": "base_rate_loss",
        "skill": "skill",
        "top_losses": "top_losses",
        "partial": "partial",
    },
    PairedTest: {"estimate": "mean", **_TEST},
    AucTest: {"estimate": "estimate", **_TEST},
    FinalAnswer: {
        "horizon": "horizon",
        "verdict": "fit.verdict",
        "sentence": "fit.sentence",
        "slope_per_decade": "fit.slope.per_decade",
        "slope_ci95": pair("fit.slope"),
        "models": "models",
    },
    FinalModel: {
        "study": "study",
        "budget": "budget",
        "trial": "trial",
        "arch": "arch",
        "param_count": "param_count",
        "seeds": "seeds",
        "candidates": "candidates",
        "refit": "refit",
        "val_bce": "val_bce",
        "test_bce": "test_bce",
        "test_bce_sd": "test_bce_sd",
        "test_auc": "test_auc",
        "test_auc_sd": "test_auc_sd",
        "vs_base_rate": "skill.vs_base_rate",
        "auc_vs_half": "skill.auc",
        "vs_baselines": "skill.vs_baselines",
        "baselines": lambda m: {
            k: {"test_bce": b, "test_auc": a} for k, (b, a) in m.baselines.items()
        },
        "beats": "beats",
    },
    StudyFlags: fields_of(
        StudyFlags,
        no_search="no_search",
        few_sampled="few_sampled",
        sentences=lambda f: f.sentences(),
    ),
}


def write_analysis(
    path: Path,
    *,
    answers: list[ScalingResult],
    finals: list[FinalAnswer],
    flags: list[StudyFlags],
    width_depth: pd.DataFrame,
    styles: pd.DataFrame,
    heads: pd.DataFrame,
    importances: list[Importances],
) -> Path:
    """Write analysis.json (indented, no NaN: JSON has none)."""
    analysis = {
        "scaling": to_json(answers, FORMS),
        "final": to_json(finals, FORMS),
        "flags": to_json(flags, FORMS),
        "width_depth": records(width_depth),
        "styles": records(styles),
        "heads": records(heads),
        "importances": {i.study: i.values or i.note for i in importances},
    }
    path.write_text(json.dumps(analysis, indent=1, allow_nan=False) + "\n")
    return path
