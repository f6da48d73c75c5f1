"""From studies to a scaling answer: exports, the slope per decade and the exponent of the
reducible loss with their joint-bootstrap intervals, paired skill tests, architecture analysis,
plots and a Markdown summary. Reads studies; never writes to them."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finscale.errors import ExitCode, FinscaleError
from finscale.filenames import file_stem
from finscale.records import StoredStudy
from finscale.report import stats
from finscale.report.analysis import analysis_json, write_analysis
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
from finscale.report.export import trials_frame, write_exports
from finscale.report.final import FinalAnswer, FinalModel, final_model, final_scaling
from finscale.report.reference import shift_of, study_reference
from finscale.report.scaling import ScalingResult, StudyWindows, scaling
from finscale.report.summary import markdown

if TYPE_CHECKING:
    import pandas as pd

    from finscale.report.architecture import Importances

__all__ = [
    "FinalAnswer",
    "IncomparableStudiesError",
    "NothingToReportError",
    "Report",
    "SeveralExperimentsError",
    "analysis",
    "chosen_studies",
    "write_report",
]


class NothingToReportError(FinscaleError):
    """The storage holds no study to report on."""

    exit_code: int = ExitCode.BAD_INPUT


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
    results = chosen_studies(stored, storage=storage, experiment=experiment, expected=expected)
    check_comparable(results)
    out.mkdir(parents=True, exist_ok=True)
    missing = sorted(set(expected or []) - {r.name for r in results})
    results = _in_order(results)
    frame, files = write_exports(results, out)
    found = _analyse(results, frame, top_k=top_k, n_resamples=n_resamples, seed=seed)
    files.append(write_analysis(out / "analysis.json", found.to_json()))
    shown = _write_figures(found, results, out) if plots else {}
    files += [out / name for name in shown.values()]

    summary = out / "summary.md"
    files.append(summary)
    summary.write_text(
        markdown(
            storage=storage,
            generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            results=results,
            answers=found.answers,
            finals=found.finals,
            flags=found.flags,
            styles=found.styles,
            heads=found.heads,
            importances=found.importances,
            figures=shown,
            missing=missing,
            files=[f.name for f in files],
        )
    )
    return Report(
        out=out,
        files=files,
        studies=results,
        scaling=found.answers,
        finals=found.finals,
        flags=found.flags,
        summary=summary,
        missing=missing,
    )


def analysis(
    results: list[StudyResult], *, top_k: int | None = None, n_resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """What `write_report` writes into analysis.json for these studies (one experiment's,
    `chosen_studies`), as plain JSON values, without writing anything."""
    check_comparable(results)
    results = _in_order(results)
    frame = trials_frame(results)
    return _analyse(results, frame, top_k=top_k, n_resamples=n_resamples, seed=seed).to_json()


def _in_order(results: list[StudyResult]) -> list[StudyResult]:
    """By experiment, horizon and budget: the order of every table and figure."""
    return sorted(
        results, key=lambda r: (r.experiment or "", r.horizon or 0, r.budget_params or 0, r.name)
    )


def chosen_studies(
    stored: list[StoredStudy],
    *,
    storage: str,
    experiment: str | None = None,
    expected: list[str] | None = None,
) -> list[StudyResult]:
    """The studies to report: those expected (when given) of the one experiment asked for."""
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
    return chosen


@dataclass(frozen=True)
class _Analysis:
    """Everything the report found, before it is written."""

    answers: list[ScalingResult]
    finals: list[FinalAnswer]
    flags: list[StudyFlags]
    width_depth: pd.DataFrame
    styles: pd.DataFrame
    heads: pd.DataFrame
    importances: list[Importances]

    def to_json(self) -> dict[str, Any]:
        """analysis.json's values."""
        return analysis_json(
            answers=self.answers,
            finals=self.finals,
            flags=self.flags,
            width_depth=self.width_depth,
            styles=self.styles,
            heads=self.heads,
            importances=self.importances,
        )


def _analyse(
    results: list[StudyResult],
    frame: pd.DataFrame,
    *,
    top_k: int | None,
    n_resamples: int,
    seed: int,
) -> _Analysis:
    """The scaling answers, final models, flags and architecture analyses of the studies."""
    return _Analysis(
        answers=scaling(
            results, top_k=top_k, n_resamples=n_resamples, seed=seed, windows=_windows(results)
        ),
        finals=_finals(results, n_resamples=n_resamples, seed=seed),
        flags=[study_flags(r) for r in results],
        width_depth=width_depth(frame),
        styles=styles(frame),
        heads=heads_effect(frame),
        importances=[importances(r, seed=seed) for r in results],
    )


def _write_figures(found: _Analysis, results: list[StudyResult], out: Path) -> dict[str, str]:
    """The PNG figures, by the name the summary links them under."""
    from finscale.report import plots as figures  # matplotlib only when plotting

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font cache chatter
    shown: dict[str, str] = {}
    for a in found.answers:
        path = figures.plot_scaling(a, out / f"scaling-h{a.horizon}.png")
        shown[f"scaling-h{a.horizon}"] = path.name
    for f in found.finals:
        path = figures.plot_final(f, out / f"scaling-h{f.horizon}-test.png")
        shown[f"scaling-h{f.horizon}-test"] = path.name
    path = figures.plot_width_depth(found.width_depth, results, out / "width-depth.png")
    shown["width-depth"] = path.name
    for r in results:
        path = figures.plot_history(r, found.answers, out / f"history-{file_stem(r.name)}.png")
        shown[f"history-{r.name}"] = path.name
    return shown


def _windows(results: list[StudyResult]) -> dict[str, StudyWindows]:
    """Per study, what the paired tests need beside the trials: the segments of its
    validation windows, the baselines' logits on them and their reference."""
    out = {}
    for r in results:
        if r.val_windows is None:
            continue
        starts = stats.segments(r.val_windows.starts)
        shift = shift_of(
            study_reference(r, "val"),
            r.val_windows.labels,
            split="val",
            horizon=r.horizon or 1,
            starts=starts,
        )
        out[r.name] = StudyWindows(
            starts=starts,
            baselines={name: b.val for name, b in r.baselines.items() if name != "base_rate"},
            shift=shift,
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
