"""Light modules stay light: settings and the CLI's start-up import no heavy library."""

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
