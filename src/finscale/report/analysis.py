"""analysis.json: the report's results in their JSON form, written from the typed results.

Each class's form names its JSON fields where they differ from its own fields (`jsonform`;
a class without one is written field by field). Every key the 0.1.0 release wrote is kept but
one: the final models' `baselines` no longer list "base_rate", the stored constant at the training
rate, which the reference replaces. "vs_base_rate" and "base_rate_loss" are against the
reference (`report.reference`); the keys added since carry the reference, the floor, the shift
of the label rate, each claim and the per-seed values; "test_auc" is now the seed-averaged
logits' AUC (the one tested against 0.5), not the mean of the seeds' AUCs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from finscale.report.architecture import Importances
from finscale.report.checks import StudyFlags
from finscale.report.export import records
from finscale.report.final import FinalAnswer, FinalModel
from finscale.report.jsonform import Forms, fields_of, pair, to_json
from finscale.report.reference import Shift
from finscale.report.scaling import BudgetPoint, ScalingResult
from finscale.report.stats import AucTest, PairedTest, Skill

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
        "detectable_per_decade": "scaling.detectable",
        "trial_luck_sd": "scaling.luck",
        "trial_luck_df": "scaling.luck_df",
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
        "reference": "reference",
        "baselines": "baseline_skill",
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
    PairedTest: {"estimate": "mean", **_TEST, "p_lower": "p_lower"},
    AucTest: {"estimate": "estimate", **_TEST},
    Skill: fields_of(Skill, claim="claim"),
    Shift: {
        "split": "split",
        "reference_rate": "reference.rate",
        "reference_from": "reference.source",
        "own_rate": "reference.own_rate",
        "reference_bce": "reference.bce",
        "floor_bce": "reference.floor",
        "shift_gain": "reference.shift_gain",
        "n": "n",
        "shift": "test",
        "flagged": "flagged",
    },
    FinalAnswer: {
        "horizon": "horizon",
        "verdict": "fit.verdict",
        "sentence": "fit.sentence",
        "slope_per_decade": "fit.slope.per_decade",
        "slope_ci95": pair("fit.slope"),
        "detectable_per_decade": "fit.detectable",
        "seed_luck_sd": "fit.luck",
        "seed_luck_df": "fit.luck_df",
        "models": "models",
        "reference": "reference",
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
        "test_bce_per_seed": "test_bce_seeds",
        "test_auc_per_seed": "test_auc_seeds",
        "test_auc_seed_range": lambda m: _range(m.test_auc_seeds),
        "vs_base_rate": "skill.vs_base_rate",
        "vs_floor": "skill.vs_floor",
        "claim": "skill.claim",
        "auc_vs_half": "skill.auc",
        "vs_baselines": "skill.vs_baselines",
        "baselines": lambda m: {
            k: {
                "test_bce": s.loss,
                "test_auc": s.auc.estimate,
                "vs_base_rate": s.vs_base_rate,
                "vs_floor": s.vs_floor,
                "claim": s.claim,
                "auc_vs_half": s.auc,
            }
            for k, s in m.baseline_skill.items()
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


def _range(values: tuple[float, ...]) -> list[float] | None:
    finite = [v for v in values if math.isfinite(v)]
    return [min(finite), max(finite)] if finite else None


def write_analysis(path: Path, analysis: dict[str, Any]) -> Path:
    """Write analysis.json (`analysis_json`'s values; indented, no NaN: JSON has none)."""
    path.write_text(json.dumps(analysis, indent=1, allow_nan=False) + "\n")
    return path


def analysis_json(
    *,
    answers: list[ScalingResult],
    finals: list[FinalAnswer],
    flags: list[StudyFlags],
    width_depth: pd.DataFrame,
    styles: pd.DataFrame,
    heads: pd.DataFrame,
    importances: list[Importances],
) -> dict[str, Any]:
    """What analysis.json holds, as plain JSON values (None for NaN)."""
    return {
        "scaling": to_json(answers, FORMS),
        "final": to_json(finals, FORMS),
        "flags": to_json(flags, FORMS),
        "width_depth": records(width_depth),
        "styles": records(styles),
        "heads": records(heads),
        "importances": {i.study: i.values or i.note for i in importances},
    }
