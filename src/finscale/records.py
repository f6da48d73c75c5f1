"""The storage contract: every key finscale stores in an Optuna study, and the typed records
stored under them with their JSON forms.

The HPO engine writes through this module and the report reads through it, so the two agree on
one definition; the report needs nothing of `finscale.hpo`. The forms are those of the 0.1.0
release (a storage it wrote is read unchanged: `tests/integration/test_golden.py`). Readers are
lenient where older releases stored less; a record that is not what its key promises raises
`RecordError` naming the key and the field.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from optuna.trial import FrozenTrial

from finscale.errors import ExitCode, FinscaleError
from finscale.predictions import decode_labels, decode_logits, encode_labels, encode_logits

# --- Study user attributes -----------------------------------------------------------------
ATTR_FINGERPRINT = "finscale.fingerprint"  # digest of the search definition
ATTR_FIELDS = "finscale.fingerprint_fields"  # the search definition, flattened
ATTR_SPEC = "finscale.spec"  # the study spec, as JSON
ATTR_N_TRIALS = "finscale.n_trials"  # the trial budget (may be extended later)
ATTR_EXTREMES = "finscale.forced_extremes"  # forced trial name → architecture id
ATTR_DATASET_SHA256 = "finscale.dataset_sha256"  # the dataset version the study is pinned to
ATTR_CODE_SHA256 = "finscale.code_sha256"  # `finscale.identity` of the code that created it
ATTR_WINDOWS = "finscale.windows"  # `WindowsRecord`: labels and starts of val and test
ATTR_BASELINES = "finscale.baselines"  # `Baseline`s by name, on the same windows
ATTR_EVAL_PREFIX = "finscale.eval."  # + "<trial>.<seed index>": one `EvalRun`

# --- Trial user attributes ------------------------------------------------------------------
TRIAL_SEED = "seed"  # the training seed (trials stored before it trained with their number)
TRIAL_WORKER = "worker"  # the worker that ran it
TRIAL_PARAM_COUNT = "param_count"  # the architecture's exact parameter count
TRIAL_FORCED = "forced"  # the name of the forced extreme it trains, if any
TRIAL_FAIL_REASON = "fail_reason"  # why it failed, for a person
TRIAL_REQUEUED_FROM = "requeued_from"  # the trial a hand-back copy reruns (for a person)
TRIAL_DEVICE_FAULTS = "device_faults"  # devices that failed under it (and its hand-back copies)
TRIAL_MICRO_BATCH = "micro_batch"
TRIAL_ACCUMULATION_STEPS = "accumulation_steps"
TRIAL_ESTIMATED_MEMORY_MIB = "estimated_memory_mib"
TRIAL_BEST_EPOCH = "best_epoch"
TRIAL_EPOCHS_RUN = "epochs_run"
TRIAL_STOP_REASON = "stop_reason"
TRIAL_DATASET_SHA256 = "dataset_sha256"
TRIAL_CODE_SHA256 = "code_sha256"  # `finscale.identity` of the code that trained it
TRIAL_TORCH_THREADS = "torch_threads"  # torch.get_num_threads() while it trained
TRIAL_VAL_PREFIX = "val_"  # + metric name: the best epoch's validation metrics
TRIAL_VAL_LOGITS = "val_logits"  # `encode_logits` of the best epoch's validation logits
TRIAL_VAL_LABELS = "val_labels"  # `encode_labels` of the validation labels (older studies)

# --- Trial system attributes -----------------------------------------------------------------
SYSTEM_REQUEUED_FROM = "finscale:requeued_from"  # a hand-back copy: the number it reruns
SYSTEM_RETRY_HISTORY = "retry_history"  # Optuna's stale-trial retries: numbers rerun
SYSTEM_FAILED_TRIAL = "failed_trial"  # Optuna's stale-trial retry: the number it reruns
SYSTEM_FIXED_PARAMS = "fixed_params"  # Optuna's enqueued trial: the parameters it was given


class RecordError(FinscaleError):
    """A stored record is not what its key promises (a field missing or of the wrong kind):
    the storage was written by something else than finscale, or damaged. Never retried."""

    exit_code: int = ExitCode.BAD_INPUT


_T = TypeVar("_T")


def _parse(key: str, record: Any, parse: Callable[[Mapping[str, Any]], _T]) -> _T:
    """`parse(record)`, any failure turned into a `RecordError` naming the key and field."""
    if not isinstance(record, Mapping):
        raise RecordError(f"{key}: expected a JSON object, got {type(record).__name__}")
    try:
        return parse(record)
    except KeyError as e:
        raise RecordError(f"{key}: field {e.args[0]!r} is missing") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise RecordError(f"{key}: {e}") from None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _metrics(values: Mapping[str, Any] | None) -> dict[str, float]:
    """Stored metrics (null where not measured) as floats (NaN where not measured)."""
    return {k: math.nan if v is None else float(v) for k, v in (values or {}).items()}


# --- The windows ------------------------------------------------------------------------------
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

    def to_json(self) -> dict[str, Any]:
        """Labels as packed bits and starts as runs of consecutive rows."""
        starts = self.starts
        breaks = np.flatnonzero(np.diff(starts) != 1)
        firsts = np.concatenate([[starts[0]], starts[breaks + 1]])
        lasts = np.concatenate([starts[breaks], [starts[-1]]])
        return {
            "n": len(starts),
            "labels": encode_labels(self.labels),
            "runs": [[int(a), int(b)] for a, b in zip(firsts, lasts, strict=True)],
            "first_date": self.first_date,
            "last_date": self.last_date,
            "positive_rate": self.positive_rate,
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> SplitWindows:
        starts = np.concatenate([np.arange(a, b + 1) for a, b in record["runs"]])
        return cls(
            labels=decode_labels(record["labels"]),
            starts=starts,
            first_date=str(record.get("first_date", "")),
            last_date=str(record.get("last_date", "")),
        )


@dataclass(frozen=True)
class WindowsRecord:
    """What the report needs of a study's windows (`ATTR_WINDOWS`), stored once."""

    horizon: int
    train_n: int
    train_positive_rate: float
    val: SplitWindows | None  # None: no windows (or not stored by an older finscale)
    test: SplitWindows | None  # None: the split has no test region

    def to_json(self) -> dict[str, Any]:
        def split(windows: SplitWindows | None) -> dict[str, Any]:
            return {"n": 0} if windows is None else windows.to_json()

        return {
            "horizon": self.horizon,
            "train": {"n": self.train_n, "positive_rate": self.train_positive_rate},
            "val": split(self.val),
            "test": split(self.test),
        }

    @classmethod
    def from_json(cls, record: Any, *, key: str = ATTR_WINDOWS) -> WindowsRecord:
        """Raises `RecordError` naming `key` when the record is not a windows record."""

        def parse(r: Mapping[str, Any]) -> WindowsRecord:
            def split(name: str) -> SplitWindows | None:
                found = r.get(name)
                return SplitWindows.from_json(found) if found and found.get("n") else None

            train = r.get("train") or {}
            rate = train.get("positive_rate")
            return cls(
                horizon=int(r.get("horizon", 0)),
                train_n=int(train.get("n", 0)),
                train_positive_rate=math.nan if rate is None else float(rate),
                val=split("val"),
                test=split("test"),
            )

        return _parse(key, record, parse)


