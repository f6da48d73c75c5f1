"""Estimated vs measured peak memory of training, per architecture (prints JSON).

Each architecture trains for two short epochs in a fresh process. On the CPU the measure is the
growth of the process's peak resident set (ru_maxrss) over its size just before the model is
built, after a tiny run has paid the one-off set-up of autograd and the math libraries; on CUDA
it is `torch.cuda.max_memory_allocated` over the allocation before the model.

    python benchmarks/bench_memory.py [--device cpu|cuda] [--precision fp32|bf16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

ARCHS = [
    # (id, micro_batch, dropout)
    ("d64-l2-h2-f2", 256, 0.1),
    ("d64-l48-h2-f4", 256, 0.1),
    ("d192-l4-h8-f4", 256, 0.1),
    ("d384-l2-h8-f2", 256, 0.1),
    ("d256-l32-h4-f2", 64, 0.1),
    ("d512-l8-h8-f2", 128, 0.2),
    ("d1024-l2-h8-f2", 256, 0.0),
    ("d128-l16-h4-f4", 512, 0.0),
]
PARTS = ("weights", "gradients", "optimizer", "activations", "workspace")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def child(
    arch_id: str, micro: int, dropout: float, device: str, precision: str
) -> dict[str, object]:
    """Train one architecture in this process and compare its peak with the estimate."""
    import numpy as np
    import torch

    from finscale.model import PatchTSTConfig, parse_arch_id
    from finscale.model.memory import estimate_training_memory
    from finscale.train import TrainConfig, TrainingData, train

    rng = np.random.default_rng(0)
    rows = 60 + 3 * micro + 200
    features = rng.normal(size=(rows, 25)).astype("float32")
    labels = (rng.random(rows) < 0.3).astype("float32")

    def data(n_train: int, n_val: int) -> TrainingData:
        return TrainingData(
            features=features,
            labels=labels,
            context_length=60,
            train=np.arange(n_train),
            val=np.arange(n_train, n_train + n_val),
        )

    start = _rss()
    tiny = PatchTSTConfig(num_features=25, d_model=16, n_heads=2, n_layers=1, d_ff=32)
    train(tiny, TrainConfig(epochs=1, batch_size=8, warmup_steps=1, device=device), data(8, 8))
    setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start

    config = PatchTSTConfig(num_features=25, dropout=dropout, **parse_arch_id(arch_id).dims())
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss()
    run = TrainConfig(
        epochs=2,
        batch_size=micro,
        micro_batch=micro,
        warmup_steps=1,
        device=device,
        precision=precision,  # type: ignore[arg-type]
    )
    train(config, run, data(3 * micro, 100))
    if device == "cuda":
        measured = torch.cuda.max_memory_allocated() - base
    else:
        measured = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    estimate = estimate_training_memory(
        config,
        micro_batch=micro,
        precision=precision,  # type: ignore[arg-type]
        device=device,  # type: ignore[arg-type]
    )
    return {
        "arch": arch_id,
        "micro_batch": micro,
        "dropout": dropout,
        "estimate_mib": round(estimate.total / 2**20, 1),
        "measured_mib": round(measured / 2**20, 1),
        "ratio": round(estimate.total / measured, 3),
        "parts_mib": {k: round(getattr(estimate, k) / 2**20, 1) for k in PARTS},
        "process_rss_before_mib": round(base / 2**20, 1) if device == "cpu" else None,
        "first_run_setup_mib": round(setup / 2**20, 1) if device == "cpu" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument(
        "--child", nargs=3, metavar=("ARCH", "MICRO", "DROPOUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        arch_id, micro, dropout = args.child
        print(json.dumps(child(arch_id, int(micro), float(dropout), args.device, args.precision)))
        return
    rows = []
    for arch_id, micro, dropout in ARCHS:
        command = [sys.executable, __file__, "--device", args.device, "--precision", args.precision]
        command += ["--child", arch_id, str(micro), str(dropout)]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    device = args.device
    if device == "cuda":
        import torch

        device = torch.cuda.get_device_name()
    ratios = [float(r["ratio"]) for r in rows]
    summary = {
        "device": device,
        "precision": args.precision,
        "rows": rows,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "within_30_percent": all(0.7 <= r <= 1.3 for r in ratios),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
