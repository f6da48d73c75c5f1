"""Training throughput of the trainer's inner step, against this machine's matmul peak (JSON).

For each reference architecture (25 features, context 60, patch 10, stride 5, batch 256) it
times `finscale.train.trainer.train_step` with dropout on and off, counts the FLOPs of one step
with torch's FLOP counter (matrix products forward and backward), and divides the achieved rate
by the peak of a large `torch.matmul` measured in the same run.

    python benchmarks/bench_train.py [--device cpu|cuda] [--precision fp32|bf16] [--compile]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from finscale.model import PatchTST, PatchTSTConfig, parse_arch_id
from finscale.train.optim import configure_optimizer
from finscale.train.trainer import train_step

ARCHS = ("d64-l48-h2-f4", "d192-l4-h8-f4")
BATCH = 256
FEATURES = 25
CONTEXT = 60


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(
    device: torch.device, dtype: torch.dtype, *, n: int = 4096, seconds: float = 3.0
) -> float:
    """FLOP/s of a large square matmul, best of several timed runs."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def bench(
    arch_id: str, *, dropout: float, device: torch.device, precision: str, compile: bool, steps: int
) -> dict[str, object]:
    torch.manual_seed(0)
    arch = parse_arch_id(arch_id)
    config = PatchTSTConfig(
        num_features=FEATURES, context_length=CONTEXT, dropout=dropout, **arch.dims()
    )
    model = PatchTST(config).to(device)
    forward = torch.compile(model) if compile else model
    optimizer = configure_optimizer(model, learning_rate=1e-4, weight_decay=0.01)
    rows = 5000
    features = torch.randn(rows, FEATURES, device=device)
    labels = (torch.rand(rows, device=device) < 0.3).float()
    starts = torch.arange(rows - CONTEXT, device=device)
    generator = torch.Generator().manual_seed(0)

    def one_step() -> None:
        batch = starts[torch.randint(len(starts), (BATCH,), generator=generator).to(device)]
        train_step(
            forward, optimizer, features, labels, batch,
            context_length=CONTEXT, micro_batch=BATCH, lr=1e-4, grad_clip=1.0, precision=precision,
        )  # fmt: skip

    with FlopCounterMode(display=False) as counter:
        one_step()
    flops = counter.get_total_flops()
    for _ in range(3):  # warm-up (and compilation)
        one_step()
    _sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        one_step()
        _sync(device)
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {
        "arch": arch_id,
        "params": model.num_parameters(),
        "dropout": dropout,
        "ms_per_step": round(1000 * step_s, 2),
        "windows_per_s": round(BATCH / step_s, 1),
        "gflop_per_step": round(flops / 1e9, 3),
        "mflop_per_window": round(flops / BATCH / 1e6, 1),
        "achieved_gflop_s": round(flops / step_s / 1e9, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--archs", nargs="*", default=list(ARCHS))
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    peak = matmul_peak(device, dtype)
    rows = []
    for arch_id in args.archs:
        for dropout in (0.1, 0.0):
            rows.append(
                bench(
                    arch_id,
                    dropout=dropout,
                    device=device,
                    precision=args.precision,
                    compile=args.compile,
                    steps=args.steps,
                )
            )
            # Measured again between runs: the machine is shared, its best moment is the peak.
            peak = max(peak, matmul_peak(device, dtype, seconds=1.0))
    for row in rows:
        row["fraction_of_peak"] = round(float(row["achieved_gflop_s"]) * 1e9 / peak, 3)  # type: ignore[arg-type]
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    print(json.dumps({
        "device": name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": args.precision,
        "compile": args.compile,
        "batch": BATCH,
        "matmul_peak_gflop_s": round(peak / 1e9, 1),
        "results": rows,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
