"""`finscale compare`: two or more experiments' reports, each in a folder of its own, and the
page that sets them side by side (`report.compare`, `report.comparison_page`)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from finscale.errors import ExitCode, FinscaleError
from finscale.filenames import file_stem
from finscale.records import StoredStudy
from finscale.report import Report, write_report
from finscale.report.compare import Comparison, Findings, compare
from finscale.report.comparison_page import comparison_json, comparison_markdown
from finscale.report.dating import dataset_dater


class ComparisonError(FinscaleError):
    """Fewer than two distinct experiments to compare."""

    exit_code: int = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class ComparisonReport:
    """What `write_comparison` wrote: each experiment's report, and the page comparing them."""

    out: Path
    reports: list[Report]
    comparison: Comparison
    page: Path
    files: list[Path]


def write_comparison(
    stored: list[StoredStudy],
    out: Path,
    *,
    experiments: list[str],
    storage: str,
    data_dir: Path,
    top_k: int | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    plots: bool = True,
) -> ComparisonReport:
    """Report each experiment into `out/<experiment>/` and compare them in `out/comparison.md`
    (and comparison.json).

    Args:
        stored: the studies, as the storage's reader returns them.
        out: the directory (created).
        experiments: two or more experiment names, in the order the page compares them.
        storage: where the studies came from, as shown to a person (no password).
        data_dir: where the studies' datasets are: they date the windows, so that two markets
            pair day by day (without them the comparison is unpaired, and says so).
        top_k, n_resamples, seed, plots: as `write_report`'s, for every experiment.

    Raises:
        ComparisonError: fewer than two distinct experiments named.
        NothingToReportError: an experiment has no study in `stored`.
    """
    names = list(dict.fromkeys(e.lower() for e in experiments))
    if len(names) < 2:
        raise ComparisonError(
            f"compare needs two or more experiments, got {', '.join(experiments) or 'none'}: "
            "name each (`finscale compare A B`); `finscale report` reports one"
        )
    reports = [
        write_report(
            stored,
            out / file_stem(name),
            storage=storage,
            experiment=name,
            top_k=top_k,
            n_resamples=n_resamples,
            seed=seed,
            plots=plots,
        )
        for name in names
    ]
    findings = [
        Findings(experiment=name, studies=r.studies, scaling=r.scaling, finals=r.finals)
        for name, r in zip(names, reports, strict=True)
    ]
    comparison = compare(findings, dater=dataset_dater(data_dir))
    page = out / "comparison.md"
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page.write_text(comparison_markdown(comparison, storage=storage, generated=generated))
    data = out / "comparison.json"
    data.write_text(json.dumps(comparison_json(comparison), indent=1, allow_nan=False) + "\n")
    return ComparisonReport(
        out=out, reports=reports, comparison=comparison, page=page, files=[page, data]
    )