# --- The baselines ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Baseline:
    """A baseline's logits on the study's validation and test windows, and what its fit chose."""

    name: str
    val: np.ndarray
    test: np.ndarray | None  # None: the split has no test region
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "val": encode_logits(self.val),
            "test": encode_logits(self.test) if self.test is not None and len(self.test) else None,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, name: str, record: Mapping[str, Any]) -> Baseline:
        test = record.get("test")
        return cls(
            name=name,
            val=decode_logits(record["val"]),
            test=decode_logits(test) if test else None,
            details=dict(record.get("details") or {}),
        )


def baselines_to_json(baselines: Mapping[str, Baseline]) -> dict[str, Any]:
    """The `ATTR_BASELINES` record: each baseline's JSON form by name."""
    return {name: b.to_json() for name, b in baselines.items()}


def baselines_from_json(record: Any, *, key: str = ATTR_BASELINES) -> dict[str, Baseline]:
    """The baselines by name (none when not stored).

    Raises:
        RecordError: the record is not a baselines record (names `key` and the baseline).
    """
    out: dict[str, Baseline] = {}
    for name, value in (record or {}).items():
        out[name] = _parse(f"{key}.{name}", value, functools.partial(Baseline.from_json, name))
    return out


# --- The final evaluation ---------------------------------------------------------------------
def eval_key(trial: int, seed_index: int) -> str:
    """The study user attribute of one evaluation run."""
    return f"{ATTR_EVAL_PREFIX}{trial}.{seed_index}"


