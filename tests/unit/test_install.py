"""One install path, checked offline: the locks in requirements/ pin every dependency of
pyproject.toml with hashes, the Makefile and both images install them with scripts/install.sh, and
the GPU image's torch pin is the CUDA build PyPI publishes for it (its recorded metadata)."""

from __future__ import annotations

import email.parser
import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

LOCKS = REPO / "requirements"
PYPI = REPO / "tests" / "pypi"
# The images' and CI's Python and platform: what scripts/lock.sh resolves for.
TARGET = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.11",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "implementation_name": "cpython",
}
IMAGES = {"cuda": REPO / "Dockerfile", "cpu": REPO / "images" / "cpu" / "Dockerfile"}
# CUDA major of PyPI's torch build → the oldest NVIDIA Linux driver that runs it (NVIDIA's CUDA
# release notes, "CUDA Toolkit and Minimum Required Driver Version": 13.x needs R580).
DRIVER_FOR_CUDA = {13: "580.65.06"}


def _pins(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """A lock's `name==version` lines, with the hashes that follow each."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    text = path.read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        first = block.split()[0] if block.strip() else ""
        if "==" not in first:
            assert first == "" or first.startswith("#"), f"{path}: unpinned line {first!r}"
            continue
        name, version = first.split("==")
        pins[canonicalize_name(name)] = (
            Version(version),
            re.findall(r"sha256:([0-9a-f]{64})", block),
        )
    return pins


def _project() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _torch_version() -> str:
    found = re.search(r"^TORCH_VERSION \?= (\S+)", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert found
    return found.group(1)


def _needed(requirements: list[str]) -> list[Requirement]:
    out = [Requirement(r) for r in requirements]
    return [r for r in out if r.marker is None or r.marker.evaluate(TARGET)]


RUNTIME = _pins(LOCKS / "runtime.txt")
DEV = _pins(LOCKS / "dev.txt")
TORCH = {variant: _pins(LOCKS / f"torch-{variant}.txt") for variant in ("cpu", "cuda")}


@pytest.mark.parametrize("lock", sorted(LOCKS.glob("*.txt")), ids=lambda p: p.name)
def test_every_locked_package_is_pinned_with_hashes(lock: Path) -> None:
    pins = _pins(lock)
    assert pins
    assert all(hashes for _version, hashes in pins.values()), [
        name for name, (_v, hashes) in pins.items() if not hashes
    ]


def test_the_runtime_lock_covers_every_dependency_and_the_yfinance_extra() -> None:
    project = _project()
    needed = _needed([*project["dependencies"], *project["optional-dependencies"]["yfinance"]])
    assert "yfinance" in {r.name for r in needed}
    for requirement in needed:
        name = canonicalize_name(requirement.name)
        if name == "torch":  # the one dependency whose build differs by image
            for variant, pins in TORCH.items():
                assert requirement.specifier.contains(pins["torch"][0], prereleases=True), variant
            continue
        assert name in RUNTIME, f"{name} is not in requirements/runtime.txt: run make lock"
        assert requirement.specifier.contains(RUNTIME[name][0], prereleases=True), (
            f"{name}: the lock's {RUNTIME[name][0]} does not satisfy {requirement}: make lock"
        )


def test_the_dev_lock_covers_the_dev_extra_and_no_package_is_locked_twice() -> None:
    for requirement in _needed(_project()["optional-dependencies"]["dev"]):
        name = canonicalize_name(requirement.name)
        version = (DEV.get(name) or RUNTIME[name])[0]
        assert requirement.specifier.contains(version, prereleases=True), name
    for variant, pins in TORCH.items():
        assert not set(pins) & set(RUNTIME), variant
        assert not set(pins) & set(DEV), variant
    assert not set(DEV) & set(RUNTIME)


def test_both_torch_builds_pin_the_makefiles_release() -> None:
    version = _torch_version()
    assert TORCH["cpu"]["torch"][0] == Version(f"{version}+cpu")  # PyTorch's CPU index
    assert TORCH["cuda"]["torch"][0] == Version(version)  # PyPI's build
    assert set(TORCH["cpu"]) == {"torch"}


def test_the_cuda_lock_is_pypis_build_as_its_recorded_metadata_says() -> None:
    # given PyPI's record of the wheel the GPU image installs (Python 3.11, x86_64 Linux)
    version = _torch_version()
    name = f"torch-{version}-cp311-cp311-manylinux_2_28_x86_64.whl"
    metadata = email.parser.Parser().parsestr((PYPI / f"{name}.metadata").read_text())
    entry = json.loads((PYPI / f"{name}.json").read_text())
    assert metadata["Name"] == "torch" and metadata["Version"] == version
    assert entry["index"] == "https://pypi.org/simple/torch/"
    assert entry["file"]["filename"] == name and not entry["file"]["yanked"]
    # then the lock pins that very file
    assert entry["file"]["hashes"]["sha256"] in TORCH["cuda"]["torch"][1]
    # and every requirement it has on Linux, at a version it accepts
    locked = {**RUNTIME, **TORCH["cuda"]}
    needed = _needed(metadata.get_all("Requires-Dist"))
    for requirement in needed:
        name_ = canonicalize_name(requirement.name)
        assert name_ in locked, f"torch needs {requirement}; requirements/torch-cuda.txt lacks it"
        assert requirement.specifier.contains(locked[name_][0], prereleases=True), requirement
    # and the build is CUDA 13, whose driver the image demands and the runbook states
    (toolkit,) = [r for r in needed if r.name == "cuda-toolkit"]
    cuda_major = Version(next(iter(toolkit.specifier)).version).major
    assert {canonicalize_name(r.name) for r in needed} >= {"nvidia-cudnn-cu13", "nvidia-nccl-cu13"}
    assert cuda_major == 13
    assert f'NVIDIA_REQUIRE_CUDA="cuda>={cuda_major}.0"' in IMAGES["cuda"].read_text()
    for doc in ("docs/kubernetes.md", "README.md"):
        text = " ".join((REPO / doc).read_text().split())
        assert f"CUDA {cuda_major}" in text and DRIVER_FOR_CUDA[cuda_major] in text, doc


@pytest.mark.parametrize(("variant", "dockerfile"), IMAGES.items(), ids=IMAGES)
def test_images_install_with_the_script_and_nothing_else(variant: str, dockerfile: Path) -> None:
    text = dockerfile.read_text()
    assert f"RUN scripts/install.sh {variant}\n" in text  # the locked dependencies, cached
    assert f"RUN scripts/install.sh {variant} . \\" in text  # then finscale, without deps
    assert "pip install" not in text and "download.pytorch.org" not in text
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    # a plain Python for both: the CUDA build of torch brings its CUDA libraries itself
    assert stages == ["python:3.11.11-slim-bookworm"] * 2
    assert "USER 10001:10001" in text
    assert 'ENTRYPOINT ["finscale"]' in text
    assert "finscale data build --source sample" in text
    # the code identity studies store, computed once into the installed package
    assert "python -m finscale.identity --bake" in text


def test_make_setup_installs_with_the_script() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile[makefile.index("$(VENV)/.installed:") :].split("\n\n")[0]
    assert "scripts/install.sh cpu --dev -e ." in recipe
    assert "pip install" not in recipe


def test_the_install_script_is_valid_bash_and_refuses_an_unknown_build() -> None:
    script = REPO / "scripts" / "install.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run(["bash", str(script), "rocm"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage:" in result.stderr
