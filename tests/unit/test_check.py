"""`finscale check`: every study of a spec checked before anything runs, every problem listed,
nothing created; `run` and `render` refuse the same spec before they create anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from finscale.model import ArchSpace, build_grid, nearest_budgets, parse_budget, space_archs
from tests.conftest import run_cli as run
from tests.integration.conftest import SMALL, _merge

FEATURES = 25  # GSPC.dataset.a25: OHLCV and 20 indicators


def _spec(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_merge(SMALL, changes)))
    return path


@pytest.fixture
def sample(env: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path) -> Path:
    """The sample data; the storage and runs folder under the test's folder (not created)."""
    env.setenv("FINSCALE_DATA_DIR", str(data_dir))
    env.setenv("FINSCALE_STORAGE_URL", f"sqlite:///{tmp_path / 'studies.db'}")
    env.setenv("FINSCALE_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def test_a_spec_with_an_infeasible_budget_is_refused_by_check_run_and_render_before_anything(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: a spec whose second budget no architecture of its space reaches
    spec = _spec(sample, budgets=["10K", "5M"])
    # when: the spec is checked, run and rendered
    code, out, err = run(["check", str(spec)], capsys)
    # then: check names that study, its budget and the nearest budgets, and passes the other
    assert code == 2, err
    assert "it-5m-h1: budget 5M: no architecture of the search space has 5M" in err
    assert "nearest budgets with architectures: 65K" in err  # the space ends at 26K: 26K / 0.4
    assert "it-10k-h1" in out and "it-10k-h1" not in err
    for command in (["run", str(spec)], ["render", str(spec), "--out", str(sample / "jobs")]):
        code, _, err = run(command, capsys)
        assert code == 2, (command, err)
        assert "it-5m-h1: budget 5M: no architecture" in err
    # and nothing was created: no storage, no runs folder, no manifests
    assert sorted(p.name for p in sample.iterdir()) == ["spec.yaml"]


def test_grid_shows_each_study_of_a_spec_and_names_the_empty_one(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(sample, budgets=["10K", "5M"])
    code, out, err = run(["grid", "--spec", str(spec), "--json"], capsys)
    assert code == 2
    grids = json.loads(out)
    # the spec's own space (d_model 16-32, d_ff 2×) within its tolerance (± 60 %) of 10K
    assert grids["it-10k-h1"] and grids["it-5m-h1"] == []
    assert all(4_000 <= a["param_count"] <= 16_000 for a in grids["it-10k-h1"])
    assert {a["d_model"] for a in grids["it-10k-h1"]} <= {16, 24, 32}
    assert "it-5m-h1: budget 5M: no architecture" in err
    # a bare budget without architectures is a usage error naming the nearest budget
    code, out, err = run(["grid", "5K"], capsys)
    assert code == 2 and "nearest budgets with architectures: 69K" in " ".join(err.split())


def test_a_spec_that_can_run_is_said_ready_and_nothing_is_created(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(sample, budgets=["10K", "30K"])
    code, out, err = run(["check", str(spec)], capsys)
    assert code == 0, err
    assert "ready to run" in out
    assert "no studies yet" in out
    assert sorted(p.name for p in sample.iterdir()) == ["spec.yaml"]


def test_every_problem_of_every_study_is_listed_at_once(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: no data at all, and one infeasible budget
    env.setenv("FINSCALE_DATA_DIR", str(tmp_path / "empty"))
    env.setenv("FINSCALE_STORAGE_URL", f"sqlite:///{tmp_path / 'studies.db'}")
    spec = _spec(tmp_path, budgets=["10K", "5M"])
    code, _, err = run(["check", str(spec)], capsys)
    # then: the grid (from the dataset's kind) and the missing data of both studies
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("✗")]
    assert len(lines) == 3, err
    assert sum("no dataset 'GSPC.dataset.a25'" in line for line in lines) == 2
    assert any("budget 5M" in line and "with 25 features" in line for line in lines)


def test_a_stored_study_with_another_search_is_named(
    sample: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: a storage whose study of that name was created with another search definition
    import optuna

    from finscale.data.manifest import find_dataset
    from finscale.records import ATTR_DATASET_SHA256, ATTR_FIELDS, ATTR_FINGERPRINT

    spec = _spec(sample)
    entry = find_dataset(data_dir, "GSPC.dataset.a25")
    study = optuna.create_study(
        study_name="it-30k-h1", storage=f"sqlite:///{sample / 'studies.db'}"
    )
    study.set_user_attr(ATTR_FINGERPRINT, "0" * 64)
    study.set_user_attr(ATTR_FIELDS, {"training.epochs": "40"})
    study.set_user_attr(ATTR_DATASET_SHA256, entry.sha256)
    before = (sample / "studies.db").read_bytes()
    # when: the spec is checked against it
    code, out, err = run(["check", str(spec)], capsys)
    # then: the study is found stored and its difference named; the storage is unchanged
    assert code == 2, err
    assert "reachable, 1 of 1 studies stored" in out
    assert "it-30k-h1: sqlite:///" in err and "another search definition" in err
    assert "training.epochs" in err
    assert (sample / "studies.db").read_bytes() == before


SMALL_SPACE = ArchSpace(d_model=(16, 24, 32), n_layers=(1, 2), n_heads=(2, 4), d_ff_ratio=(2,))


@pytest.mark.parametrize("tolerance", [0.05, 0.25, 0.6])
@pytest.mark.parametrize(
    ("budget", "space"),
    [("1K", None), ("10K", None), ("40K", None), ("200K", SMALL_SPACE), ("2B", SMALL_SPACE)],
)
def test_the_nearest_budget_has_architectures_and_is_the_nearest(
    budget: str, space: ArchSpace | None, tolerance: float
) -> None:
    # given: budgets below the default space's smallest architecture (85K) or above the small
    # space's largest (26K)
    archs = space_archs(num_features=FEATURES, space=space)
    count = parse_budget(budget)
    assert not build_grid(count, num_features=FEATURES, space=space, tolerance=tolerance)
    # when: the nearest budgets are asked for
    nearest = [parse_budget(label) for label in nearest_budgets(count, archs, tolerance=tolerance)]
    # then: one, on the side where the space lies, with architectures, and the nearest such
    # budget to two significant digits: the ideal (the space's end over 1 ± tolerance) rounded
    # towards the space
    (near,) = nearest
    assert build_grid(near, num_features=FEATURES, space=space, tolerance=tolerance)
    if count < archs[0].param_count:
        ideal = archs[0].param_count / (1 + tolerance)
        assert count < near and ideal <= near <= ideal * 1.1
    else:
        ideal = archs[-1].param_count / (1 - tolerance)
        assert near < count and ideal / 1.1 <= near <= ideal
