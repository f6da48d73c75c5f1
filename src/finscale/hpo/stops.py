"""What a running trial checks between optimizer steps: a signal received, or the trial taken
over by a peer (its heartbeat, recorded from a thread of its own, found it finished)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from optuna.storages import RDBStorage

from finscale.errors import FinscaleError, Interrupted
from finscale.hpo import storage

log = logging.getLogger(__name__)


class TakenOver(FinscaleError):  # noqa: N818 - an outcome, not a failure
    """The running trial was finished by someone else (a peer failed it as stale)."""


class Heartbeat:
    """Records a running trial's heartbeat every interval, in a thread of its own: `optimize`
    beats only for its own trials, and this worker runs an ask/tell loop.

    It never raises: a missed beat is logged (the grace period covers it, and an outage is
    reported to `storage.REACHABILITY`). After each beat it looks at the trial's state: a trial
    a peer failed as stale is `taken_over`, and training stops at the next step.
    """

    def __init__(self, storage: RDBStorage, trial_id: int, interval_s: int) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.taken_over = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{trial_id}", daemon=True
        )

    def _beat(self) -> None:
        while True:
            try:
                self._storage.record_heartbeat(self._trial_id)
                if self._storage.get_trial(self._trial_id).state.is_finished():
                    self.taken_over.set()
                storage.REACHABILITY.succeeded()
            except Exception as e:  # a missed beat is not fatal; the grace period covers a few
                if storage.classify(e) == "transient":
                    storage.REACHABILITY.failed()
                log.warning(
                    "heartbeat of trial id %d failed: %s", self._trial_id, storage.cause_text(e)
                )
            if self._stop.wait(self._interval_s):
                return

    def check(self) -> None:
        """Raise `TakenOver` when a peer has finished the trial."""
        if self.taken_over.is_set():
            raise TakenOver("a peer failed it as stale (its heartbeat was late)")

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Signals:
    """SIGTERM and SIGINT only raise a flag; the trial checks it between optimizer steps.

    Raising from the handler itself is unsafe: the exception lands wherever the main thread
    happens to be, inside a storage write or a garbage-collector finalizer that swallows it.
    """

    def __init__(self) -> None:
        self.received: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name

    def check(self) -> None:
        """Raise `Interrupted` when a signal has arrived."""
        if self.received:
            raise Interrupted(f"{self.received} received")


class Stops:
    """What training checks between optimizer steps: a signal, or a trial taken over."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals
        self.heartbeat: Heartbeat | None = None

    def check(self) -> None:
        self.signals.check()
        if self.heartbeat is not None:
            self.heartbeat.check()
