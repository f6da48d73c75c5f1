"""The device a run trains on, how much memory it may use, and its CPU threads."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch

# Kept free for the interpreter's own growth and the first backward pass's one-off set-up
# (about 90 MiB on the host, see benchmarks/bench_memory.py).
RESERVE_BYTES = 256 * 2**20


def compile_problem() -> str | None:
    """Why `torch.compile` cannot run here, or None: it builds its kernels (C++ on the CPU,
    Triton's launchers on a GPU) with a C compiler at run time, which a slim image lacks."""
    named = os.environ.get("CC")
    if any(shutil.which(c) for c in (named, "cc", "gcc", "clang") if c):
        return None
    return (
        "torch.compile builds its kernels with a C compiler at run time and none is on PATH "
        f"(CC={named or 'unset'}, no cc, gcc or clang)"
    )


# What a device, not a trial, says when it fails under a running trial (lower case): the
# CUDA driver's and libraries' execution errors, lost or faulty GPUs. A CUDA out-of-memory
# error is not one of them: it is the trial's (its architecture does not fit).
_DEVICE_FAULTS = (
    "cuda error",
    "cudaerror",
    "cublas_status_execution_failed",
    "cublas_status_internal_error",
    "cudnn_status_execution_failed",
    "cudnn_status_internal_error",
    "uncorrectable ecc error",
    "ecc error",
    "unspecified launch failure",
    "gpu has fallen off the bus",
    "nccl error",
    "no cuda gpus are available",
    "cuda-capable device(s) is/are busy or unavailable",
)
# Errors in a trial's own code that CUDA reports the same way (an index out of range in a
# kernel): the trial's, not the node's.
_TRIAL_FAULTS = ("device-side assert", "out of memory")


def device_fault(error: BaseException) -> str | None:
    """The first line of `error` when the device (not the trial) failed under a running
    trial, else None: a worker hands such a trial back and leaves its node."""
    text = str(error).strip()
    lowered = text.lower()
    if isinstance(error, torch.OutOfMemoryError) or any(t in lowered for t in _TRIAL_FAULTS):
        return None
    accelerator = getattr(torch, "AcceleratorError", ())
    if isinstance(error, accelerator) or any(f in lowered for f in _DEVICE_FAULTS):
        return text.splitlines()[0] if text else type(error).__name__
    return None


def resolve_device(name: str) -> torch.device:
    """`auto` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_problem(device: torch.device, *, bf16: bool = False) -> str | None:
    """Why `device` cannot train, or None: checked before a worker takes a trial, so that a
    node without a usable GPU fails its pod, not the study's trials.

    CUDA: present in this build and on this node, a compute capability the build has kernels
    for, a small matrix product that gives the right answer, and bf16 when asked for.
    """
    if device.type != "cuda":
        return None
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none"
        return (
            f"CUDA is not available (torch {torch.__version__}, built for CUDA {build}; "
            f"{torch.cuda.device_count()} devices visible): no GPU on this node, a driver older "
            "than the build needs, or the container runtime did not expose the GPU"
        )
    index = device.index or 0
    name = torch.cuda.get_device_name(index)
    major, minor = torch.cuda.get_device_capability(index)
    built = [a for a in torch.cuda.get_arch_list() if a.startswith("sm_")]
    lowest = min((int(a[3:]) for a in built), default=0)
    if built and major * 10 + minor < lowest:
        return (
            f"{name} has compute capability {major}.{minor}; this torch build's kernels start "
            f"at {lowest // 10}.{lowest % 10} ({', '.join(built)})"
        )
    try:
        ones = torch.ones(64, 64, device=device)
        total = float((ones @ ones).sum().item())
    except RuntimeError as e:
        return f"{name}: a 64×64 matrix product failed: {str(e).splitlines()[0]}"
    if total != 64.0**3:
        return f"{name}: a 64×64 matrix product of ones summed to {total}, not {64**3}"
    if bf16 and not torch.cuda.is_bf16_supported():
        return f"{name} does not support bf16, which the spec's training.precision asks for"
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def available_memory_bytes(device: torch.device, *, share: float = 1.0) -> int:
    """Memory a new training run may still take on `device`.

    CUDA: the device's free memory. CPU: what the container's memory limit (cgroup v2 or v1)
    leaves beside what the container already uses, and never more than the host has available.
    Both keep `RESERVE_BYTES` aside.

    Args:
        device: where the run trains.
        share: the part of the device (or of the container's limit) this process may plan
            within, when several training processes share it; what is free bounds it too.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return max(0, min(free, int(total * share)) - RESERVE_BYTES)
    available = _mem_available()
    if share < 1:
        total_host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        available = min(available, int(total_host * share))
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, usage = _read_int(Path(limit_file)), _read_int(Path(usage_file))
        if limit is not None and usage is not None and limit < 2**60:
            available = min(available, limit - usage, int(limit * share))
            break
    return max(0, available - RESERVE_BYTES)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the block with torch's intra-op thread count at `threads` (None: as it is), then
    restore it. On the CPU the count decides how reductions are split, so a run reproduces
    another bit for bit only at the count that one ran with.

    Yields:
        The thread count the block runs with.
    """
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield before
        return
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
