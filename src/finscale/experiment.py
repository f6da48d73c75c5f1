"""An experiment from Python, for a notebook: its trials, its evaluation runs and its analysis
as pandas frames and plain values — what `finscale report` writes, without the files.

    import finscale

    exp = finscale.load_experiment("sample-scaling")  # FINSCALE_STORAGE_URL, or storage_url=
    exp.trials  # one row per trial, as trials.csv
    exp.evaluations  # one row per evaluation run (trial × seed), with its test metrics
    exp.analysis()["scaling"][0]["slope"]  # as analysis.json

Reading never writes to the storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from finscale.records import StoredStudy
    from finscale.report import Report
    from finscale.report.collect import StudyResult

__all__ = ["Experiment", "experiments", "load_experiment"]

# Evaluation metrics kept in `Experiment.evaluations`, per split.
_EVAL_METRICS = ("bce", "auc", "accuracy", "positive_rate", "pred_mean", "pred_std")


@dataclass(frozen=True)
class Experiment:
    """The studies of one experiment, as the storage held them when loaded."""

    name: str
    storage: str  # where they were read, shown without a password
    stored: list[StoredStudy] = field(repr=False)  # as the storage's reader returned them

    @cached_property
    def studies(self) -> list[StudyResult]:
        """Its studies, by horizon and budget."""
        from finscale.report import chosen_studies

        found = chosen_studies(self.stored, storage=self.storage, experiment=self.name)
        return sorted(found, key=lambda r: (r.horizon or 0, r.budget_params or 0, r.name))

    @cached_property
    def trials(self) -> pd.DataFrame:
        """Every trial as one row: the columns of the report's trials.csv (study, budget,
        horizon, number, state, value, architecture, parameters, …)."""
        from finscale.report.export import trials_frame

        return trials_frame(self.studies)

    @cached_property
    def evaluations(self) -> pd.DataFrame:
        """Every evaluation run (`finscale evaluate`: a trial retrained with one seed) as one
        row: study, budget, horizon, trial, seed index and seed, architecture, parameter count,
        refit, best epoch, and `val_*` and `test_*` metrics. Empty when none was evaluated."""
        import pandas as pd

        rows = [
            {
                "study": r.name,
                "budget": r.budget,
                "horizon": r.horizon,
                "trial": run.trial,
                "seed_index": run.seed_index,
                "seed": run.seed,
                "arch": run.arch,
                "param_count": run.param_count,
                "refit": run.refit,
                "best_epoch": run.best_epoch,
                "epochs_run": run.epochs_run,
                **{f"val_{k}": run.val.get(k) for k in _EVAL_METRICS},
                **{f"test_{k}": run.test.get(k) for k in _EVAL_METRICS},
                "wall_time_s": run.wall_time_s,
            }
            for r in self.studies
            for run in r.evaluation
        ]
        return pd.DataFrame(rows, columns=_EVAL_COLUMNS)

    def analysis(self, *, n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
        """The report's analysis.json: per horizon the scaling fit with its interval and
        verdict, the final evaluation on test, flags, the width × depth table, styles,
        head-count effects and importances (seconds: the bootstrap runs)."""
        from finscale.report import analysis

        return analysis(self.studies, n_resamples=n_resamples, seed=seed)

    def report(self, out: str | Path, *, plots: bool = True) -> Report:
        """Write its report into `out`, as `finscale report --experiment NAME --out OUT`."""
        from finscale.report import write_report

        return write_report(
            self.stored, Path(out), storage=self.storage, experiment=self.name, plots=plots
        )


_EVAL_COLUMNS = [
    "study", "budget", "horizon", "trial", "seed_index", "seed", "arch", "param_count", "refit",
    "best_epoch", "epochs_run", *(f"val_{k}" for k in _EVAL_METRICS),
    *(f"test_{k}" for k in _EVAL_METRICS), "wall_time_s",
]  # fmt: skip


def experiments(*, storage_url: str | None = None) -> dict[str, list[str]]:
    """The experiments a storage holds (FINSCALE_STORAGE_URL by default), each with its
    studies' names; studies not set up by finscale under None's key, `""`."""
    _, stored = _read(storage_url)
    from finscale.report.collect import study_result

    out: dict[str, list[str]] = {}
    for s in stored:
        result = study_result(s)
        out.setdefault(result.experiment or "", []).append(result.name)
    return {k: sorted(v) for k, v in sorted(out.items())}


def load_experiment(name: str | None = None, *, storage_url: str | None = None) -> Experiment:
    """The experiment `name` of the storage (FINSCALE_STORAGE_URL by default); without a name,
    the storage's only experiment.

    Raises:
        NothingToReportError: the storage holds no study of that experiment (the message
            lists those it holds).
        SeveralExperimentsError: no name given and the storage holds several.
    """
    from finscale.report import chosen_studies

    shown, stored = _read(storage_url)
    (first, *_) = chosen_studies(stored, storage=shown, experiment=name)
    return Experiment(name=first.experiment or "", storage=shown, stored=stored)


def _read(storage_url: str | None) -> tuple[str, list[StoredStudy]]:
    """The storage shown without a password, and every study it holds (none: no storage)."""
    from finscale.hpo import display_url, open_for_reading, read_studies
    from finscale.settings import load_settings

    settings = load_settings(**({"storage_url": storage_url} if storage_url else {}))
    storage = open_for_reading(settings)
    shown = display_url(settings.storage_url)
    if storage is None:
        return shown, []
    return shown, read_studies(storage, deadline_s=settings.storage_deadline_s)