@dataclass(frozen=True)
class EvalRun:
    """One retraining of a trial with one seed (`finscale evaluate`), scored on validation
    and test."""

    trial: int
    seed_index: int
    seed: int
    arch: str
    param_count: int
    refit: bool  # trained on training + validation windows for the trial's best epoch count
    best_epoch: int
    epochs_run: int
    val: dict[str, float]  # of the model trained on the training windows (NaN after a refit)
    test: dict[str, float]
    test_logits: str  # `finscale.predictions.encode_logits`, one per test window
    wall_time_s: float

    def to_json(self) -> dict[str, Any]:
        """The JSON stored in the study (NaN becomes null)."""
        return {
            "trial": self.trial,
            "seed_index": self.seed_index,
            "seed": self.seed,
            "arch": self.arch,
            "param_count": self.param_count,
            "refit": self.refit,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "val": {k: _finite(v) for k, v in self.val.items()},
            "test": {k: _finite(v) for k, v in self.test.items()},
            "test_logits": self.test_logits,
            "wall_time_s": round(self.wall_time_s, 2),
        }

    @classmethod
    def from_json(cls, record: Any, *, key: str = ATTR_EVAL_PREFIX) -> EvalRun:
        """Raises `RecordError` naming `key` when the record is not an evaluation run."""

        def parse(r: Mapping[str, Any]) -> EvalRun:
            return cls(
                trial=int(r["trial"]),
                seed_index=int(r["seed_index"]),
                seed=int(r["seed"]),
                arch=str(r["arch"]),
                param_count=int(r["param_count"]),
                refit=bool(r.get("refit")),
                best_epoch=int(r.get("best_epoch", 0)),
                epochs_run=int(r.get("epochs_run", 0)),
                val=_metrics(r.get("val")),
                test=_metrics(r.get("test")),
                test_logits=str(r.get("test_logits") or ""),
                wall_time_s=float(r.get("wall_time_s", math.nan)),
            )

        return _parse(key, record, parse)


def eval_runs(attrs: Mapping[str, Any]) -> list[EvalRun]:
    """The final evaluation's runs stored in a study's user attributes, by trial then seed."""
    runs = [EvalRun.from_json(v, key=k) for k, v in attrs.items() if k.startswith(ATTR_EVAL_PREFIX)]
    return sorted(runs, key=lambda r: (r.trial, r.seed_index))


# --- A trial's result ------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialRecord:
    """What a completed trial stores beside its value, as trial user attributes."""

    epochs_run: int
    best_epoch: int
    stop_reason: str
    train_loss: float
    val: dict[str, float]  # the best epoch's validation metrics, stored as `val_<name>`
    dataset: str
    dataset_sha256: str
    device: str
    precision: str
    windows_train: int
    windows_val: int
    wall_time_s: float
    windows_per_s: float
    val_logits: str  # `encode_logits` of the best epoch's validation logits

    def to_json(self) -> dict[str, Any]:
        """The trial user attributes, by key."""
        return {
            TRIAL_EPOCHS_RUN: self.epochs_run,
            TRIAL_BEST_EPOCH: self.best_epoch,
            TRIAL_STOP_REASON: self.stop_reason,
            "train_loss": self.train_loss,
            **{f"{TRIAL_VAL_PREFIX}{k}": v for k, v in self.val.items()},
            "dataset": self.dataset,
            TRIAL_DATASET_SHA256: self.dataset_sha256,
            "device": self.device,
            "precision": self.precision,
            "windows_train": self.windows_train,
            "windows_val": self.windows_val,
            "wall_time_s": round(self.wall_time_s, 2),
            "windows_per_s": round(self.windows_per_s, 1),
            TRIAL_VAL_LOGITS: self.val_logits,
        }

    @classmethod
    def from_json(cls, attrs: Any, *, key: str = "trial") -> TrialRecord:
        """Raises `RecordError` naming `key` when the attributes are not a completed trial's."""

        def parse(a: Mapping[str, Any]) -> TrialRecord:
            metrics = {
                k.removeprefix(TRIAL_VAL_PREFIX): float(v)
                for k, v in a.items()
                if k.startswith(TRIAL_VAL_PREFIX) and k not in (TRIAL_VAL_LOGITS, TRIAL_VAL_LABELS)
            }
            return cls(
                epochs_run=int(a[TRIAL_EPOCHS_RUN]),
                best_epoch=int(a[TRIAL_BEST_EPOCH]),
                stop_reason=str(a[TRIAL_STOP_REASON]),
                train_loss=float(a["train_loss"]),
                val=metrics,
                dataset=str(a["dataset"]),
                dataset_sha256=str(a[TRIAL_DATASET_SHA256]),
                device=str(a["device"]),
                precision=str(a["precision"]),
                windows_train=int(a["windows_train"]),
                windows_val=int(a["windows_val"]),
                wall_time_s=float(a["wall_time_s"]),
                windows_per_s=float(a["windows_per_s"]),
                val_logits=str(a[TRIAL_VAL_LOGITS]),
            )

        return _parse(key, attrs, parse)


