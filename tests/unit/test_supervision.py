"""Worker processes and their supervisor: a worker ends when its supervisor dies, however it
dies; each run's logs are its own and kept; a pod names the worker that failed it; a log that
cannot be written fails no trial."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finscale.errors import LocalFileError
from finscale.hpo.events import EventLog
from finscale.hpo.pod import _pod_outcome
from finscale.hpo.processes import WorkerProcess, exit_status, exit_text
from finscale.hpo.run_logs import RunLogs

# A worker stand-in: follows its parent as `finscale worker` does, and on SIGTERM writes how it
# ended to a file and exits 143 (as a worker does after handing its trial back).
_CHILD = """
import os, signal, sys, time
from pathlib import Path
from finscale.hpo import lifeline
watchdog_only = sys.argv[2] == "watchdog-only"
if watchdog_only:  # as where prctl does not exist
    lifeline._death_signal = lambda signum: False
def stop(signum, frame):
    Path(sys.argv[1]).write_text(f"{signal.Signals(signum).name} {os.getppid()}")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
# kernel: the watchdog looks too late to matter; only the kernel's death signal can stop it
lifeline.follow_parent(os.environ, interval_s=0.1 if watchdog_only else 3600)
Path(sys.argv[1] + ".ready").write_text("")
time.sleep(120)
"""

# The supervisor stand-in: starts the child with its own pid in the environment, then waits.
_PARENT = """
import os, subprocess, sys, time
env = dict(os.environ, FINSCALE_PARENT_PID=str(os.getpid()))
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]], env=env)
print(child.pid, flush=True)
time.sleep(120)
"""


def _wait_for(path: Path, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the child")
@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("kernel", marks=pytest.mark.skipif(sys.platform != "linux", reason="prctl")),
        "watchdog-only",
    ],
)
def test_a_worker_stops_as_on_sigterm_when_its_supervisor_is_killed(
    mode: str, tmp_path: Path
) -> None:
    # Given a supervisor whose worker follows it (by the kernel's death signal, or by the
    # watchdog alone),
    ended = tmp_path / "ended"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, _CHILD, str(ended), mode],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    _wait_for(Path(f"{ended}.ready"))
    # when the supervisor is killed with SIGKILL (no chance to stop anything),
    parent.kill()
    parent.wait()
    # then the worker gets SIGTERM, as on a user's stop, and ends.
    _wait_for(ended)
    assert ended.read_text().split()[0] == "SIGTERM"
    deadline = time.monotonic() + 30
    while _alive(child):
        assert time.monotonic() < deadline, f"worker {child} outlived its supervisor"
        time.sleep(0.05)


def test_a_worker_whose_supervisor_died_before_it_looked_stops_at_once(tmp_path: Path) -> None:
    # A parent pid that is not this process's parent: the parent is already gone.
    code = (
        "import os, signal, sys, time\n"
        "from finscale.hpo.lifeline import follow_parent\n"
        "signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))\n"
        "follow_parent({'FINSCALE_PARENT_PID': '1' if os.getppid() != 1 else '2'})\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=60, check=False)
    assert done.returncode == 143


def test_without_a_named_parent_nothing_is_followed() -> None:
    from finscale.hpo.lifeline import follow_parent

    assert follow_parent({}) is False
    assert follow_parent({"FINSCALE_PARENT_PID": "not-a-pid"}) is False


def test_exit_codes_read_as_a_shell_reads_them() -> None:
    assert exit_text(3) == "exited with code 3"
    assert exit_text(-signal.SIGKILL) == "was killed by SIGKILL"
    assert exit_status(-signal.SIGKILL) == 137
    assert exit_status(2) == 2


def _ended(index: int, code: str) -> WorkerProcess:
    process = subprocess.Popen([sys.executable, "-c", code])
    process.wait()
    return WorkerProcess(index, process, Path("-"))


def test_a_pod_whose_worker_was_killed_names_it_in_its_last_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a pod of two workers, one exited 0 and one killed with SIGKILL (the OOM killer),
    well = _ended(6, "pass")
    killed = _ended(7, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    # the pod exits 128 + 9, and its last line names the worker, its pid and the signal.
    with caplog.at_level(logging.ERROR):
        assert _pod_outcome([well, killed], pod=3) == 137
    assert caplog.messages[-1] == (
        f"pod 3: worker 7 (process 2 of 2, pid {killed.process.pid}) was killed by SIGKILL; "
        "the pod exits 137"
    )


def test_a_pod_exits_with_the_most_telling_code_and_names_that_worker_last(
    caplog: pytest.LogCaptureFixture,
) -> None:
    killed = _ended(0, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    bad = _ended(1, "raise SystemExit(2)")
    with caplog.at_level(logging.ERROR):
        assert _pod_outcome([killed, bad], pod=0) == 2
    assert len(caplog.messages) == 2
    assert "worker 0 (process 1 of 2" in caplog.messages[0]
    assert caplog.messages[-1].endswith("exited with code 2; the pod exits 2")
    assert _pod_outcome([_ended(0, "pass")], pod=0) == 0


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_run_logs_into_a_folder_of_its_own_and_keeps_the_last(tmp_path: Path) -> None:
    # Given a run whose worker exited 3 (its log says why),
    first = RunLogs.create(tmp_path / "runs", "it-30k-h1", workers=2)
    with first.path(0).open("a") as log:
        log.write('{"event": "trial_end", "state": "FAIL"}\n')
    assert first.close(0, 3) is None
    # when the spec runs again, twice at once,
    second = RunLogs.create(tmp_path / "runs", "it-30k-h1", workers=2)
    third = RunLogs.create(tmp_path / "runs", "it-30k-h1", workers=2)
    # then each run has its own files: the first run's log is kept whole, ending with its exit,
    assert len({first.folder, second.folder, third.folder}) == 3
    events = [line["event"] for line in _lines(first.path(0))]
    assert events == ["run_start", "trial_end", "run_end"]
    assert _lines(first.path(0))[-1]["ended"] == "exited with code 3"
    assert [line["run"] for line in _lines(third.path(1))] == [third.run_id]
    assert second.run_id != third.run_id


def test_a_run_that_never_started_leaves_no_log_folder(tmp_path: Path) -> None:
    logs = RunLogs.create(tmp_path / "runs", "it-30k-h1", workers=1)
    other = logs.folder.parent / "run-other"
    other.mkdir()  # a concurrent run's folder stays
    logs.discard()
    assert not logs.folder.exists() and other.exists()
    alone = RunLogs.create(tmp_path / "fresh", "it-30k-h1", workers=1)
    alone.discard()
    assert not (tmp_path / "fresh").exists()


def test_a_runs_folder_that_cannot_be_written_is_named_with_the_cause(tmp_path: Path) -> None:
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the runs folder should be")
    with pytest.raises(
        LocalFileError, match=r"runs/it-30k-h1: cannot create the run's log folder: Not a directory"
    ):
        RunLogs.create(blocker, "it-30k-h1", workers=1)


class _FullDisk:
    def write(self, _text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_an_event_line_that_cannot_be_written_fails_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = EventLog(study="it", worker=0, stream=_FullDisk())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR):
        events.emit("epoch", trial=0, epoch=1)
        events.emit("epoch", trial=0, epoch=2)
    assert events.dropped == 2
    assert caplog.messages == [
        "event lines cannot be written (No space left on device); dropping them"
    ]
