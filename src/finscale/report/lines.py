"""What `finscale report` says on the console once the report is written: each horizon's
answer (test, then validation, then the exponent), the cautions, what is partial, and where
the files are."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from finscale.report.summary import alpha_interval

if TYPE_CHECKING:
    from finscale.report import Report


def answer_lines(report: Report) -> list[str]:
    """Per horizon: the test verdict, the validation fit (or why there is none) and the
    exponent of the reducible loss with its interval."""
    lines = []
    finals = {f.horizon: f for f in report.finals}
    for a in report.scaling:
        final = finals.get(a.horizon)
        if final is not None and final.fit is not None:
            lines.append(f"horizon {a.horizon}, test: {final.fit.sentence}")
        if a.scaling is None:
            lines.append(f"horizon {a.horizon}: no fit ({a.note})")
            continue
        lines.append(f"horizon {a.horizon}, validation: {a.scaling.sentence}")
        e = a.scaling.exponent
        if e is not None:
            ci = f", 95 % interval {alpha_interval(e)}" if e.n_resamples else ""
            lines.append(
                f"horizon {a.horizon}: exponent of the reducible loss α = {e.alpha:.3f}{ci}"
            )
    return lines


def closing_lines(report: Report, out: Path) -> list[str]:
    """The cautions of each study, the studies not finished or not started, and the files."""
    lines = [
        f"caution: {f.study}: {'; '.join(f.sentences())}" for f in report.flags if f.sentences()
    ]
    unfinished = [r.name for r in report.studies if not r.done]
    if unfinished:
        lines.append(f"partial: {', '.join(unfinished)} not finished")
    if report.missing:
        lines.append(f"partial: {', '.join(report.missing)} not started")
    n = len(report.studies)
    lines.append(
        f"report of {n} {'study' if n == 1 else 'studies'} in {out}: {report.summary.name} and "
        f"{len(report.files) - 1} more files"
    )
    return lines
