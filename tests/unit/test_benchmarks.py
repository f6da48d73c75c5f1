"""The benchmark scripts run as documented and print the figures docs/benchmarks.md quotes.

Their numbers are not checked here (speed goals live in the benchmarks, not in tests): only that
each script runs on the smallest settings and reports what a reader compares.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.slow


def _run(script: str, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report: dict[str, object] = json.loads(out.stdout)
    return report


def test_bench_train_compares_both_steps_per_architecture_and_dropout() -> None:
    report = _run("bench_train.py", "--rounds", "2", "--steps", "1", "--epoch",
                  "--archs", "d32-l1-h2-f2")  # fmt: skip
    steps = report["steps"]
    assert isinstance(steps, list) and [row["dropout"] for row in steps] == [0.1, 0.0]
    for row in steps:
        assert row["arch"] == "d32-l1-h2-f2"
        assert row["ratio"] > 0 and row["conventional_windows_per_s"] > 0
        assert 0 < row["fraction_of_peak"] < 1.5
    assert len(report["epochs"]) == 2  # type: ignore[arg-type]


def test_bench_attention_names_the_fastest_path_per_length() -> None:
    report = _run("bench_attention.py", "--repeats", "1")
    rows = report["results"]
    assert isinstance(rows, list) and rows
    for row in rows:
        assert row["fastest"] in row["ms_forward_backward"]
        assert row["default_over_fastest"] >= 1.0


def test_bench_loss_curve_compares_curves_and_checks_reproducibility() -> None:
    report = _run("bench_loss_curve.py", "--seeds", "2", "--epochs", "2",
                  "--train-windows", "512", "--arch", "d32-l1-h2-f2")  # fmt: skip
    assert len(report["epochs"]) == 2  # type: ignore[arg-type]
    assert report["reproducible"] is True
    assert isinstance(report["within_tolerance"], bool)


def test_bench_storage_reports_an_exact_budget_per_backend_and_worker_count() -> None:
    report = _run("bench_storage.py", "--workers", "1", "3", "--sleep-s", "0.01",
                  "--trials-per-worker", "2", "--poll-s", "0.01")  # fmt: skip
    rows = report["results"]
    assert isinstance(rows, list) and [row["workers"] for row in rows] == [1, 3]
    for row in rows:
        assert row["backend"] == "sqlite"
        assert row["exact_budget"] is True and row["trials"] == 2 * row["workers"]
        assert row["reserve_ms_p50"] <= row["reserve_ms_p99"]
        assert row["polls"] >= row["workers"]  # each worker's last call finds the budget spent
