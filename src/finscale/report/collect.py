"""Studies as the report sees them: what each was asked to do (from the spec stored with it) and
how far it got."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from finscale.model import Arch, parse_arch_id
from finscale.param_budget import parse_budget
from finscale.records import (
    ATTR_BASELINES,
    ATTR_FIELDS,
    ATTR_N_TRIALS,
    ATTR_SPEC,
    ATTR_WINDOWS,
    TRIAL_PARAM_COUNT,
    Baseline,
    EvalRun,
    SplitWindows,
    StoredStudy,
    WindowsRecord,
    baselines_from_json,
    counted,
    eval_runs,
)


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
    def windows(self) -> WindowsRecord:
        """The windows the study stored (none of them: set up by an older finscale)."""
        return WindowsRecord.from_json(self.attrs.get(ATTR_WINDOWS) or {})

    @property
    def val_windows(self) -> SplitWindows | None:
        """The validation windows the study stored (None: set up by an older finscale)."""
        return self.windows.val

    @property
    def test_windows(self) -> SplitWindows | None:
        """The test windows the study stored (None: none, or an older finscale)."""
        return self.windows.test

    @property
    def train_positive_rate(self) -> float:
        return self.windows.train_positive_rate

    @cached_property
    def baselines(self) -> dict[str, Baseline]:
        """The baselines fitted on the study's training windows, by name."""
        return baselines_from_json(self.attrs.get(ATTR_BASELINES))

    @cached_property
    def evaluation(self) -> list[EvalRun]:
        """The final evaluation's runs (`finscale evaluate`), by trial then seed."""
        return eval_runs(self.attrs)

    @cached_property
    def definition(self) -> dict[str, str]:
        """The study's search definition, flattened (its fingerprint's fields)."""
        return dict(self.attrs.get(ATTR_FIELDS) or {})

    @cached_property
    def startup_trials(self) -> int | None:
        """The TPE sampler's start-up trials (`sampler.n_startup_trials`): the draws it makes
        before it models the results. None for a random sampler or a study without a stored
        sampler."""
        sampler = (self.attrs.get(ATTR_SPEC) or {}).get("sampler") or {}
        if sampler.get("type", "tpe") != "tpe" or sampler.get("n_startup_trials") is None:
            return None
        return int(sampler["n_startup_trials"])

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
    count = trial.user_attrs.get(TRIAL_PARAM_COUNT)
    return Arch(**arch.dims(), param_count=int(count)) if count is not None else arch
