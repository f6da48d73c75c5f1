"""Light modules stay light: settings and the CLI's start-up import no heavy library. The layers'
imports as a whole are checked by test_import_contract.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "talib", "optuna", "kubernetes", "sqlalchemy", "matplotlib")


@pytest.mark.parametrize("module", ["finscale.settings", "finscale.errors", "finscale.cli"])
def test_module_imports_no_heavy_library(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_data_layer_knows_nothing_of_optuna_or_kubernetes() -> None:
    code = (
        "import sys, finscale.data, finscale.data.summary\n"
        "print(','.join(m for m in ('optuna', 'kubernetes') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_reading_the_storage_imports_no_torch() -> None:
    # `finscale status` and the report's storage reads go through finscale.hpo's lazy names
    code = (
        "import sys, finscale.cli\n"
        "from finscale.hpo import display_url, open_for_reading, read_studies, summarize_storage\n"
        "print(','.join(m for m in ('torch', 'talib', 'sklearn') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_each_public_name_of_the_engine_imports_and_is_listed_once() -> None:
    import ast
    import importlib
    from pathlib import Path

    hpo = importlib.import_module("finscale.hpo")
    table: dict[str, str] = hpo._WHERE
    assert hpo.__all__ == sorted(table)
    for name, module in table.items():
        defined = importlib.import_module(f"finscale.hpo.{module}")
        assert getattr(hpo, name) is getattr(defined, name), name
    # What type checkers see (the TYPE_CHECKING imports) is the same table.
    tree = ast.parse(Path(hpo.__file__).read_text())
    typed = {
        (alias.name, node.module.removeprefix("finscale.hpo."))
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__"
        for alias in node.names
        if node.module.startswith("finscale.hpo.")
    }
    assert typed == set(table.items())


def test_a_worker_imports_no_torch_before_its_first_reservation() -> None:
    # torch, scipy and scikit-learn load after the first reservation (building the objective)
    code = (
        "import sys, finscale.hpo.worker\n"
        "print(','.join(m for m in ('torch', 'scipy', 'sklearn') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("package", ["finscale.data", "finscale.model", "finscale.train"])
def test_each_public_name_of_the_core_imports_and_is_listed_once(package: str) -> None:
    import importlib

    core = importlib.import_module(package)
    table: dict[str, str] = core._WHERE
    assert core.__all__ == sorted(table)
    for name, module in table.items():
        full = module if module.startswith("finscale.") else f"{package}.{module}"
        assert getattr(core, name) is getattr(importlib.import_module(full), name), name
