"""Studies as the report sees them: what each was asked to do (from the spec stored with it) and
how far it got."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from finscale.hpo import (
    ATTR_BASELINES,
    ATTR_EVAL_PREFIX,
    ATTR_FIELDS,
    ATTR_N_TRIALS,
    ATTR_SPEC,
    ATTR_WINDOWS,
    SYSTEM_REQUEUED_FROM,
    StoredStudy,
    counted,
)
from finscale.model import Arch, parse_arch_id
from finscale.param_budget import parse_budget
from finscale.predictions import decode_labels, decode_logits


@dataclass(frozen=True)
class SplitWindows:
    """The windows of one split as the study stored them: labels, and start rows in order."""

    labels: np.ndarray  # (n,) 0/1
    starts: np.ndarray  # (n,) window start rows, sorted
    first_date: str
    last_date: str

    @property
    def positive_rate(self) -> float:
        return float(self.labels.mean()) if len(self.labels) else math.nan


def _split_windows(record: dict[str, Any] | None) -> SplitWindows | None:
    if not record or not record.get("n"):
        return None
    starts = np.concatenate([np.arange(a, b + 1) for a, b in record["runs"]])
    return SplitWindows(
        labels=decode_labels(record["labels"]),
        starts=starts,
        first_date=str(record.get("first_date", "")),
        last_date=str(record.get("last_date", "")),
    )


@dataclass(frozen=True)
class EvalRecord:
    """One run of the final evaluation (`finscale evaluate`), as stored."""

    trial: int
    seed_index: int
    arch: str
    param_count: int
    refit: bool
    best_epoch: int
    epochs_run: int
    val: dict[str, float]  # NaN where not measured (after a refit)
    test: dict[str, float]
    test_logits: str

    @classmethod
    def parse(cls, record: dict[str, Any]) -> EvalRecord:
        def metrics(values: dict[str, Any] | None) -> dict[str, float]:
            return {k: math.nan if v is None else float(v) for k, v in (values or {}).items()}

        return cls(
            trial=int(record["trial"]),
            seed_index=int(record["seed_index"]),
            arch=str(record["arch"]),
            param_count=int(record["param_count"]),
            refit=bool(record.get("refit")),
            best_epoch=int(record.get("best_epoch", 0)),
            epochs_run=int(record.get("epochs_run", 0)),
            val=metrics(record.get("val")),
            test=metrics(record.get("test")),
            test_logits=str(record.get("test_logits") or ""),
        )


@dataclass(frozen=True)
class BaselineResult:
    """A baseline's logits on the study's validation and test windows."""

    name: str
    val: np.ndarray
    test: np.ndarray | None
    details: dict[str, Any]


@dataclass(frozen=True)
class StudyResult:
    """One study: its cell of the experiment, its budget progress and its trials."""

    name: str
    experiment: str | None  # None: not set up by finscale (no stored spec)
    budget: str | None  # the label, e.g. "200K"
    budget_params: int | None
    horizon: int | None
    metric: str  # what a trial's value is, e.g. "val_bce"
    direction: str  # "minimize" or "maximize"
    n_trials: int | None  # the study's budget of finished trials
    trials: list[FrozenTrial]
    attrs: dict[str, Any] = field(default_factory=dict, repr=False)  # the study's user attrs

    @cached_property
    def val_windows(self) -> SplitWindows | None:
        """The validation windows the study stored (None: set up by an older finscale)."""
        return _split_windows((self.attrs.get(ATTR_WINDOWS) or {}).get("val"))

    @cached_property
    def test_windows(self) -> SplitWindows | None:
        """The test windows the study stored (None: none, or an older finscale)."""
        return _split_windows((self.attrs.get(ATTR_WINDOWS) or {}).get("test"))

    @cached_property
    def train_positive_rate(self) -> float:
        rate = ((self.attrs.get(ATTR_WINDOWS) or {}).get("train") or {}).get("positive_rate")
        return math.nan if rate is None else float(rate)

    @cached_property
    def baselines(self) -> dict[str, BaselineResult]:
        """The baselines fitted on the study's training windows, by name."""
        out = {}
        for name, record in (self.attrs.get(ATTR_BASELINES) or {}).items():
            test = record.get("test")
            out[name] = BaselineResult(
                name=name,
                val=decode_logits(record["val"]),
                test=decode_logits(test) if test else None,
                details=dict(record.get("details") or {}),
            )
        return out

    @cached_property
    def evaluation(self) -> list[EvalRecord]:
        """The final evaluation's runs (`finscale evaluate`), by trial then seed."""
        runs = [
            EvalRecord.parse(v) for k, v in self.attrs.items() if k.startswith(ATTR_EVAL_PREFIX)
        ]
        return sorted(runs, key=lambda r: (r.trial, r.seed_index))

    @cached_property
    def definition(self) -> dict[str, str]:
        """The study's search definition, flattened (its fingerprint's fields)."""
        return dict(self.attrs.get(ATTR_FIELDS) or {})

    # Derived once: the report asks for these many times.
    @cached_property
    def counted(self) -> list[FrozenTrial]:
        """Finished trials that count against the budget (a rerun replaces what it reran)."""
        return counted(self.trials)

    @cached_property
    def complete(self) -> list[FrozenTrial]:
        """Completed trials with a finite value, best first."""
        done = [
            t
            for t in self.trials
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
        ]
        return sorted(done, key=lambda t: self.goodness(float(t.value)))  # type: ignore[arg-type]

    @property
    def best(self) -> FrozenTrial | None:
        done = self.complete
        return done[0] if done else None

    @property
    def finished(self) -> int:
        return len(self.counted)

    def count(self, state: TrialState) -> int:
        return sum(1 for t in self.trials if t.state == state)

    @property
    def done(self) -> bool:
        """The budget is spent and nothing is running or waiting."""
        idle = self.count(TrialState.RUNNING) == 0 and self.count(TrialState.WAITING) == 0
        return self.n_trials is not None and self.finished >= self.n_trials and idle

    @property
    def progress(self) -> str:
        return f"{self.finished}/{self.n_trials}" if self.n_trials else str(self.finished)

    def goodness(self, value: float) -> float:
        """A sort key: smaller is better whatever the direction."""
        return value if self.direction == "minimize" else -value


