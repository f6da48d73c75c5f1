"""The install path as the images take it: scripts/install.sh into a fresh virtual environment
installs exactly the locks (hash-checked), then finscale; in it the image's build steps (the code
identity baked, the sample datasets) run, and the data Job's yfinance source is there. Slow: it
installs torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from finscale.identity import source_digest
from tests.conftest import REPO


def _locked(*names: str) -> dict[str, str]:
    pins = {}
    for name in names:
        text = (REPO / "requirements" / name).read_text()
        for found in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.MULTILINE):
            pins[canonicalize_name(found.group(1))] = found.group(2)
    return pins


@pytest.mark.slow
def test_the_cpu_image_install_is_exactly_the_lock_and_runs(tmp_path: Path) -> None:
    # given a fresh virtual environment, as the image's build stage creates it
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINSCALE_", "PYTHON"))}

    # when the image's install runs: the locks, then finscale from the source tree
    install = subprocess.run(
        ["bash", str(REPO / "scripts" / "install.sh"), "cpu", str(REPO)],
        env={**env, "PYTHON": python, "PIP_QUIET": "1"},
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    # then the environment holds the locked versions and finscale, nothing else
    freeze = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    installed = {
        canonicalize_name(name): version
        for name, version in (line.split("==") for line in freeze.splitlines())
    }
    assert installed.pop("finscale") == "0.1.0"
    installed.pop("pip")
    assert installed == _locked("runtime.txt", "torch-cpu.txt")
    # and the image's build step, the data check and the data Job's source work in it
    data = tmp_path / "data"
    run_env = {**env, "FINSCALE_DATA_DIR": str(data)}
    finscale = str(venv / "bin" / "finscale")
    for command in (
        [python, "-m", "finscale.identity", "--bake"],
        [finscale, "data", "build", "--source", "sample"],
        [finscale, "data", "verify"],
        [python, "-c", "import yfinance, talib, torch; assert torch.__version__.endswith('+cpu')"],
    ):
        result = subprocess.run(command, env=run_env, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, f"{command}: {result.stderr[-3000:]}"
    # and the installed package's baked code identity is the source tree's: an image's workers
    # join the studies that a checkout of the same code created
    baked = subprocess.run(
        [python, "-m", "finscale.identity"], env=run_env, capture_output=True, text=True, check=True
    )
    assert baked.stdout.strip() == source_digest(REPO / "src" / "finscale")
