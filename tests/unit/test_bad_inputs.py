"""Every bad spec, CSV, option and environment value of tests/cases/bad_inputs.yaml is refused
through the real CLI with its exit code and a one-line message, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from finscale.data import build_datasets, load_inputs
from tests.conftest import random_walk_bars
from tests.conftest import run_cli as run
from tests.integration.conftest import SMALL, _merge

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parents[1] / "cases" / "bad_inputs.yaml").read_text()
)

# Rich draws usage errors in a box: its frame is no part of the message.
_FRAME = re.compile(r"[│╭╮╰╯─]+")
# A refusal is a line or two, whatever the input (an alias bomb once built a 480 MB message).
_MOST_ERROR_CHARS = 2000


def _storage(path: Path, case: dict[str, Any]) -> bytes | None:
    """The case's storage file, when it gives one: `storage_text` (the file's whole text), or
    `storage_cut` (a study database cut after that many bytes). Its bytes, to compare after."""
    if "storage_text" in case:
        path.write_text(case["storage_text"])
    elif "storage_cut" in case:
        store = optuna.storages.RDBStorage(f"sqlite:///{path}")
        study = optuna.create_study(study_name="cut", storage=store)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=20)
        store.engine.dispose()
        path.write_bytes(path.read_bytes()[: case["storage_cut"]])
    else:
        return None
    return path.read_bytes()


def _csv(path: Path, changes: dict[str, Any]) -> None:
    bars = random_walk_bars(300)
    bars["Date"] = bars["Date"].dt.strftime("%Y-%m-%d")
    bars = bars.astype(str)
    if "rows" in changes:
        bars = bars.iloc[: changes["rows"]]
    bars = bars.drop(columns=changes.get("drop", []))
    for column, value in changes.get("fill", {}).items():
        bars[column] = str(value)
    for row, values in changes.get("set", {}).items():
        for column, value in values.items():
            bars.loc[int(row) - 1, column] = str(value)
    bars.to_csv(path, index=False)


def _write_spec(spec: Path, case: dict[str, Any]) -> None:
    """The case's spec: a FIFO, a whole text, bytes, lists nested N deep, or the small spec
    changed; `spec_raw` then writes values as they stand (unquoted YAML) and `spec_append`
    adds lines."""
    if case.get("fifo"):
        os.mkfifo(spec)
        return
    if "spec_text" in case:
        spec.write_text(case["spec_text"])
        return
    if "spec_hex" in case:
        spec.write_bytes(bytes.fromhex(case["spec_hex"]))
        return
    if "nested_lists" in case:
        depth = case["nested_lists"]
        spec.write_text(f"name: {'[' * depth}{']' * depth}\n")
        return
    text = yaml.safe_dump(_merge(SMALL, case.get("spec", {})), sort_keys=False)
    for key, raw in case.get("spec_raw", {}).items():
        text, found = re.subn(rf"(?m)^(\s*){key}: .*$", rf"\g<1>{key}: {raw}", text)
        assert found == 1, f"spec_raw: no line {key}: in the spec"
    spec.write_text(text + case.get("spec_append", ""))


def _build_data(csv: Path, data_dir: Path, edit: dict[str, Any]) -> None:
    """The dataset GSPC.dataset.a25 built from the case's CSV, its manifest entry then edited
    as an operator (or an attacker) might."""
    build_datasets(load_inputs("csv", ticker="GSPC", csv_path=csv), data_dir=data_dir)
    if edit:
        manifest = data_dir / "manifest.json"
        content = json.loads(manifest.read_text())
        for entry in content["entries"]:
            if entry["name"] == "GSPC.dataset.a25":
                entry.update(edit)
        manifest.write_text(json.dumps(content))


def _contents(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with the bytes of its files (None for anything else)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_a_bad_input_is_refused_in_one_line_and_leaves_nothing_behind(
    case: dict[str, Any],
    tmp_path: Path,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the case's files, data and environment,
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    spec, csv, storage = work / "spec.yaml", work / "bars.csv", tmp_path / "studies.db"
    _write_spec(spec, case)
    if "csv_text" in case:
        csv.write_text(case["csv_text"])
    else:
        _csv(csv, case.get("csv", {}))
    if case.get("data"):
        _build_data(csv, data, case.get("manifest", {}))
    stored = _storage(storage, case)
    places = {"spec": spec, "csv": csv, "tmp": work}
    before = {"work": _contents(work), "data": _contents(data)}
    env.setenv("FINSCALE_DATA_DIR", str(data))
    env.setenv("FINSCALE_RUNS_DIR", str(tmp_path / "runs"))
    env.setenv("FINSCALE_STORAGE_URL", f"sqlite:///{storage}")
    env.delenv("JOB_COMPLETION_INDEX", raising=False)
    for name, value in case.get("env", {}).items():
        env.setenv(name, str(value).format(**places))
    # when finscale runs the case's command,
    code, out, err = run([str(a).format(**places) for a in case["args"]], capsys)
    # then it exits with the case's code and a short message, and no traceback,
    text = " ".join(_FRAME.sub(" ", err).split())
    assert code == case.get("exit", 2), err
    assert re.search(case["message"], text), text
    assert "Traceback" not in err
    assert len(err) < _MOST_ERROR_CHARS, err[:_MOST_ERROR_CHARS]
    if "hidden" in case:
        assert case["hidden"] not in out + err
    # having created no runs folder and no data, changed or lost no file, and left a storage
    # file it was given as it was.
    assert (storage.read_bytes() if storage.exists() else None) == stored
    assert not (tmp_path / "runs").exists()
    assert {"work": _contents(work), "data": _contents(data)} == before