def study_result(stored: StoredStudy) -> StudyResult:
    """Read a stored study; one that finscale did not set up keeps only its name and trials."""
    spec: dict[str, Any] = stored.user_attrs.get(ATTR_SPEC) or {}
    budget = spec.get("budget")
    n_trials = stored.user_attrs.get(ATTR_N_TRIALS, spec.get("n_trials"))
    return StudyResult(
        name=stored.name,
        experiment=spec.get("experiment"),
        budget=budget,
        budget_params=parse_budget(budget) if budget else None,
        horizon=spec.get("horizon"),
        metric=(spec.get("objective") or {}).get("metric", "value"),
        direction=stored.direction,
        n_trials=int(n_trials) if n_trials is not None else None,
        trials=list(stored.trials),
        attrs=dict(stored.user_attrs),
    )


def trial_arch(trial: FrozenTrial) -> Arch | None:
    """The architecture a trial trained, rebuilt from its parameters alone."""
    arch_id = trial.params.get("arch")
    if not isinstance(arch_id, str):
        return None
    try:
        arch = parse_arch_id(arch_id)
    except ValueError:
        return None
    count = trial.user_attrs.get("param_count")
    return Arch(**arch.dims(), param_count=int(count)) if count is not None else arch


def requeued_from(trial: FrozenTrial) -> int | None:
    """The trial this one reruns (after a stale heartbeat or SIGTERM), if any."""
    source = trial.system_attrs.get(SYSTEM_REQUEUED_FROM, trial.system_attrs.get("failed_trial"))
    return int(source) if source is not None else None
