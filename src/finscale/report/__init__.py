"""From studies to a scaling answer: exports, the slope per decade and the exponent of the
reducible loss with their joint-bootstrap intervals, paired skill tests, architecture analysis,
plots and a Markdown summary. Reads studies; never writes to them."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finscale.errors import ExitCode, FinscaleError
from finscale.records import StoredStudy
from finscale.report import stats
from finscale.report.architecture import heads_effect, importances, styles, width_depth
from finscale.report.checks import (
    IncomparableStudiesError,
    SeveralExperimentsError,
    StudyFlags,
    check_comparable,
    describe_experiments,
    one_experiment,
    study_flags,
)
from finscale.report.collect import StudyResult, study_result
from finscale.report.export import clean, records, write_exports
from finscale.report.final import FinalModel, final_model, final_scaling
from finscale.report.scaling import ScalingFit, ScalingResult, StudyWindows, scaling
from finscale.report.stats import AucTest, PairedTest
from finscale.report.summary import markdown

__all__ = [
    "IncomparableStudiesError",
    "NothingToReportError",
    "Report",
    "SeveralExperimentsError",
    "write_report",
]


class NothingToReportError(FinscaleError):
    """The storage holds no study to report on."""

    exit_code: int = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class FinalAnswer:
    """One horizon's final models on test, and their comparison across budgets."""

    horizon: int
    models: list[FinalModel]
    fit: ScalingFit | None  # None with fewer than two evaluated budgets


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote and found."""

    out: Path
    files: list[Path]
    studies: list[StudyResult]
    scaling: list[ScalingResult]
    finals: list[FinalAnswer]
    flags: list[StudyFlags]
    summary: Path
    missing: list[str]  # studies the caller expected that the storage does not hold

    @property
    def partial(self) -> list[str]:
        """Studies that have not spent their budget, then those not started at all."""
        return [r.name for r in self.studies if not r.done] + self.missing


def write_report(
    stored: list[StoredStudy],
    out: Path,
    *,
    storage: str,
    experiment: str | None = None,
    expected: list[str] | None = None,
    top_k: int | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    plots: bool = True,
) -> Report:
    """Write the report of `stored` studies into `out`.

    Args:
        stored: the studies, as the storage's reader (`read_studies`) returns them.
        out: the directory (created); files of an earlier report there are replaced.
        storage: where the studies came from, as shown to a person (no password).
        experiment: report only the studies of this experiment.
        expected: report only these studies (an experiment's, from its spec); those not in
            `stored` are reported as not started.
        top_k: cap on m, the trials each budget's point is the expected best of (None: the
            smallest number of finished trials among a horizon's budgets).
        n_resamples: bootstrap resamples.
        seed: seed of the bootstrap and of the importance evaluator.
        plots: write the PNG figures.

    Raises:
        NothingToReportError: no study (of the experiment, or expected) in `stored`.
        SeveralExperimentsError: no experiment named and the studies belong to several.
        IncomparableStudiesError: the studies differ in more than their budget.
    """
    results = [study_result(s) for s in stored]
    if expected is not None:
        results = [r for r in results if r.name in expected]
    chosen = one_experiment(results, experiment)
    if not chosen:
        which = f"study of experiment {experiment!r}" if experiment else "studies"
        held = describe_experiments(results)
        raise NothingToReportError(
            f"no {which} in {storage}: nothing to report. "
            + (f"Its experiments: {held}. " if held else "")
            + "Run a search first (`finscale run SPEC`, or apply its Jobs) or point "
            "FINSCALE_STORAGE_URL at its storage"
        )
    results = chosen
    from finscale.report import plots as figures  # matplotlib only when plotting

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font cache chatter
    check_comparable(results)
    out.mkdir(parents=True, exist_ok=True)
    missing = sorted(set(expected or []) - {r.name for r in results})
    results.sort(key=lambda r: (r.experiment or "", r.horizon or 0, r.budget_params or 0, r.name))
    frame, files = write_exports(results, out)
    answers = scaling(
        results, top_k=top_k, n_resamples=n_resamples, seed=seed, windows=_windows(results)
    )
    finals = _finals(results, n_resamples=n_resamples, seed=seed)
    flags = [study_flags(r) for r in results]
    cells, style_table, heads = width_depth(frame), styles(frame), heads_effect(frame)
    ranked = [importances(r, seed=seed) for r in results]

    analysis = out / "analysis.json"
    analysis.write_text(
        json.dumps(
            {
                "scaling": [_scaling_json(a) for a in answers],
                "final": [_final_json(f) for f in finals],
                "flags": [{**f.__dict__, "sentences": f.sentences()} for f in flags],
                "width_depth": records(cells),
                "styles": records(style_table),
                "heads": records(heads),
                "importances": {i.study: i.values or i.note for i in ranked},
            },
            indent=1,
            allow_nan=False,
        )
        + "\n"
    )
    files.append(analysis)

    shown: dict[str, str] = {}
    if plots:
        for a in answers:
            path = figures.plot_scaling(a, out / f"scaling-h{a.horizon}.png")
            shown[f"scaling-h{a.horizon}"] = path.name
        path = figures.plot_width_depth(cells, results, out / "width-depth.png")
        shown["width-depth"] = path.name
        for r in results:
            path = figures.plot_history(r, out / f"history-{r.name}.png")
            shown[f"history-{r.name}"] = path.name
        files += [out / name for name in shown.values()]

    summary = out / "summary.md"
    files.append(summary)
    summary.write_text(
        markdown(
            storage=storage,
            generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            results=results,
            answers=answers,
            finals=finals,
            flags=flags,
            styles=style_table,
            heads=heads,
            importances=ranked,
            figures=shown,
            missing=missing,
            files=[f.name for f in files],
        )
    )
    return Report(
        out=out,
        files=files,
        studies=results,
        scaling=answers,
        finals=finals,
        flags=flags,
        summary=summary,
        missing=missing,
    )


def _windows(results: list[StudyResult]) -> dict[str, StudyWindows]:
    """Per study, what the paired tests need beside the trials: the segments of its
    validation windows and the baselines' logits on them."""
    out = {}
    for r in results:
        if r.val_windows is None:
            continue
        out[r.name] = StudyWindows(
            starts=stats.segments(r.val_windows.starts),
            baselines={name: b.val for name, b in r.baselines.items()},
        )
    return out


def _finals(results: list[StudyResult], *, n_resamples: int, seed: int) -> list[FinalAnswer]:
    """Per horizon, each evaluated budget's final model on test and their comparison."""
    by_horizon: dict[int, list[FinalModel]] = {}
    starts: dict[int, Any] = {}
    for r in results:
        model = final_model(r)
        if model is None or r.horizon is None:
            continue
        by_horizon.setdefault(r.horizon, []).append(model)
        if r.test_windows is not None:
            starts.setdefault(r.horizon, stats.segments(r.test_windows.starts))
    answers = []
    for horizon, models in sorted(by_horizon.items()):
        models.sort(key=lambda m: m.budget_params)
        fit = final_scaling(
            models,
            horizon=horizon,
            n_resamples=n_resamples,
            seed=seed,
            starts=starts.get(horizon),
        )
        answers.append(FinalAnswer(horizon=horizon, models=models, fit=fit))
    return answers


def _final_json(f: FinalAnswer) -> dict[str, Any]:
    return {
        "horizon": f.horizon,
        "verdict": f.fit.verdict if f.fit else None,
        "sentence": f.fit.sentence if f.fit else None,
        "slope_per_decade": clean(f.fit.slope.per_decade) if f.fit else None,
        "slope_ci95": [clean(f.fit.slope.low), clean(f.fit.slope.high)] if f.fit else None,
        "models": [
            {
                "study": m.study,
                "budget": m.budget,
                "trial": m.trial,
                "arch": m.arch,
                "param_count": m.param_count,
                "seeds": m.seeds,
                "candidates": m.candidates,
                "refit": m.refit,
                "val_bce": clean(m.val_bce),
                "test_bce": clean(m.test_bce),
                "test_bce_sd": clean(m.test_bce_sd),
                "test_auc": clean(m.test_auc),
                "test_auc_sd": clean(m.test_auc_sd),
                "vs_base_rate": _test_json(m.skill.vs_base_rate),
                "auc_vs_half": _test_json(m.skill.auc),
                "vs_baselines": {k: _test_json(v) for k, v in m.skill.vs_baselines.items()},
                "baselines": {
                    k: {"test_bce": clean(b), "test_auc": clean(a)}
                    for k, (b, a) in m.baselines.items()
                },
                "beats": m.beats,
            }
            for m in f.models
        ],
    }


def _test_json(t: PairedTest | AucTest | None) -> dict[str, Any] | None:
    if t is None:
        return None
    estimate = t.mean if isinstance(t, PairedTest) else t.estimate
    return {
        "estimate": clean(estimate),
        "se": clean(t.se),
        "ci95": [clean(v) for v in t.ci95],
        "p_value": clean(t.p_value),
        "effective_n": clean(t.effective_n),
        "lag": t.lag,
        "test": t.test,
    }


def _scaling_json(a: ScalingResult) -> dict[str, Any]:
    f = a.scaling
    e = f.exponent if f else None
    return {
        "horizon": a.horizon,
        "metric": a.metric,
        "direction": a.direction,
        "loss": a.loss_name,
        "verdict": a.verdict,
        "sentence": f.sentence if f else None,
        "m": f.m if f else None,
        "slope_per_decade": clean(f.slope.per_decade) if f else None,
        "slope_ci95": [clean(f.slope.low), clean(f.slope.high)] if f else None,
        "slope_share_negative": clean(f.slope.share_negative) if f else None,
        "resamples": f.slope.n_resamples if f else None,
        "block_length": f.block_length if f else None,
        "n_windows": f.n_windows if f else None,
        "largest_vs_smallest": _test_json(f.largest_vs_smallest) if f else None,
        "alpha": clean(e.alpha) if e else None,
        "alpha_ci95": [clean(e.low), clean(e.high)] if e else None,
        "share_alpha_positive": clean(e.share_positive) if e else None,
        "share_alpha_at_grid_edge": clean(e.share_at_edge) if e else None,
        "floor": clean(e.floor) if e else None,
        "coefficient": clean(e.coefficient) if e else None,
        "reference_params": e.reference_params if e else None,
        "r2": clean(e.r2) if e else None,
        "top_k": a.top_k,
        "note": a.note,
        "points": [
            {
                "budget": p.budget,
                "study": p.study,
                "trial": p.trial,
                "arch": p.arch,
                "param_count": p.param_count,
                "value": clean(p.value),
                "completed": p.completed,
                "lost": p.lost,
                "loss": clean(p.loss),
                "loss_ci95": [clean(p.loss_low), clean(p.loss_high)],
                "point_params": clean(p.point_params),
                "base_rate_loss": clean(p.base_rate_loss),
                "skill": None
                if p.skill is None
                else {
                    "loss": p.skill.loss,
                    "vs_base_rate": _test_json(p.skill.vs_base_rate),
                    "auc": _test_json(p.skill.auc),
                    "vs_baselines": {k: _test_json(v) for k, v in p.skill.vs_baselines.items()},
                },
                "top_losses": list(p.top_losses),
                "partial": p.partial,
            }
            for p in a.points
        ],
    }
