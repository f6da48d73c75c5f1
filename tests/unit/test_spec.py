"""Specs: the shipped configs load, experiments expand to named studies, and a bad spec says
which file, which field and which value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from finscale.errors import SpecError
from finscale.quantity import parse_quantity
from finscale.spec import (
    TRAINING_PARAMS,
    ExperimentSpec,
    StudySpec,
    TrainingSpec,
    fingerprint,
    fingerprint_fields,
    load_spec,
    load_study,
)
from tests.conftest import REPO

CONFIGS = REPO / "configs" / "experiments"

MINIMAL: dict[str, Any] = {
    "name": "demo",
    "budgets": ["2M"],
    "horizons": [1],
    "data": {"dataset": "SPY.dataset.a25"},
}


def _write(tmp_path: Path, data: dict[str, Any], name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _with(**changes: Any) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


def test_phase6a_expands_to_twelve_studies() -> None:
    spec = load_spec(CONFIGS / "phase6a.yaml")
    assert isinstance(spec, ExperimentSpec)
    studies = spec.expand()
    assert [s.name for s in studies] == [
        f"phase6a-{b}-h{h}" for b in ("2m", "20m", "200m", "2b") for h in (1, 3, 5)
    ]
    assert {s.n_trials for s in studies} == {50}
    assert {s.data.dataset for s in studies} == {"SPY.dataset.a25"}
    by_name = {s.name: s for s in studies}
    assert by_name["phase6a-2b-h5"].horizon == 5
    assert by_name["phase6a-2b-h5"].budget_params == 2_000_000_000
    assert by_name["phase6a-2b-h1"].resources.memory_limit == "96Gi"  # the 2B override
    assert by_name["phase6a-2m-h1"].resources.memory_limit == "32Gi"
    assert by_name["phase6a-2m-h1"].resources.trials_per_pod == 6
    assert by_name["phase6a-200m-h1"].resources.trials_per_pod == 1
    searched = by_name["phase6a-2m-h1"].training.searched()
    assert set(searched) == {"learning_rate", "weight_decay", "warmup_steps", "dropout", "epochs"}


def test_validation_is_one_small_study_on_the_sample() -> None:
    study = load_study(CONFIGS / "validation.yaml")
    assert study.name == "validation-50k-h1"
    assert study.n_trials == 3
    assert study.data.dataset == "GSPC.dataset.a25"
    assert study.resources.gpus == 0


def test_a_study_spec_round_trips_through_yaml(tmp_path: Path) -> None:
    study = load_study(CONFIGS / "phase6a.yaml", "phase6a-20m-h3")
    path = tmp_path / "study.yaml"
    path.write_text(study.to_yaml())
    assert load_study(path) == study
    assert load_study(path, "phase6a-20m-h3") == study
    with pytest.raises(SpecError, match=r"holds study 'phase6a-20m-h3', not 'other'"):
        load_study(path, "other")


BAD_SPECS = [
    pytest.param(
        _with(data__datset="x"), r"data\.datset: Extra inputs are not permitted", id="typo"
    ),
    pytest.param(
        _with(training__dropout={"type": "uniform", "low": 0.1, "high": 1.5}),
        r"training: Value error, dropout: 1\.5 is not in \[0\.0, 1\.0\)",
        id="dropout-range",
    ),
    pytest.param(
        _with(training__learning_rate={"type": "log_uniform", "low": 1e-3, "high": 1e-4}),
        r"training\.learning_rate\.log_uniform: Value error, low \(0\.001\) must be below high",
        id="reversed-range",
    ),
    pytest.param(
        _with(training__epochs={"type": "normal", "mu": 3}),
        r"training\.epochs: Input tag 'normal' found using 'type' does not match any of the expected",
        id="unknown-distribution",
    ),
    pytest.param(_with(budgets=["2X"]), r"budgets: Value error, budget '2X'", id="budget"),
    pytest.param(
        _with(horizons=[1, 1]), r"horizons: Value error, horizons must be distinct", id="horizons"
    ),
    pytest.param(
        _with(name="Phase_6A"), r"name: Value error, 'Phase_6A' is not a DNS-1123 name", id="name"
    ),
    pytest.param(
        _with(objective__metric="val_auc", objective__direction="minimize"),
        r"objective: Value error, direction: val_auc is maximized, not minimized; the direction "
        r"follows from the metric",
        id="direction",
    ),
    pytest.param(
        _with(resources__memory_request="32Gi", resources__memory_limit="16Gi"),
        r"resources: Value error, memory_request \(32Gi\) exceeds memory_limit \(16Gi\)",
        id="request-over-limit",
    ),
    pytest.param(
        _with(resources__memory_limit="16 gigs"),
        r"resources\.memory_limit: Value error, '16 gigs' is not a Kubernetes quantity .* "
        r"\(got '16 gigs'\)",
        id="quantity",
    ),
    pytest.param(
        _with(split__val_start="2020-01-01", split__test_start="2019-01-01"),
        r"split: Value error, test_start \(2019-01-01\) must come after val_start \(2020-01-01\)",
        id="split-dates",
    ),
    pytest.param(
        _with(model__stride=7),
        r"model: Value error, patches of 10 days every 7 must tile a context of 60 days",
        id="patching",
    ),
    pytest.param(
        {"name": "demo", "budgets": ["2M"], "horizons": [1]}, r"data: Field required", id="missing"
    ),
    pytest.param(
        _with(n_trials=0),
        r"n_trials: Input should be greater than or equal to 1 \(got 0\)",
        id="n_trials",
    ),
    pytest.param(
        _with(resources__queue="q" * 64),
        r"resources\.queue: String should have at most 63 characters",
        id="queue-label",
    ),
    pytest.param(
        _with(resources__runtime_class="nvidia_runc"),
        r"resources\.runtime_class: Value error, 'nvidia_runc' is not a Kubernetes object name",
        id="runtime-class",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_SPECS)
def test_bad_specs_name_file_field_and_value(
    tmp_path: Path, data: dict[str, Any], message: str
) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(SpecError, match=message) as info:
        load_spec(path)
    assert str(info.value).startswith(str(path))


def test_unreadable_specs(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nothing\.yaml: no such spec file"):
        load_spec(tmp_path / "nothing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match=r"bad\.yaml: not valid YAML"):
        load_spec(bad)
    bad.write_text("- a list\n")
    with pytest.raises(SpecError, match=r"expected a mapping of spec fields, got list"):
        load_spec(bad)


def test_overrides_apply_to_their_budget_only() -> None:
    spec = ExperimentSpec.model_validate(
        {
            **MINIMAL,
            "budgets": ["2M", "2B"],
            "overrides": {"2B": {"workers": 8, "resources": {"gpus": 2}}},
        }
    )
    small, large = spec.expand()
    assert (small.workers, small.resources.gpus) == (1, 1)
    assert (large.workers, large.resources.gpus) == (8, 2)
    assert large.resources.memory_limit == small.resources.memory_limit  # merged, not replaced


def test_bad_overrides_are_named() -> None:
    with pytest.raises(
        ValidationError,
        match=r"overrides\.20M: no budget or study of that name \(budgets: \['2M'\]; studies: "
        r"\['demo-2m-h1'\]\)",
    ):
        ExperimentSpec.model_validate({**MINIMAL, "overrides": {"20M": {"workers": 2}}})
    with pytest.raises(ValidationError, match=r"overrides\.2m: a second override of 2M"):
        ExperimentSpec.model_validate(
            {**MINIMAL, "overrides": {"2M": {"workers": 2}, "2m": {"workers": 3}}}
        )
    invalid = ExperimentSpec.model_validate({**MINIMAL, "overrides": {"2M": {"workers": 0}}})
    with pytest.raises(
        SpecError, match=r"study demo-2m-h1: workers: Input should be greater than or equal to 1"
    ):
        invalid.expand()


def test_study_names_respect_the_kubernetes_limit() -> None:
    long = ExperimentSpec.model_validate({**MINIMAL, "name": "a" * 60})
    with pytest.raises(SpecError, match=r"name: Value error, .* at most 63 characters"):
        long.expand()


def test_unknown_study_lists_the_names() -> None:
    spec = ExperimentSpec.model_validate({**MINIMAL, "horizons": [1, 5]})
    with pytest.raises(
        SpecError, match=r"no study 'demo-2m-h3'; its studies: \['demo-2m-h1', 'demo-2m-h5'\]"
    ):
        spec.study("demo-2m-h3")
    with pytest.raises(SpecError, match=r"has 2 studies; name one with --study"):
        load_study(_write(Path(__import__("tempfile").mkdtemp()), {**MINIMAL, "horizons": [1, 5]}))


def _study(**changes: Any) -> StudySpec:
    spec = ExperimentSpec.model_validate(_with(**changes))
    return spec.expand()[0]


def test_fingerprint_follows_the_search_not_the_execution() -> None:
    base = fingerprint(fingerprint_fields(_study().search_definition()))
    same = [
        _study(n_trials=500),
        _study(workers=9),
        _study(resources__gpus=0),
        _study(max_retries=0),
    ]
    for study in same:
        assert fingerprint(fingerprint_fields(study.search_definition())) == base
    different = [
        _study(training__dropout={"type": "uniform", "low": 0.0, "high": 0.5}),
        _study(split__val_start="2020-01-01"),
        _study(data__threshold=0.02),
        _study(architecture__tolerance=0.3),
    ]
    for study in different:
        assert fingerprint(fingerprint_fields(study.search_definition())) != base


def test_fixed_and_searched_training_parameters() -> None:
    study = _study(
        training__epochs=3, training__batch_size={"type": "categorical", "choices": [128, 256]}
    )
    assert study.training.fixed() == {"epochs": 3}
    assert set(study.training.searched()) == {
        "learning_rate",
        "weight_decay",
        "warmup_steps",
        "dropout",
        "batch_size",
    }
    assert study.training.upper("batch_size") == 256


def test_spec_imports_no_heavy_library() -> None:
    code = "import sys, finscale.spec\nprint([m for m in ('torch', 'optuna', 'talib', 'kubernetes') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("key", ["2B", "2b", " 2b ", "2000M", "demo-2b-h1", "DEMO-2B-H1"])
def test_overrides_match_budgets_as_budgets_are_parsed(key: str) -> None:
    # given an override keyed the way a person might write the 2B budget or its study
    spec = ExperimentSpec.model_validate(
        {
            **MINIMAL,
            "budgets": ["2M", "2b"],
            "overrides": {key: {"resources": {"memory_limit": "96Gi", "memory_request": "96Gi"}}},
        }
    )
    # when the experiment expands
    small, large = spec.expand()
    # then the 2B study, and only it, runs with the overridden memory
    assert (large.budget, large.resources.memory_limit) == ("2B", "96Gi")
    assert small.resources.memory_limit == "16Gi"


@pytest.mark.parametrize(
    "quantity", ["2", "500m", "2k", "1.5", "16Gi", "1e3", "0.5Ti", "250M", ".5", "1E2"]
)
def test_quantities_parse_as_the_kubernetes_client_parses_them(quantity: str) -> None:
    from kubernetes.utils.quantity import parse_quantity as official

    assert parse_quantity(quantity) == official(quantity)


@pytest.mark.parametrize("quantity", ["2K", "16 gigs", "Gi", "", "1.2.3", "4gi"])
def test_bad_quantities_are_refused(quantity: str) -> None:
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        parse_quantity(quantity)


def test_a_cpu_request_in_k_notation_validates_and_renders(tmp_path: Path) -> None:
    # `cpu_request: 2k` used to validate and then fail when rendered (two quantity parsers).
    from finscale.k8s import render

    spec = {**MINIMAL, "resources": {"cpu_request": "2k", "cpu_limit": "2k"}}
    files = render(_write(tmp_path, spec), data_from="download")
    assert "cpu: 2k" in files["demo/demo-2m-h1.yaml"]
    assert "OMP_NUM_THREADS\n          value: '2000'" in files["demo/demo-2m-h1.yaml"]
    with pytest.raises(SpecError, match=r"cpu_request \(3k\) exceeds cpu_limit \(2\)"):
        load_spec(
            _write(tmp_path, {**MINIMAL, "resources": {"cpu_request": "3k", "cpu_limit": "2"}})
        )


def test_the_training_parameter_table_drives_the_spec() -> None:
    # every row of the table is a spec field with its default, range check and kind
    fields = TrainingSpec.model_fields
    for p in TRAINING_PARAMS:
        assert fields[p.name].default == p.default
        assert fields[p.name].description == p.description
    typical = TrainingSpec().typical()
    assert set(typical) == {p.name for p in TRAINING_PARAMS}
    assert all(isinstance(typical[p.name], int) for p in TRAINING_PARAMS if p.whole)
    with pytest.raises(ValidationError, match=r"epochs: 2\.5 is not a whole number in"):
        TrainingSpec.model_validate({"epochs": {"type": "categorical", "choices": [2.5, 3]}})


def test_a_builds_study_is_named_after_the_code_and_the_search(tmp_path: Path) -> None:
    from finscale.spec import load_study

    study = load_study(REPO / "configs" / "experiments" / "validation.yaml")
    built = study.for_build("a" * 64)
    tag = built.experiment.removeprefix(f"{study.experiment}-")
    assert len(tag) == 8 and built.name == f"{study.experiment}-{tag}-50k-h1"
    assert study.for_build("a" * 64) == built  # the same build: the same study
    assert study.for_build("b" * 64).name != built.name  # other code: another study
    changed = study.with_changes({"n_trials": study.n_trials + 1})  # execution, not search
    assert changed.for_build("a" * 64).name == built.name
    searched = study.with_changes({"training": {"epochs": 7}})
    assert searched.for_build("a" * 64).name != built.name
    long = study.with_changes({"name": "x" * 60, "experiment": "x" * 50})
    with pytest.raises(SpecError, match="63 characters"):
        long.for_build("a" * 64)
