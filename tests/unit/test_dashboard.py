"""`finscale dashboard`: optuna-dashboard on the configured storage shows a study finscale set up
with the attributes it stores, changes nothing, never prints the storage's password and stops on
Ctrl-C; without optuna-dashboard, or without a storage to show, it says so and exits 2."""

from __future__ import annotations

import _thread
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from finscale.hpo.dashboard import dashboard_server, serve_dashboard
from finscale.identity import code_sha256
from finscale.records import (
    ATTR_BASELINES,
    ATTR_CODE_SHA256,
    ATTR_DATASET_SHA256,
    ATTR_EXTREMES,
    ATTR_FIELDS,
    ATTR_FINGERPRINT,
    ATTR_N_TRIALS,
    ATTR_SPEC,
    ATTR_WINDOWS,
    TRIAL_FORCED,
)
from tests.conftest import run_cli as run
from tests.unit.test_engine import _run, _settings, _spec

SECRET = "s3cr3t-Pw-77"
# A port nothing listens on: connections are refused at once, and retried until the deadline.
REFUSED = f"postgresql://finscale:{SECRET}@127.0.0.1:1/finscale"
LINE = re.compile(
    r"optuna-dashboard on (http://127\.0\.0\.1:\d+) for (\S+); Ctrl-C stops it", re.ASCII
)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, str]:
    """An SQLite storage holding a study as finscale sets it up, its two forced trials run by a
    cheap objective: the file and the study's name."""
    folder = tmp_path_factory.mktemp("dashboard")
    spec = _spec(folder, 2)
    _run(spec, _settings(folder, data_dir))
    return folder / "studies.db", spec.name


def _start(database: Path) -> subprocess.Popen[str]:
    """`finscale dashboard --port 0` on `database`, reached through a URL with a password."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FINSCALE_")}
    environ["FINSCALE_STORAGE_URL"] = f"sqlite:///{database}?password={SECRET}"
    return subprocess.Popen(
        [sys.executable, "-m", "finscale", "dashboard", "--port", "0"],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _first_line(process: subprocess.Popen[str], timeout_s: float = 120) -> str:
    """The line the command prints once it listens (it serves from then on)."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    if not ready:
        process.kill()
        pytest.fail(f"no line within {timeout_s}s: {process.communicate()}")
    line = process.stdout.readline()
    assert line, f"it ended: {process.communicate()}"
    return line.rstrip("\n")


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C, then what it printed after its first line."""
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture(scope="module")
def served(stored: tuple[Path, str]) -> Iterator[tuple[str, str]]:
    """The dashboard serving `stored`: its address and the line it printed. Stopped after."""
    process = _start(stored[0])
    try:
        line = _first_line(process)
        match = LINE.fullmatch(line)
        assert match, line
        yield match.group(1), line
    finally:
        if process.poll() is None:
            _stop(process)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return json.load(answer)


def _attrs(serialized: list[dict[str, str]]) -> dict[str, str]:
    """optuna-dashboard's attributes, a list of {key, value}, as a dict."""
    return {a["key"]: a["value"] for a in serialized}


def test_the_study_and_what_finscale_stores_with_it_are_shown(
    served: tuple[str, str], stored: tuple[Path, str]
) -> None:
    # Given the dashboard on a storage holding a study finscale set up and ran,
    address, _ = served
    database, name = stored
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{database}")
    attrs = study.user_attrs
    # when its API lists the studies, then the study is there with finscale's attributes:
    (summary,) = _get(f"{address}/api/studies")["study_summaries"]
    assert summary["study_name"] == name
    shown = _attrs(summary["user_attrs"])
    assert set(shown) == {
        ATTR_FINGERPRINT, ATTR_FIELDS, ATTR_SPEC, ATTR_N_TRIALS, ATTR_EXTREMES,
        ATTR_DATASET_SHA256, ATTR_CODE_SHA256, ATTR_WINDOWS, ATTR_BASELINES,
    }  # fmt: skip
    # the digests and the budget whole,
    assert shown[ATTR_FINGERPRINT] == attrs[ATTR_FINGERPRINT]
    assert shown[ATTR_DATASET_SHA256] == attrs[ATTR_DATASET_SHA256]
    assert shown[ATTR_CODE_SHA256] == code_sha256()
    assert shown[ATTR_N_TRIALS] == "2"
    # the JSON records (the spec, its fields, windows, baselines) as JSON cut to 1,024
    # characters, as docs/python.md says
    assert shown[ATTR_SPEC] == json.dumps(attrs[ATTR_SPEC])[:1024]
    assert json.loads(shown[ATTR_EXTREMES]) == attrs[ATTR_EXTREMES]
    # and the study's page holds the same, with its trials and theirs.
    detail = _get(f"{address}/api/studies/{summary['study_id']}")
    assert detail["name"] == name
    assert _attrs(detail["user_attrs"]) == shown
    trials = detail["trials"]
    assert [t["state"] for t in trials] == ["Complete", "Complete"]
    forced = {_attrs(t["user_attrs"])[TRIAL_FORCED] for t in trials}
    assert forced == set(attrs[ATTR_EXTREMES])
    assert {p["name"] for t in trials for p in t["params"]} == {"arch"}


