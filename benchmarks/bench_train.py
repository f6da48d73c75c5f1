"""Training throughput of finscale's step beside a conventional PatchTST step (JSON).

For each reference architecture (25 features, context 60, patch 10, stride 5, batch 256) and
dropout 0.1 and 0.0, it builds finscale's model and optimizer and the conventional step of
`_reference.py` (the research system's way: `nn.TransformerEncoderLayer` on
`nn.MultiheadAttention`, Adam, `nn.BCELoss` on sigmoid outputs, gradient clipping on both
sides), then times them in interleaved rounds in this one process: each round runs `--steps`
steps of one and then of the other, alternating which goes first. The ratio of each round
compares two measurements taken seconds apart, so a shared machine's drift cancels; the
figures are medians over rounds with the interquartile range of the ratio.

It also counts the FLOPs of one finscale step (matrix products, forward and backward, with
torch's FLOP counter) and divides the achieved rate by the peak of a large `torch.matmul`
measured in the same run, and, with `--epoch`, times what a trial pays per epoch (the shuffled
training steps and the validation pass: `finscale.train.train` for one epoch against the
conventional loop and its evaluation).

    python benchmarks/bench_train.py [--device cpu|cuda] [--precision fp32|bf16] [--compile]
                                     [--rounds 9] [--steps 5] [--epoch]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from _reference import ConventionalStep
from torch.utils.flop_counter import FlopCounterMode

from finscale.model import PatchTST, PatchTSTConfig, parse_arch_id
from finscale.train import TrainConfig, TrainingData, train
from finscale.train.optim import configure_optimizer
from finscale.train.trainer import gather_windows, train_step

ARCHS = ("d64-l48-h2-f4", "d192-l4-h8-f4")
BATCH = 256
FEATURES = 25
CONTEXT = 60
ROWS = 5000


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


def _timed(fn: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Seconds per call of `fn`, over `repeats` calls."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def _interleaved(
    ours: Callable[[], None],
    theirs: Callable[[], None],
    device: torch.device,
    *,
    rounds: int,
    repeats: int,
) -> tuple[list[float], list[float]]:
    """Seconds per call of each, one pair per round, alternating which runs first."""
    mine, conventional = [], []
    for r in range(rounds):
        if r % 2:
            conventional.append(_timed(theirs, device, repeats))
            mine.append(_timed(ours, device, repeats))
        else:
            mine.append(_timed(ours, device, repeats))
            conventional.append(_timed(theirs, device, repeats))
    return mine, conventional


def _summary(mine: list[float], conventional: list[float], windows: int) -> dict[str, float]:
    ratios = [c / m for m, c in zip(mine, conventional, strict=True)]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return {
        "finscale_windows_per_s": round(windows / statistics.median(mine), 1),
        "conventional_windows_per_s": round(windows / statistics.median(conventional), 1),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_iqr": [round(q1, 3), round(q3, 3)],
    }


def bench_step(
    arch_id: str,
    *,
    dropout: float,
    device: torch.device,
    precision: str,
    compile: bool,
    rounds: int,
    steps: int,
) -> dict[str, object]:
    torch.manual_seed(0)
    config = PatchTSTConfig(
        num_features=FEATURES,
        context_length=CONTEXT,
        dropout=dropout,
        **parse_arch_id(arch_id).dims(),
    )
    model = PatchTST(config).to(device)
    forward = torch.compile(model) if compile else model
    optimizer = configure_optimizer(model, learning_rate=1e-4, weight_decay=0.01)
    reference = ConventionalStep(config)
    reference.model.to(device)
    features = torch.randn(ROWS, FEATURES, device=device)
    labels = (torch.rand(ROWS, device=device) < 0.3).float()
    starts = torch.arange(ROWS - CONTEXT, device=device)
    generator = torch.Generator().manual_seed(0)

    def batch() -> torch.Tensor:
        return starts[torch.randint(len(starts), (BATCH,), generator=generator).to(device)]

    def finscale_step() -> None:
        train_step(
            forward, optimizer, features, labels, batch(),
            context_length=CONTEXT, micro_batch=BATCH, lr=1e-4, grad_clip=1.0, precision=precision,
        ).item()  # fmt: skip

    def conventional_step() -> None:
        chosen = batch()
        reference.step(gather_windows(features, chosen, CONTEXT), labels[chosen])

    with FlopCounterMode(display=False) as counter:
        finscale_step()
    flops = counter.get_total_flops()
    for _ in range(3):  # warm-up (and compilation)
        finscale_step()
        conventional_step()
    mine, conventional = _interleaved(
        finscale_step, conventional_step, device, rounds=rounds, repeats=steps
    )
    step_s = statistics.median(mine)
    return {
        "arch": arch_id,
        "params": model.num_parameters(),
        "dropout": dropout,
        "ms_per_step": round(1000 * step_s, 2),
        **_summary(mine, conventional, BATCH),
        "gflop_per_step": round(flops / 1e9, 3),
        "achieved_gflop_s": round(flops / step_s / 1e9, 1),
    }


def bench_epoch(
    arch_id: str, *, dropout: float, device: torch.device, rounds: int
) -> dict[str, object]:
    """One epoch as a trial pays it: 2048 training windows in shuffled batches, then the
    validation pass over 1024 windows with its metrics."""
    rng = np.random.default_rng(0)
    n_train, n_val = 2048, 1024
    features = rng.standard_normal((n_train + n_val + CONTEXT, FEATURES)).astype("float32")
    labels = (rng.random(len(features)) < 0.3).astype("float32")
    data = TrainingData(
        features=features,
        labels=labels,
        context_length=CONTEXT,
        train=np.arange(n_train),
        val=np.arange(n_train, n_train + n_val),
    )
    model_config = PatchTSTConfig(
        num_features=FEATURES,
        context_length=CONTEXT,
        dropout=dropout,
        **parse_arch_id(arch_id).dims(),
    )
    train_config = TrainConfig(epochs=1, batch_size=BATCH, device=device.type, warmup_steps=0)
    reference = ConventionalStep(model_config)
    reference.model.to(device)
    x_all = torch.as_tensor(features, device=device)
    y_all = torch.as_tensor(labels, device=device)
    train_starts = torch.as_tensor(data.train, device=device)
    val_starts = torch.as_tensor(data.val, device=device)

    def finscale_epoch() -> None:
        train(model_config, train_config, data)

    def conventional_epoch() -> None:
        for chosen in train_starts[torch.randperm(n_train, device=device)].split(BATCH):
            reference.step(gather_windows(x_all, chosen, CONTEXT), y_all[chosen])
        reference.model.eval()
        with torch.no_grad():
            probs = torch.cat(
                [
                    reference.model(gather_windows(x_all, chosen, CONTEXT))
                    for chosen in val_starts.split(BATCH)
                ]
            )
            reference.loss(probs, y_all[val_starts]).item()
        from sklearn.metrics import roc_auc_score

        roc_auc_score(labels[data.val], probs.cpu().numpy())

    finscale_epoch()
    conventional_epoch()
    mine, conventional = _interleaved(
        finscale_epoch, conventional_epoch, device, rounds=rounds, repeats=1
    )
    return {"arch": arch_id, "dropout": dropout, **_summary(mine, conventional, n_train)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile finscale's model")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=5, help="steps of each side per round")
    parser.add_argument("--archs", nargs="*", default=list(ARCHS))
    parser.add_argument("--epoch", action="store_true", help="also time whole epochs")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    peak = matmul_peak(device, dtype)
    steps, epochs = [], []
    for arch_id in args.archs:
        for dropout in (0.1, 0.0):
            steps.append(
                bench_step(
                    arch_id,
                    dropout=dropout,
                    device=device,
                    precision=args.precision,
                    compile=args.compile,
                    rounds=args.rounds,
                    steps=args.steps,
                )
            )
            if args.epoch:
                epochs.append(
                    bench_epoch(arch_id, dropout=dropout, device=device, rounds=args.rounds)
                )
            # Measured again between runs: the machine is shared, its best moment is the peak.
            peak = max(peak, matmul_peak(device, dtype, seconds=1.0))
    for row in steps:
        row["fraction_of_peak"] = round(float(row["achieved_gflop_s"]) * 1e9 / peak, 3)  # type: ignore[arg-type]
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    report: dict[str, object] = {
        "device": name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": args.precision,
        "compile": args.compile,
        "batch": BATCH,
        "rounds": args.rounds,
        "matmul_peak_gflop_s": round(peak / 1e9, 1),
        "steps": steps,
    }
    if epochs:
        report["epochs"] = epochs
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