# --- Studies ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredStudy:
    """A study as the storage holds it, for readers such as the report."""

    name: str
    direction: str  # "minimize" or "maximize"
    user_attrs: dict[str, Any]  # the spec, budget and fingerprint when set up by finscale
    trials: list[FrozenTrial]


def dataset_pin(attrs: Mapping[str, Any]) -> str | None:
    """The dataset version (sha256) a study's user attributes pin it to; None when unpinned.

    Studies created before the pin was stored carry it in their fingerprint fields.
    """
    pinned = attrs.get(ATTR_DATASET_SHA256)
    if pinned is None:
        stored = (attrs.get(ATTR_FIELDS) or {}).get("dataset_sha256")
        pinned = json.loads(stored) if stored else None
    return str(pinned) if pinned else None


def superseded(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of failed trials whose rerun took their place (Optuna's stale-trial retries
    record them in `SYSTEM_RETRY_HISTORY`, finscale's hand-backs in `SYSTEM_REQUEUED_FROM`)."""
    numbers: set[int] = set()
    for t in trials:
        numbers.update(t.system_attrs.get(SYSTEM_RETRY_HISTORY, []))
        if SYSTEM_REQUEUED_FROM in t.system_attrs:
            numbers.add(int(t.system_attrs[SYSTEM_REQUEUED_FROM]))
    return numbers


def counted(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The finished trials that count against the budget: a rerun replaces what it reran.

    The one definition of "finished" that the budget, `finscale status` and the report share.
    """
    replaced = superseded(trials)
    return [t for t in trials if t.state.is_finished() and t.number not in replaced]


def requeued_from(trial: FrozenTrial) -> int | None:
    """The trial this one reruns (after a stale heartbeat or SIGTERM), if any."""
    source = trial.system_attrs.get(
        SYSTEM_REQUEUED_FROM, trial.system_attrs.get(SYSTEM_FAILED_TRIAL)
    )
    return int(source) if source is not None else None


def forced_as(trial: FrozenTrial) -> str | None:
    """Why the trial's architecture is not the sampler's choice: the forced extreme it trains
    (e.g. "deepest"), "enqueued" for another trial queued with its architecture fixed; None when
    the sampler drew it.

    Forced extremes carry `TRIAL_FORCED` (every release); any enqueued trial carries Optuna's
    `SYSTEM_FIXED_PARAMS`, and hand-back copies and stale-trial reruns keep both.
    """
    name = trial.user_attrs.get(TRIAL_FORCED)
    if name:
        return str(name)
    fixed = trial.system_attrs.get(SYSTEM_FIXED_PARAMS)
    # "arch": the architecture's trial parameter (`finscale.hpo.objective`).
    return "enqueued" if isinstance(fixed, Mapping) and "arch" in fixed else None


def fail_reason(trial: FrozenTrial, default: str = "") -> str:
    """Why a trial failed, as stored (`default` when nothing was)."""
    return str(trial.user_attrs.get(TRIAL_FAIL_REASON, default))