def _send(url: str, method: str, body: dict[str, Any] | None = None) -> int:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        reason = json.load(e)["reason"]
        return e.code if "read-only" in reason else -1


def test_the_dashboard_changes_nothing(served: tuple[str, str]) -> None:
    address, _ = served
    before = _get(f"{address}/api/studies")
    (summary,) = before["study_summaries"]
    study = f"{address}/api/studies/{summary['study_id']}"
    trial_id = _get(study)["trials"][0]["trial_id"]
    # Every button that would write (create, rename, delete, notes, tell) is refused:
    writes = [
        ("POST", f"{address}/api/studies", {"study_name": "new", "directions": ["minimize"]}),
        ("POST", f"{study}/rename", {"study_name": "renamed"}),
        ("DELETE", study, None),
        ("PUT", f"{study}/note", {"version": 1, "body": "a note"}),
        ("POST", f"{address}/api/trials/{trial_id}/tell", {"state": "Fail"}),
        ("POST", f"{address}/incompatible-rdb-schema", None),
    ]
    for method, url, body in writes:
        assert _send(url, method, body) == 405, (method, url)
    assert _get(f"{address}/api/studies") == before


def test_the_line_names_the_address_and_masks_the_password(served: tuple[str, str]) -> None:
    _, line = served
    match = LINE.fullmatch(line)
    assert match and match.group(2).endswith("/studies.db?password=***"), line
    assert SECRET not in line


def test_ctrl_c_stops_it_and_its_output_holds_no_password(stored: tuple[Path, str]) -> None:
    process = _start(stored[0])
    try:
        match = LINE.fullmatch(_first_line(process))
        assert match
        assert _get(f"{match.group(1)}/api/studies")["study_summaries"]
    finally:
        out, err = _stop(process)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert SECRET not in out + err
    with pytest.raises(urllib.error.URLError):  # nothing listens any more
        _get(f"{match.group(1)}/api/studies")


def test_ctrl_c_during_a_request_still_stops_it() -> None:
    # Given the server answering a request that takes a while,
    started, release, stopped = threading.Event(), threading.Event(), threading.Event()

    def slow(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        started.set()
        release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"answered"]

    server = dashboard_server(slow, host="127.0.0.1", port=0)
    port = server.server_port
    answers: list[bytes] = []
    client = threading.Thread(
        target=lambda: answers.append(
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60).read()
        )
    )

    def press_ctrl_c() -> None:
        started.wait(30)
        _thread.interrupt_main()  # what SIGINT does to the main thread
        time.sleep(0.2)
        release.set()

    def failsafe() -> None:  # a server that swallowed the interrupt is stopped all the same
        if not stopped.wait(60):
            server.shutdown()

    for thread in (
        client,
        threading.Thread(target=press_ctrl_c),
        threading.Thread(target=failsafe),
    ):
        thread.start()
    # when Ctrl-C lands in the middle of it,
    started_at = time.monotonic()
    serve_dashboard(server)
    stopped.set()
    client.join(60)
    # then the request is answered, and the server stops at once and closes its port.
    assert answers == [b"answered"]
    assert time.monotonic() - started_at < 30
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass


def test_a_failing_request_prints_its_traceback_without_a_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError(f"could not reach postgresql://finscale:{SECRET}@db/finscale")

    server = dashboard_server(failing, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/", timeout=60)
        assert answer.value.code == 500
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    err = capsys.readouterr().err
    assert "RuntimeError: could not reach postgresql://finscale:***@db/finscale" in err, err
    assert SECRET not in err


def test_without_optuna_dashboard_it_says_what_to_install(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setitem(sys.modules, "optuna_dashboard", None)  # `import optuna_dashboard` fails
    # the extra is checked first: the storage (refusing connections) is not waited for
    env.setenv("FINSCALE_STORAGE_URL", REFUSED)
    env.setenv("FINSCALE_STORAGE_DEADLINE_S", "30")
    code, out, err = run(["dashboard"], capsys)
    assert code == 2, err
    assert "needs optuna-dashboard" in err and "pip install 'finscale[dashboard]'" in err, err
    assert out == ""


def test_a_storage_that_does_not_answer_exits_3_without_its_password(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_STORAGE_URL", REFUSED)
    env.setenv("FINSCALE_STORAGE_DEADLINE_S", "0.5")
    code, out, err = run(["dashboard"], capsys)
    assert code == 3, err
    assert "unreachable" in err and "finscale:***@" in err, err
    assert SECRET not in out + err


def test_a_storage_file_that_does_not_exist_is_named_and_not_created(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "none.db"
    env.setenv("FINSCALE_STORAGE_URL", f"sqlite:///{database}")
    code, _, err = run(["dashboard"], capsys)
    assert code == 2, err
    assert f"no studies in sqlite:///{database}" in " ".join(err.split())
    assert not database.exists()


def test_a_port_in_use_is_a_usage_error(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(storage=url, study_name="someone-elses")
    env.setenv("FINSCALE_STORAGE_URL", url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run(["dashboard", "--port", str(port)], capsys)
    assert code == 2, err
    text = " ".join(err.split())
    assert f"cannot listen on 127.0.0.1 port {port}" in text and "--host/--port" in text, text
    assert out == ""
