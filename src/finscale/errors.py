"""The errors finscale raises on purpose, and the exit code each one means.

The CLI maps them to exit codes in one place (`cli.main`); anything else is a bug and exits 1
with a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of every finscale command, and what a Job's pod failure policy does with
    each (docs/settings.md has the table)."""

    OK = 0  # done: a worker's study has spent its trial budget
    ERROR = 1  # an unexpected error (with its traceback: a bug), or a failed check (render --check)
    BAD_INPUT = 2  # a bad spec, data, setting or storage refusal: never retried (FailJob)
    STORAGE_UNAVAILABLE = 3  # the storage (or the Kubernetes API) did not answer: retried
    DEVICE_UNUSABLE = 4  # the worker's device failed (preflight, or under a trial handed back)
    INTERRUPTED = 143  # SIGTERM or SIGINT (128 + 15): the running trial was handed back


class FinscaleError(Exception):
    """Base of every error finscale raises on purpose; its message is meant for a person."""

    exit_code: int = ExitCode.ERROR


class SpecError(FinscaleError):
    """A spec or an option is invalid: names the file, the field path and the value.

    Never retried: a Job's pod failure policy fails the Job on this exit code.
    """

    exit_code: int = ExitCode.BAD_INPUT


class DataError(FinscaleError):
    """Input data is missing or wrong: names the file (or source), the row and the column.

    Raised for a missing column, a bad or duplicate date, a NaN or non-positive price, bars that
    contradict themselves, an unknown ticker, an empty file, or a checksum that does not match.
    Never retried.
    """

    exit_code: int = ExitCode.BAD_INPUT


class TrainingError(FinscaleError):
    """A training run could not produce a result; the HPO engine records it as a failed trial."""

    exit_code: int = ExitCode.ERROR


class DivergenceError(TrainingError):
    """The training loss became NaN or infinite (never turned into a made-up loss value)."""


class OutOfMemoryError(TrainingError):
    """The device or the host ran out of memory while training."""


class SettingsError(FinscaleError):
    """A `FINSCALE_*` value is invalid (not a number, out of range, a heartbeat grace shorter
    than twice the interval, a storage URL of an unsupported kind): the message names the
    variable and its value. Never retried."""

    exit_code: int = ExitCode.BAD_INPUT


class StorageUnavailableError(FinscaleError):
    """The study storage did not answer within the storage deadline
    (`FINSCALE_STORAGE_DEADLINE_S`): unreachable, restarting, failing over. Retried by the Job;
    a worker that raises it mid-trial hands the trial back first when the storage lets it."""

    exit_code: int = ExitCode.STORAGE_UNAVAILABLE


class DeviceUnusableError(FinscaleError):
    """The device a worker was given cannot train (no CUDA, a GPU too old for the build, a
    failing kernel, bf16 asked of a GPU without it), found before the worker reserves a trial;
    or it failed under a running trial (a CUDA execution or ECC error, a lost GPU), which was
    handed back (at most the study's `max_retries` times, then counted as failed). The Job
    retries the pod, where the scheduler may place it on another node."""

    exit_code: int = ExitCode.DEVICE_UNUSABLE


class StorageConfigError(FinscaleError):
    """The storage answered with a refusal that waiting cannot fix: authentication failed, the
    database or role does not exist, the URL is unparsable or names an unsupported driver.
    Raised at once, without retries, with the server's own words. Never retried."""

    exit_code: int = ExitCode.BAD_INPUT


class StudyMismatchError(FinscaleError):
    """A study of that name exists with another search definition (spec, grid or dataset);
    the message lists the fields that differ. Never retried."""

    exit_code: int = ExitCode.BAD_INPUT


class CodeMismatchError(StudyMismatchError):
    """A study was created by other finscale code (its stored source digest differs from this
    process's, `finscale.identity`); the message names both digests and how to allow it
    (`--allow-code-change`, `FINSCALE_ALLOW_CODE_CHANGE=1`). Never retried."""


class StudyFailedError(FinscaleError):
    """A study's budget is spent and not one trial completed: every counted trial failed. The
    message quotes the most common failure reason and how many trials it ended. Exit 2: the
    spec or the data is at fault, and a rerun would fail the same way."""

    exit_code: int = ExitCode.BAD_INPUT


class StudyNotFoundError(FinscaleError):
    """A named study, or a trial of it, is not in the storage; the message lists what is."""

    exit_code: int = ExitCode.BAD_INPUT


class MissingExtraError(FinscaleError):
    """A command needs an optional dependency that is not installed (`finscale dashboard`
    without optuna-dashboard); the message names the extra to install. Never retried."""

    exit_code: int = ExitCode.BAD_INPUT


class Interrupted(FinscaleError):  # noqa: N818 - a signal, not a failure
    """The worker received SIGTERM (preemption, eviction, a user's stop)."""

    exit_code: int = ExitCode.INTERRUPTED


class WorkerFailedError(FinscaleError):
    """A local worker process failed; `finscale run` exits with the worker's code."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class LocalFileError(FinscaleError):
    """A local file or folder cannot be written: the disk is full, the path is read-only or
    not permitted, or it runs through a file. Names the path and the cause. Exit 2: a rerun
    fails the same way until the disk or the path is fixed."""

    exit_code: int = ExitCode.BAD_INPUT


class ClusterError(FinscaleError):
    """The Kubernetes API refused a request, or holds nothing to act on (`finscale submit`,
    `watch`, `cancel`, `report --kube`): forbidden (403), no such namespace or resource kind
    (404), a conflict with another field manager (409), an invalid or immutable object (422),
    a kubeconfig or context that does not exist, no Jobs of that name. Names the object, the
    API's status and its message. Exit 2: a rerun fails the same way until it is fixed."""

    exit_code: int = ExitCode.BAD_INPUT


class ClusterUnavailableError(FinscaleError):
    """The Kubernetes API server did not answer (unreachable, timed out, a 5xx answer), or a
    Job did not finish within the time a command waits for it. Exit 3, like a storage that did
    not answer: waiting and retrying may help."""

    exit_code: int = ExitCode.STORAGE_UNAVAILABLE


class JobFailedError(FinscaleError):
    """A Job that `finscale watch`, `submit` (a data Job) or `report --kube` waited for
    failed; the message names it, its failure reason and its failed pods' exit codes."""

    exit_code: int = ExitCode.ERROR


class TrialFailedError(FinscaleError):
    """A trial could not produce a value (out of memory, diverged, does not fit); the study goes
    on. The message is stored as the trial's `fail_reason`."""
