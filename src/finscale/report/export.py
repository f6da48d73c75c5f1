"""Every trial as one flat row (CSV and JSON), and the best trial of each study (JSON)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial

from finscale.records import TRIAL_FORCED, TRIAL_VAL_LABELS, TRIAL_VAL_LOGITS, requeued_from
from finscale.report.collect import StudyResult, trial_arch

# The columns every export has, in this order; parameters (`param_*`) and metrics follow.
BASE_COLUMNS = [
    "study", "experiment", "budget", "budget_params", "horizon", "trial", "state", "value",
    "metric", "direction", "counted", "forced", "requeued_from", "datetime_start",
    "datetime_complete", "duration_s", "arch", "d_model", "n_layers", "n_heads", "d_ff",
    "param_count", "l_over_d",
]  # fmt: skip
# User attributes that are not per-trial figures, or are already a column.
_SKIP_ATTRS = {"forced", "requeued_from", "param_count", "d_model", "n_layers", "n_heads", "d_ff"}
# Window arrays (encoded logits and labels, kilobytes each): not a figure of a table. They stay
# in the storage, where the report's tests read them (docs/report.md says how to get them).
WINDOW_ARRAYS = frozenset({TRIAL_VAL_LOGITS, TRIAL_VAL_LABELS})


def utc_time(moment: datetime | None) -> str | None:
    """ISO 8601 with the UTC offset (`2026-12-02T18:12:27.776028+00:00`). Optuna's times are
    naive, and a worker keeps UTC (`finscale.hpo.clock`): a naive time is UTC."""
    if moment is None:
        return None
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat()


def duration_s(trial: FrozenTrial) -> float | None:
    """Seconds from start to end; None while a trial has not run to its end."""
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return round((trial.datetime_complete - trial.datetime_start).total_seconds(), 3)


def trial_row(result: StudyResult, trial: FrozenTrial, *, counted: bool) -> dict[str, Any]:
    """One trial: identity, state, value, timing, architecture, parameters and user attrs."""
    arch = trial_arch(trial)
    row: dict[str, Any] = {
        "study": result.name,
        "experiment": result.experiment,
        "budget": result.budget,
        "budget_params": result.budget_params,
        "horizon": result.horizon,
        "trial": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "metric": result.metric,
        "direction": result.direction,
        "counted": counted,
        "forced": trial.user_attrs.get(TRIAL_FORCED),
        "requeued_from": requeued_from(trial),
        "datetime_start": utc_time(trial.datetime_start),
        "datetime_complete": utc_time(trial.datetime_complete),
        "duration_s": duration_s(trial),
        "arch": arch.id if arch else None,
        **(arch.dims() if arch else dict.fromkeys(("d_model", "n_layers", "n_heads", "d_ff"))),
        "param_count": (arch.param_count or None) if arch else None,
        "l_over_d": round(arch.n_layers / arch.d_model, 4) if arch else None,
    }
    row.update({f"param_{k}": v for k, v in trial.params.items() if k != "arch"})
    for key, value in trial.user_attrs.items():
        if (
            key not in _SKIP_ATTRS
            and key not in WINDOW_ARRAYS
            and not isinstance(value, dict | list)
        ):
            row[key] = value
    return row


def trials_frame(results: list[StudyResult]) -> pd.DataFrame:
    """All trials of all studies, one row each, in study then trial order."""
    rows: list[dict[str, Any]] = []
    for result in results:
        counted = {t.number for t in result.counted}
        rows.extend(trial_row(result, t, counted=t.number in counted) for t in result.trials)
    frame = pd.DataFrame(rows, columns=None if rows else BASE_COLUMNS)
    params = sorted(c for c in frame.columns if c.startswith("param_") and c != "param_count")
    extra = sorted(c for c in frame.columns if c not in BASE_COLUMNS and c not in params)
    return frame[BASE_COLUMNS + params + extra]


def clean(value: Any) -> Any:
    """JSON has no NaN: missing and undefined figures become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as JSON-ready dicts (NaN → null, numpy scalars → Python)."""
    out = []
    for row in frame.astype(object).to_dict(orient="records"):
        out.append({str(k): clean(v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    return out


def best_record(result: StudyResult) -> dict[str, Any]:
    """A study's best trial with what rebuilds and explains it, and the study's progress."""
    best = result.best
    record: dict[str, Any] = {
        "study": result.name,
        "experiment": result.experiment,
        "budget": result.budget,
        "budget_params": result.budget_params,
        "horizon": result.horizon,
        "metric": result.metric,
        "direction": result.direction,
        "n_trials": result.n_trials,
        "finished": result.finished,
        "complete": len(result.complete),
        "partial": not result.done,
        "best": None,
    }
    if best is None:
        return record
    arch = trial_arch(best)
    record["best"] = {
        "trial": best.number,
        "value": best.value,
        "params": dict(best.params),
        "architecture": (
            {"id": arch.id, **arch.dims(), "param_count": arch.param_count or None}
            if arch
            else None
        ),
        "metrics": {k: clean(v) for k, v in best.user_attrs.items() if k.startswith("val_")},
        "epochs_run": best.user_attrs.get("epochs_run"),
        "best_epoch": best.user_attrs.get("best_epoch"),
        "stop_reason": best.user_attrs.get("stop_reason"),
        "forced": best.user_attrs.get(TRIAL_FORCED),
        "dataset_sha256": best.user_attrs.get("dataset_sha256"),
        "duration_s": duration_s(best),
    }
    return record


def write_exports(results: list[StudyResult], out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """`trials.csv`, `trials.json` and `best.json` in `out`; returns the frame and the files."""
    frame = trials_frame(results)
    paths = [out / "trials.csv", out / "trials.json", out / "best.json"]
    frame.to_csv(paths[0], index=False)
    paths[1].write_text(json.dumps(records(frame), indent=1, allow_nan=False) + "\n")
    best = {r.name: best_record(r) for r in results}
    paths[2].write_text(json.dumps(best, indent=1, allow_nan=False) + "\n")
    return frame, paths
