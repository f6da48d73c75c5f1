"""Shared fixtures. With FINSCALE_REQUIRE_ALL_TESTS=1 (set by .ci/run) a skipped test fails."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Generator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "data" / "sample"


# `storage_url` is not here: it marks only its PostgreSQL case (its param's marks), so that the
# SQLite case runs in the fast tier.
_POSTGRES_FIXTURES = frozenset({"postgres_server_url", "postgres_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers where they belong, so that `-m` selects tiers: `postgres` on every test that
    takes a PostgreSQL fixture (directly or through another fixture; `storage_url` marks its
    PostgreSQL case itself), `integration` on everything under tests/integration."""
    for item in items:
        if _POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # In parallel processes (`make test`: pytest-xdist), the long tests first, so that they
        # are spread over the processes from the start rather than left to the end of one.
        items.sort(key=_cost_rank)


def _cost_rank(item: pytest.Item) -> int:
    """0 for a slow integration test, 1 for another slow one, 2 for the rest (a stable sort
    keeps each group in the collection's order, which every process collects alike)."""
    slow = item.get_closest_marker("slow") is not None
    return 0 if slow and item.get_closest_marker("integration") else 1 if slow else 2


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Nothing may be skipped in CI: there a skip becomes a failure that says why."""
    report = yield
    if os.environ.get("FINSCALE_REQUIRE_ALL_TESTS") == "1" and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, but FINSCALE_REQUIRE_ALL_TESTS=1 forbids skips: {reason}"
    return report


def build_sample_once(root: Path) -> Path:
    """The sample datasets of kind a25 in `root/sample-a25`, built by the first caller: parallel
    test processes (pytest-xdist) share one build, the others waiting on a file lock. Tests only
    read it (a test that rebuilds copies it first)."""
    from finscale.data import build_datasets, load_inputs

    directory = root / "sample-a25"
    with (root / "sample-a25.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / "manifest.json").is_file():
            build = root / "sample-a25.partial"
            shutil.rmtree(build, ignore_errors=True)  # a build that failed half-way
            build_datasets(load_inputs("sample", kinds=["a25"]), data_dir=build)
            build.rename(directory)
    return directory


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample datasets (kind a25), built once per test run; every process of a parallel
    run (pytest-xdist's workers share the parent of their temporary folders) reads the same."""
    base = tmp_path_factory.getbasetemp()
    return build_sample_once(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Set environment variables for one test; they are removed afterwards."""
    for key in list(os.environ):
        if key.startswith("FINSCALE_") and key not in {
            "FINSCALE_TEST_DATABASE_URL",
            "FINSCALE_REQUIRE_ALL_TESTS",
        }:
            monkeypatch.delenv(key)
    return monkeypatch


def random_walk_bars(n: int, *, seed: int = 0, start: str = "2000-01-03") -> pd.DataFrame:
    """Plausible daily OHLCV bars on business days: a geometric random walk."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=n)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.004, n))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.01, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.01, n))
    volume = rng.integers(1_000_000, 5_000_000, n).astype("float64")
    return pd.DataFrame(
        {"Date": dates, "Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume}
    )


@pytest.fixture
def make_bars() -> Callable[..., pd.DataFrame]:
    """`make_bars(n, seed=0, start="2000-01-03")`: random-walk daily bars."""
    return random_walk_bars


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run `finscale ARGS` in this process: its exit code, standard output and error."""
    from finscale.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), captured.out, captured.err


def rounded(value: object, digits: int = 12) -> object:
    """A JSON value with every float rounded to `digits` significant digits: the last ones move
    with the math library's summation order (threads, CPU features)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    return value
