"""A worker given a GPU checks it before it takes a trial: a node whose GPU cannot train fails
its pod with exit 4 (retried by the Job) and the study loses nothing. On this CPU machine the
real check finds no CUDA; the other causes are what torch.cuda reports on such nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from finscale.errors import ExitCode
from finscale.train.device import device_problem
from tests.conftest import REPO
from tests.conftest import run_cli as run
from tests.integration.conftest import SMALL


@pytest.fixture
def gpu_worker(env: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path) -> Path:
    """A small spec, the sample data, and a worker told to train on CUDA on node gpu-node-7."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SMALL))
    env.setenv("FINSCALE_DATA_DIR", str(data_dir))
    env.setenv("FINSCALE_STORAGE_URL", f"sqlite:///{tmp_path / 'studies.db'}")
    env.setenv("FINSCALE_RUNS_DIR", str(tmp_path / "runs"))
    env.setenv("FINSCALE_DEVICE", "cuda")
    env.setenv("NODE_NAME", "gpu-node-7")
    env.delenv("JOB_COMPLETION_INDEX", raising=False)
    return spec


def test_a_worker_without_a_usable_gpu_exits_4_naming_the_node_and_touches_no_trial(
    gpu_worker: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a node without a GPU (as this machine is; on a GPU machine, torch told so)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run(["worker", str(gpu_worker)], capsys)
    assert code == ExitCode.DEVICE_UNUSABLE == 4, err
    assert "node gpu-node-7: the device cannot train: CUDA is not available" in err
    assert "Traceback" not in err
    # the storage was not even opened: no study, no trial, nothing counted
    assert not (gpu_worker.parent / "studies.db").exists()


def test_the_device_this_machine_has_passes_the_preflight() -> None:
    # the real check: a working GPU where there is one (a GPU machine runs it), else the CPU
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert device_problem(device) is None
    assert device_problem(torch.device("cpu"), bf16=True) is None


def _gpu(monkeypatch: pytest.MonkeyPatch, **reports: Any) -> None:
    """torch.cuda answering as a node's GPU would (what cannot run here)."""
    answers = {
        "is_available": True,
        "get_device_name": "Tesla V100-SXM2-16GB",
        "get_device_capability": (7, 0),
        "get_arch_list": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"],
        "is_bf16_supported": False,
        **reports,
    }
    for name, value in answers.items():
        monkeypatch.setattr(torch.cuda, name, lambda *_, _v=value, **__: _v)


def test_a_gpu_older_than_the_build_is_named_with_its_capability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _gpu(monkeypatch)
    problem = device_problem(torch.device("cuda"))
    assert problem is not None
    assert "Tesla V100-SXM2-16GB has compute capability 7.0" in problem
    assert "kernels start at 7.5" in problem


def test_bf16_asked_of_a_gpu_without_it_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpu(monkeypatch, get_device_name="Tesla T4", get_device_capability=(7, 5))
    ones = torch.ones
    monkeypatch.setattr(torch, "ones", lambda *shape, device=None: ones(*shape))  # on the CPU
    assert device_problem(torch.device("cuda"), bf16=False) is None
    problem = device_problem(torch.device("cuda"), bf16=True)
    assert problem is not None and "Tesla T4 does not support bf16" in problem


def test_the_rendered_job_retries_exit_4_and_tells_the_pod_its_node() -> None:
    path = REPO / "jobs" / "phase6a" / "phase6a-2m-h1.yaml"
    job = next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "Job")
    rules = job["spec"]["podFailurePolicy"]["rules"]
    failing = [r["onExitCodes"]["values"] for r in rules if r["action"] == "FailJob"]
    assert failing == [[ExitCode.BAD_INPUT]]  # 4 counts against the index's backoff: retried
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["FINSCALE_DEVICE"]["value"] == "cuda"
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_compile_without_a_c_compiler_is_refused_before_the_worker_joins(
    env: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from finscale.train.device import compile_problem

    # given a spec asking torch.compile, in an image without a C compiler (as the slim ones)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SMALL, "training": {**SMALL["training"], "compile": True}}))
    env.setenv("FINSCALE_DATA_DIR", str(data_dir))
    env.setenv("FINSCALE_STORAGE_URL", f"sqlite:///{tmp_path / 'studies.db'}")
    env.setenv("FINSCALE_DEVICE", "cpu")
    bare = tmp_path / "bin"
    bare.mkdir()
    env.setenv("PATH", str(bare))
    env.delenv("CC", raising=False)
    env.delenv("JOB_COMPLETION_INDEX", raising=False)
    # when a worker starts, then it refuses at once (exit 2: no retry helps), naming the field
    code, _, err = run(["worker", str(spec)], capsys)
    assert code == ExitCode.BAD_INPUT == 2, err
    assert "training.compile: true cannot run here" in err and "no cc, gcc or clang" in err
    assert not (tmp_path / "studies.db").exists()  # nothing joined, no trial taken
    # and a compiler on PATH is all it needs
    (bare / "cc").write_text("#!/bin/sh\n")
    (bare / "cc").chmod(0o755)
    assert compile_problem() is None
