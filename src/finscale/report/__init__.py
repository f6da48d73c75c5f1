"""From studies to a scaling-law answer: exports, the power-law fit with its uncertainty,
architecture analysis, plots and a Markdown summary. Reads studies; never writes to them."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from finscale.errors import FinscaleError
from finscale.hpo.read import StoredStudy
from finscale.report.architecture import heads_effect, importances, styles, width_depth
from finscale.report.collect import StudyResult, study_result
from finscale.report.export import clean, records, write_exports
from finscale.report.scaling import ScalingResult, fit_power_law, scaling, strength
from finscale.report.summary import markdown

__all__ = [
    "NothingToReportError",
    "Report",
    "ScalingResult",
    "StudyResult",
    "fit_power_law",
    "strength",
    "write_report",
]


class NothingToReportError(FinscaleError):
    """The storage holds no study to report on."""

    exit_code: int = 2


@dataclass(frozen=True)
class Report:
    """What `write_report` wrote and found."""

    out: Path
    files: list[Path]
    studies: list[StudyResult]
    scaling: list[ScalingResult]
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
    top_k: int = 5,
    n_resamples: int = 2000,
    seed: int = 0,
    plots: bool = True,
) -> Report:
    """Write the report of `stored` studies into `out`.

    Args:
        stored: the studies, as `finscale.hpo.read.read_studies` returns them.
        out: the directory (created); files of an earlier report there are replaced.
        storage: where the studies came from, as shown to a person (no password).
        experiment: report only the studies of this experiment.
        expected: report only these studies (an experiment's, from its spec); those not in
            `stored` are reported as not started.
        top_k: trials per budget the bootstrap draws from.
        n_resamples: bootstrap resamples.
        seed: seed of the bootstrap and of the importance evaluator.
        plots: write the PNG figures.

    Raises:
        NothingToReportError: no study (of the experiment, or expected) in `stored`.
    """
    results = [study_result(s) for s in stored]
    if experiment is not None:
        results = [r for r in results if r.experiment == experiment]
    if expected is not None:
        results = [r for r in results if r.name in expected]
    if not results:
        which = f"study of experiment {experiment!r}" if experiment else "studies"
        raise NothingToReportError(
            f"no {which} in {storage}: nothing to report. Run a search first "
            "(`finscale run SPEC`, or apply its Jobs) or point FINSCALE_STORAGE_URL at its storage"
        )
    from finscale.report import plots as figures  # matplotlib only when plotting

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font cache chatter
    out.mkdir(parents=True, exist_ok=True)
    missing = sorted(set(expected or []) - {r.name for r in results})
    results.sort(key=lambda r: (r.experiment or "", r.horizon or 0, r.budget_params or 0, r.name))
    frame, files = write_exports(results, out)
    answers = scaling(results, top_k=top_k, n_resamples=n_resamples, seed=seed)
    cells, style_table, heads = width_depth(frame), styles(frame), heads_effect(frame)
    ranked = [importances(r, seed=seed) for r in results]

    analysis = out / "analysis.json"
    analysis.write_text(
        json.dumps(
            {
                "scaling": [_scaling_json(a) for a in answers],
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
            styles=style_table,
            heads=heads,
            importances=ranked,
            figures=shown,
            missing=missing,
            files=[f.name for f in files],
        )
    )
    return Report(
        out=out, files=files, studies=results, scaling=answers, summary=summary, missing=missing
    )


def _scaling_json(a: ScalingResult) -> dict[str, object]:
    u = a.uncertainty
    return {
        "horizon": a.horizon,
        "metric": a.metric,
        "direction": a.direction,
        "alpha": a.fit.alpha if a.fit else None,
        "coefficient": a.fit.coefficient if a.fit else None,
        "r2": a.fit.r2 if a.fit else None,
        "strength": a.strength,
        "alpha_ci95": [u.low, u.high] if u else None,
        "alpha_std": u.std if u else None,
        "share_alpha_positive": u.share_positive if u else None,
        "share_by_strength": u.share_by_strength if u else None,
        "resamples": u.n_resamples if u else None,
        "top_k": a.top_k,
        "note": a.note,
        "points": [
            {
                "budget": p.budget,
                "study": p.study,
                "trial": p.trial,
                "arch": p.arch,
                "param_count": p.param_count,
                "value": p.value,
                "error": p.error,
                "error_se": clean(p.error_se),
                "baseline_error": clean(p.baseline_error),
                "baseline_z": clean(p.baseline_z),
                "top_errors": list(p.top_errors),
                "partial": p.partial,
            }
            for p in a.points
        ],
    }
