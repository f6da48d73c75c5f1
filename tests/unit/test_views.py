"""The CLI's tables fit an 80-column screen, and a file, without cutting a name or an id."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna
import pytest
from rich.cells import cell_len
from rich.console import Console

from finscale.cli import progress, views
from finscale.cli.common import FILE_WIDTH, output_width
from tests.conftest import REPO
from tests.conftest import run_cli as run

LONG = "an-experiment-with-a-rather-long-name"  # its studies: LONG-50k-h1 (44 characters)
ARCH = "d128-l12-h16-f4"


def assert_fits(
    text: str, names: Iterable[str], width: int = 80, messages: tuple[str, ...] = ()
) -> None:
    """Every line at most `width` columns; every name whole on one line. Lines of text that
    start with one of `messages` are left as they are (never wrapped in a file, for grep)."""
    lines = text.splitlines()
    wide = [line for line in lines if cell_len(line) > width and not line.startswith(messages)]
    assert not wide, f"{len(wide)} lines wider than {width}:\n" + "\n".join(wide)
    for name in names:
        assert any(name in line for line in lines), f"{name!r} is cut:\n{text}"
    assert "…" not in text


@pytest.fixture
def narrow(env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Output redirected (as under pytest) with COLUMNS=80."""
    env.setenv("COLUMNS", "80")
    return env


def test_output_that_is_not_a_terminal_takes_columns_or_a_file_width() -> None:
    assert output_width({"COLUMNS": "80"}) == 80
    assert output_width({}) == FILE_WIDTH == 100
    assert output_width({"COLUMNS": "wide"}) == FILE_WIDTH


