"""The CLI maps outcomes to exit codes and prints errors that name the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli as run


def test_build_then_verify_then_tamper(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path))
    code, out, _ = run(["data", "build", "--kind", "a25"], capsys)
    assert code == 0
    assert "GSPC.dataset.a25" in out and "4832" in out and "new" in out
    code, out, _ = run(["data", "build", "--kind", "a25"], capsys)
    assert code == 0 and "unchanged" in out
    code, out, _ = run(["data", "verify"], capsys)
    assert code == 0 and "matches its sha256" in out
    dataset = next((tmp_path / "processed").glob("GSPC.dataset.a25-*.parquet"))
    dataset.write_bytes(b"tampered")
    code, _, err = run(["data", "verify"], capsys)
    assert code == 2
    assert dataset.name in err.replace("\n", "") and "checksum mismatch" in err


def test_a_data_build_applied_twice_builds_once(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # what a data Job re-applied after its TTL runs: nothing when the datasets are there
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path))
    code, out, _ = run(["data", "build", "--kind", "a25", "--if-missing"], capsys)
    assert code == 0 and "new" in out
    manifest = (tmp_path / "manifest.json").read_bytes()
    code, out, _ = run(["data", "build", "--kind", "a25", "--if-missing"], capsys)
    assert code == 0
    assert "GSPC.dataset.a25: already built in" in out and "nothing to do" in out
    assert (tmp_path / "manifest.json").read_bytes() == manifest
    # a damaged dataset is built again
    next((tmp_path / "processed").glob("GSPC.dataset.a25-*.parquet")).write_bytes(b"x")
    code, out, _ = run(["data", "build", "--kind", "a25", "--if-missing"], capsys)
    assert code == 0 and "nothing to do" not in out
    code, _, _ = run(["data", "verify"], capsys)
    assert code == 0


def test_a_build_reads_the_series_its_kinds_need(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # --kind a25c makes that dataset only, from the ticker's bars and VIX; a csv build gets its
    # VIX closes through --input-csv
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path / "sample"))
    code, out, _ = run(["data", "build", "--kind", "a25c"], capsys)
    assert code == 0
    assert "VIX.close.daily" in out and "GSPC.dataset.a25c" in out
    assert "GSPC.dataset.a25 " not in out
    raw = {p.name.split("-")[0] for p in (tmp_path / "sample" / "raw").iterdir()}
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path / "csv"))
    bars, vix = tmp_path / "bars.csv", tmp_path / "vix.csv"
    pd.read_parquet(next((tmp_path / "sample" / "raw").glob("GSPC.*"))).to_csv(bars, index=False)
    pd.read_parquet(next((tmp_path / "sample" / "raw").glob("VIX.*"))).to_csv(vix, index=False)
    args = ["data", "build", "--source", "csv", "--csv", str(bars), "--ticker", "ACME"]
    code, out, _ = run([*args, "--input-csv", f"vix={vix}"], capsys)
    assert code == 0 and "ACME.dataset.a25c" in out and "ACME.dataset.a25 " in out
    assert raw == {"GSPC.ohlcv.daily", "VIX.close.daily"}


def test_summary_prints_window_counts(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path))
    run(["data", "build", "--kind", "a25"], capsys)
    code, out, _ = run(["data", "summary", "--horizons", "1,5"], capsys)
    assert code == 0
    assert "chronological" in out and "chunks" in out
    assert "3322" in out  # training windows, chronological, horizon 1


def test_bad_input_exits_2_with_the_file_named(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path / "data"))
    bad = tmp_path / "prices.csv"
    bad.write_text("Date,Open,High,Low,Close\n2020-01-02,1,2,0.5,1.5\n")
    code, _, err = run(
        ["data", "build", "--source", "csv", "--csv", str(bad), "--ticker", "X"], capsys
    )
    assert code == 2
    assert "prices.csv: missing column(s) Volume" in err.replace("\n", "")
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_debug_shows_the_traceback(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path))
    code, _, err = run(["--debug", "data", "verify"], capsys)
    assert code == 2
    assert "Traceback" in err and "no data manifest" in err


def test_unknown_finscale_variables_are_warned_about(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path))
    env.setenv("FINSCALE_DATADIR", "typo")
    code, _, err = run(["data", "list"], capsys)
    assert code == 0
    assert "FINSCALE_DATADIR is set but no finscale setting reads it" in err


def test_bad_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["data", "build", "--source", "ftp"], capsys)
    assert code == 2
    assert "sample" in err and "yfinance" in err


def test_console_script_is_installed() -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "finscale", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "data" in result.stdout


def test_grid_prints_json_with_exactly_the_documented_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    code, out, _ = run(["grid", "2M", "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 80
    assert all(
        set(r) == {"id", "d_model", "n_layers", "n_heads", "d_ff", "param_count"} for r in rows
    )
    assert rows[60] == {
        "id": "d64-l48-h2-f4",
        "d_model": 64,
        "n_layers": 48,
        "n_heads": 2,
        "d_ff": 256,
        "param_count": 2_417_473,
    }
    code, out, _ = run(["grid", "2M", "--features", "33"], capsys)
    assert code == 0
    assert "2M:" in out and "33 features" in out


def test_grid_refuses_a_bad_budget(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["grid", "lots"], capsys)
    assert code == 2
    assert "expected a count like 2M" in err


@pytest.mark.slow
def test_train_prints_every_epoch_and_the_best(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path))
    run(["data", "build", "--kind", "a25"], capsys)
    args = ["train", "--arch", "d16-l1-h2-f2", "--epochs", "3", "--device", "cpu", "--test"]
    code, out, _ = run(args, capsys)
    assert code == 0
    assert "d16-l1-h2-f2 on GSPC.dataset.a25, horizon 1 (defaults)" in out
    lines = [line for line in out.splitlines() if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in lines] == ["1", "2", "3"]
    assert (
        "d16-l1-h2-f2: 6,785 parameters; windows: train 3322, val 665, test 665; best epoch" in out
    )
    assert "test: bce" in out


def test_train_refuses_a_bad_architecture_id(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["train", "--arch", "tiny"], capsys)
    assert code == 2
    assert "architecture id 'tiny'" in err


def test_train_takes_its_settings_from_a_spec(
    data_dir: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_DATA_DIR", str(data_dir))  # the sample datasets of kind a25
    spec = Path(__file__).parents[2] / "configs" / "experiments" / "validation.yaml"
    code, out, _ = run(
        ["train", str(spec), "--arch", "d32-l2-h2-f2", "--epochs", "1", "--device", "cpu"], capsys
    )
    assert code == 0
    assert "(" + str(spec) + ")" in out.replace("\n", "")
    # The validation spec splits at 2015 and 2017: its own window counts, not the defaults'.
    assert "windows: train 3766, val 444, test 442" in out
    assert "epochs=1" in out and "batch_size=256" in out


@pytest.mark.parametrize("name", ["[bold]x[/bold].yaml", "a[/red]b.yaml", "[link=x]c[/link].yaml"])
def test_messages_print_user_values_verbatim(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Rich markup in a path once vanished (`[bold]x` showed as `x`) or crashed the handler.
    code, _, err = run(["worker", str(tmp_path / name)], capsys)
    assert code == 2
    assert f"{name}: no such spec file" in err
    assert "Traceback" not in err


def test_a_worker_writes_even_its_errors_as_json_lines(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A worker's output is read by a log collector: its last words are a JSON line too,
    code, _, err = run(["worker", str(tmp_path / "nowhere.yaml")], capsys)
    assert code == 2
    (line,) = [json.loads(text) for text in err.splitlines()]
    assert (
        line["level"] == "ERROR"
        and line["message"] == f"{tmp_path}/nowhere.yaml: no such spec file"
    )
    # a malformed setting included (read before the command is known to the app),
    env.setenv("FINSCALE_HEARTBEAT_INTERVAL_S", "often")
    code, _, err = run(["--debug", "worker", "spec.yaml"], capsys)
    assert code == 2
    assert json.loads(err)["message"].startswith("FINSCALE_HEARTBEAT_INTERVAL_S='often'")
    # while the commands people run keep their plain lines.
    code, _, err = run(["grid", "2M", "--json"], capsys)
    assert code == 2 and err.startswith("error: FINSCALE_HEARTBEAT_INTERVAL_S='often'")


def test_a_malformed_setting_is_one_line_not_a_traceback(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_HEARTBEAT_INTERVAL_S", "[red]often")
    code, _, err = run(["grid", "2M", "--json"], capsys)
    assert code == 2
    assert err == (
        "error: FINSCALE_HEARTBEAT_INTERVAL_S='[red]often': Input should be a valid integer, "
        "unable to parse string as an integer\n"
    )


def test_a_renamed_variable_says_what_replaced_it(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path))
    env.setenv("FINSCALE_STORAGE_ATTEMPTS", "6")
    code, _, err = run(["data", "list"], capsys)
    assert code == 0
    assert "FINSCALE_STORAGE_ATTEMPTS is no longer read; use FINSCALE_STORAGE_DEADLINE_S" in err


def test_readers_of_a_missing_storage_say_so_and_create_nothing(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = tmp_path / "nowhere" / "studies.db"
    env.setenv("FINSCALE_STORAGE_URL", f"sqlite:///{storage}")
    code, out, _ = run(["status"], capsys)
    assert code == 0 and "no studies in" in out
    code, _, err = run(["report", "--out", str(tmp_path / "report")], capsys)
    assert code == 2 and "no studies in" in err
    code, _, err = run(["train", "--trial", "0"], capsys)
    assert code == 2 and "does not exist" in err
    assert not storage.parent.exists()


def test_the_choices_of_the_options_are_the_librarys() -> None:
    import inspect
    from typing import get_args, get_type_hints

    from finscale.cli.choices import (
        Allowance,
        DataFrom,
        DatasetKind,
        Device,
        PriceTarget,
        Propagation,
        PullPolicy,
        Source,
        Until,
    )
    from finscale.data.inputs import SourceKind
    from finscale.data.labels import Target
    from finscale.data.sources import ALLOWABLE
    from finscale.hpo.worker import run_worker
    from finscale.k8s.cluster import PROPAGATIONS
    from finscale.k8s.options import PULL_POLICIES
    from finscale.k8s.shipping import DATA_FROM
    from finscale.k8s.shipping import DataFrom as DataFromKind
    from finscale.settings import Settings
    from finscale.tiers import DATASETS

    assert inspect.signature(run_worker).parameters["until"].default == "done"
    assert [c.value for c in Until] == list(get_args(get_type_hints(run_worker)["until"]))
    assert [c.value for c in Device] == list(get_args(Settings.model_fields["device"].annotation))
    assert [c.value for c in Source] == list(get_args(SourceKind))
    assert [c.value for c in PriceTarget] == list(get_args(Target))
    assert [c.value for c in DatasetKind] == list(DATASETS)
    assert [c.value for c in Allowance] == list(ALLOWABLE)
    assert [c.value for c in DataFrom] == list(get_args(DataFromKind)) == list(DATA_FROM)
    assert [c.value for c in PullPolicy] == list(PULL_POLICIES)
    assert [c.value for c in Propagation] == list(PROPAGATIONS)


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["worker", "spec.yaml", "--until", "never"], ("done", "idle")),
        (["train", "--device", "tpu"], ("auto", "cpu", "cuda")),
        (["data", "build", "--source", "web"], ("sample", "csv", "yfinance")),
        (["data", "summary", "--target", "low"], ("close", "high")),
    ],
)
def test_a_value_not_among_the_choices_is_a_usage_error_naming_them(
    args: list[str], choices: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(args, capsys)
    assert code == 2
    assert all(f"'{choice}'" in err for choice in choices), err


def test_version_names_the_release_and_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    from finscale import __version__
    from finscale.identity import code_sha256

    code, out, err = run(["--version"], capsys)
    assert code == 0, err
    assert out.strip() == f"finscale {__version__} (code {code_sha256()[:12]})"


def test_help_names_the_settings_a_user_needs_first(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    for name in ("FINSCALE_STORAGE_URL", "FINSCALE_DATA_DIR", "FINSCALE_RUNS_DIR"):
        assert name in text


def test_help_reads_as_sentences_at_80_columns(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("COLUMNS", "80")
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    # a command's description fills its lines: no break where the docstring's source broke
    check = next(i for i, line in enumerate(lines) if "│ check " in line)
    assert "architectures (else the nearest budgets that do)" in lines[check + 1]
    # a flag shows no value type
    debug = next(line for line in lines if "--debug" in line)
    assert "<bool>" not in debug and "Show tracebacks" in debug
    # an argument is named in capitals in the usage line
    code, out, _ = run(["run", "--help"], capsys)
    assert code == 0 and "finscale run [OPTIONS] {SPEC}" in out and "{spec}" not in out


def test_debug_is_understood_after_the_command_too() -> None:
    from finscale.cli import debug_first

    assert debug_first(["status", "--debug"]) == ["--debug", "status"]
    assert debug_first(["run", "s.yaml", "--debug", "--workers", "2"]) == [
        "--debug",
        "run",
        "s.yaml",
        "--workers",
        "2",
    ]
    assert debug_first(["--debug", "status"]) == ["--debug", "status"]
    assert debug_first(["train", "--", "--debug"]) == ["train", "--", "--debug"]