def test_grid_fits_80_columns(
    narrow: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from finscale.model import build_grid, parse_budget

    code, out, _ = run(["grid", "20M"], capsys)
    assert code == 0
    ids = [a.id for a in build_grid(parse_budget("20M"), num_features=25, tolerance=0.25)]
    assert_fits(out, ids)


def test_data_build_and_list_fit_80_columns(
    narrow: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from finscale.data import read_manifest

    narrow.setenv("FINSCALE_DATA_DIR", str(tmp_path))
    code, built, _ = run(["data", "build", "--kind", "a25"], capsys)
    assert code == 0
    code, listed, _ = run(["data", "list"], capsys)
    assert code == 0
    names = read_manifest(tmp_path).names()
    assert names
    assert_fits(built, names)
    assert_fits(listed, names)


def _storage(path: Path, names: list[str]) -> str:
    """A SQLite storage holding studies of those names, each with a best trial."""
    from finscale.records import ATTR_N_TRIALS

    url = f"sqlite:///{path}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    arch = optuna.distributions.CategoricalDistribution([ARCH])
    rate = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    for name in names:
        study = optuna.create_study(study_name=name, storage=url)
        study.set_user_attr(ATTR_N_TRIALS, 12)
        for value in (0.6931, 0.65):
            study.add_trial(
                optuna.trial.create_trial(
                    params={"arch": ARCH, "learning_rate": 0.000312},
                    distributions={"arch": arch, "learning_rate": rate},
                    value=value,
                )
            )
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    return url


def test_status_fits_80_columns(
    narrow: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [f"{LONG}-50k-h1", "validation-50k-h1", "sample-scaling-800k-h20"]
    narrow.setenv("FINSCALE_STORAGE_URL", _storage(tmp_path / "s.db", names))
    code, out, _ = run(["status"], capsys)
    assert code == 0
    assert_fits(out, [*names, ARCH, "0.6500 (#1)"])
    # a file gets 100 columns: the states left out at 80 are there
    narrow.delenv("COLUMNS")
    code, out, _ = run(["status"], capsys)
    assert_fits(out, names, width=FILE_WIDTH)


def test_status_keeps_running_longest_at_80_columns(
    narrow: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # whether a study is moving is what a narrow table keeps longest: RUNNING stays where
    # COMPLETE (which finished implies) is left out
    narrow.setenv("FINSCALE_STORAGE_URL", _storage(tmp_path / "s.db", ["validation-50k-h1"]))
    narrow.setenv("COLUMNS", "86")
    code, out, _ = run(["status"], capsys)
    assert code == 0
    assert "RUNNING" in out
    assert "left out at 86 columns: COMPLETE, PRUNED, WAITING" in " ".join(out.split())


def test_run_progress_and_results_fit_80_columns(
    narrow: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from finscale.hpo.local import RunProgress
    from finscale.hpo.read import StudySummary

    text = (REPO / "configs" / "experiments" / "validation.yaml").read_text()
    spec = tmp_path / "long.yaml"
    spec.write_text(text.replace("name: validation\n", f"name: {LONG}\n"))
    narrow.setenv("FINSCALE_STORAGE_URL", f"sqlite:///{tmp_path / 's.db'}")

    def run_study(_path: Path, study: Any, *, display: Any, **_: Any) -> StudySummary:
        # what `run_study` reports, without workers: a start, a look at the study, an end
        summary = StudySummary(
            name=study.name, n_trials=study.n_trials, finished=3,
            states={"COMPLETE": 2, "FAIL": 1}, best_value=0.6931, best_trial=1, best_arch=ARCH,
            best_params={"arch": ARCH, "learning_rate": 0.000312, "dropout": 0.1, "epochs": 4},
        )  # fmt: skip
        display.started(f"{study.name}: 2 workers, logs in {tmp_path}")
        display.progress(RunProgress(study, summary, alive=1, workers=2))
        display.stopped()
        return summary

    narrow.setattr("finscale.hpo.run_study", run_study)
    narrow.setattr("finscale.hpo.check_inputs", lambda *_: None)  # no data needed
    code, out, err = run(["run", str(spec)], capsys)
    assert code == 0, err
    # Written to a file, progress is stamped lines of text (never wrapped, for grep) and the
    # results a table that fits.
    progress = re.findall(r"^\d\d:\d\d:\d\d (.*)$", out, flags=re.M)
    assert progress[0].startswith(f"{LONG}-50k-h1: 2 workers, logs in")
    assert progress[1].startswith(f"{LONG}-50k-h1: 3/3 finished (2 complete, 1 fail)")
    stamped = [line for line in out.splitlines() if re.match(r"\d\d:\d\d:\d\d ", line)]
    messages = ("storage sqlite:", *stamped)
    assert_fits(out, [f"{LONG}-50k-h1", ARCH, "0.6931 (#1)", "Results"], messages=messages)


def test_a_name_wider_than_the_rest_allows_stays_whole() -> None:
    # the other columns fold before a study name or an architecture id does
    name = "a-study-whose-name-is-longer-than-anything-sensible-50k-h1"
    columns = [
        views.Column("study", whole=True),
        views.Column("finished"),
        views.Column("value"),
        views.Column("best arch", whole=True),
    ]
    drawn = views.table(columns, [[name, "3/3", "0.6931 (#12)", ARCH]], width=80)
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    views.show(console, drawn)
    assert_fits(console.export_text(), [name, ARCH])


def test_a_run_written_to_a_file_says_each_trial_start_and_end_with_the_time_left() -> None:
    # given: a study of 4 trials seen by `run` twice a second, written where no terminal is
    from finscale.hpo.local import RunProgress
    from finscale.hpo.read import StudySummary
    from finscale.spec import load_studies

    (study,) = load_studies(REPO / "configs" / "experiments" / "validation.yaml")
    console = Console(file=io.StringIO(), width=80)
    now = [0.0]
    display = progress.PlainProgress(console, quiet_s=300, clock=lambda: now[0])

    def look(t: float, finished: int, running: int, best: float | None = None) -> None:
        now[0] = t
        states = {"COMPLETE": finished, "RUNNING": running}
        summary = StudySummary(
            name=study.name, n_trials=4, finished=finished, states=states, best_value=best,
            best_trial=0 if best else None, best_arch="d24-l4-h4-f2" if best else None,
            best_params={},
        )  # fmt: skip
        display.progress(RunProgress(study, summary, alive=2, workers=2))

    display.started("validation-50k-h1: 2 workers, logs in runs/x")
    look(0.5, 0, 0)  # no trial yet
    look(1.0, 0, 2)  # two trials started
    look(1.5, 0, 2)  # nothing new: no line
    look(60.0, 1, 1, 0.3731)  # one ended after a minute
    look(61.0, 1, 2, 0.3731)  # the next started
    look(400.0, 1, 2, 0.3731)  # quiet for five minutes: a line all the same
    display.stopped()
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    # then: one line per change (or per quiet five minutes), each stamped, none redrawn
    assert len(lines) == 6, lines
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines)
    assert "0/4 finished" in lines[1] and "0 running" in lines[1]
    assert "0/4 finished" in lines[2] and "2 running" in lines[2]
    assert "1/4 finished (1 complete)" in lines[3] and "best 0.3731 (#0) d24-l4-h4-f2" in lines[3]
    assert "1m00s elapsed" in lines[3] and "about 3m00s left" in lines[3]  # 60 s per trial, 3 left
    assert "2 running" in lines[4]
    assert "6m40s elapsed" in lines[5]
    assert "\x1b" not in console.file.getvalue()  # type: ignore[attr-defined]
