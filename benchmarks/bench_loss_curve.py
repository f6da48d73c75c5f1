"""finscale's training curve beside the conventional step's, at equal settings (JSON).

Speed must not buy a different model. Both sides train the same architecture from several seeds
on the same synthetic windows (a learnable signal in the last days of feature 0, Bernoulli
labels): constant learning rate, Adam (finscale's AdamW with weight decay 0), gradient clipping
at 1.0, batch 256, dropout 0.1, no early stopping. finscale runs `finscale.train.train`; the
conventional side runs `_reference.py`'s step and evaluates with `nn.BCELoss` on probabilities.

Per epoch it prints both sides' mean and standard deviation over seeds of the training loss
and the validation BCE, and z, their difference over its standard error (seeds independent).
The curves agree in distribution when |z| < 3 at every epoch (`within_tolerance`); the
dropout masks, kernels and initial weights differ between the sides, so only the distribution
can agree. It also trains finscale twice from one seed and says whether the two runs are
identical (`reproducible`).

    python benchmarks/bench_loss_curve.py [--seeds 5] [--epochs 8] [--arch d64-l2-h4-f4]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics

import numpy as np
import torch
from _reference import ConventionalStep

from finscale.model import PatchTSTConfig, parse_arch_id
from finscale.train import TrainConfig, TrainingData, train
from finscale.train.trainer import gather_windows

FEATURES = 25
CONTEXT = 60
BATCH = 256
LEARNING_RATE = 3e-4
TOLERANCE_Z = 3.0


def synthetic_data(n_train: int, n_val: int, *, seed: int = 0) -> TrainingData:
    rng = np.random.default_rng(seed)
    rows = n_train + n_val + CONTEXT
    features = rng.standard_normal((rows, FEATURES)).astype("float32")
    starts = np.arange(rows - CONTEXT + 1)
    recent = np.stack([features[s + CONTEXT - 5 : s + CONTEXT, 0].mean() for s in starts])
    p = 1 / (1 + np.exp(-3 * recent))
    labels = (rng.random(len(starts)) < p).astype("float32")
    return TrainingData(
        features=features,
        labels=labels,
        context_length=CONTEXT,
        train=np.arange(n_train),
        val=np.arange(n_train, n_train + n_val),
    )


def finscale_curve(
    model_config: PatchTSTConfig, data: TrainingData, *, epochs: int, seed: int
) -> list[tuple[float, float]]:
    config = TrainConfig(
        learning_rate=LEARNING_RATE,
        weight_decay=0.0,
        warmup_steps=0,
        min_lr_ratio=1.0,
        epochs=epochs,
        patience=epochs,
        batch_size=BATCH,
        grad_clip=1.0,
        seed=seed,
    )
    _, result = train(model_config, config, data)
    return [(h["train_loss"], h["val_bce"]) for h in result.history]


def conventional_curve(
    model_config: PatchTSTConfig, data: TrainingData, *, epochs: int, seed: int
) -> list[tuple[float, float]]:
    torch.manual_seed(seed)
    reference = ConventionalStep(model_config, learning_rate=LEARNING_RATE, grad_clip=1.0)
    features = torch.as_tensor(data.features)
    labels = torch.as_tensor(data.labels)
    train_starts = torch.as_tensor(data.train)
    val_starts = torch.as_tensor(data.val)
    curve = []
    for _ in range(epochs):
        total = 0.0
        for chosen in train_starts[torch.randperm(len(train_starts))].split(BATCH):
            x = gather_windows(features, chosen, CONTEXT)
            total += reference.step(x, labels[chosen]) * len(chosen)
        reference.model.eval()
        with torch.no_grad():
            probs = reference.model(gather_windows(features, val_starts, CONTEXT))
            val = float(reference.loss(probs, labels[val_starts]))
        curve.append((total / len(train_starts), val))
    return curve


def _z(a: list[float], b: list[float]) -> float:
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return (statistics.mean(a) - statistics.mean(b)) / se if se > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--arch", default="d64-l2-h4-f4")
    parser.add_argument("--train-windows", type=int, default=4096)
    args = parser.parse_args()
    data = synthetic_data(args.train_windows, args.train_windows // 4)
    model_config = PatchTSTConfig(
        num_features=FEATURES,
        context_length=CONTEXT,
        dropout=0.1,
        **parse_arch_id(args.arch).dims(),
    )
    ours = [
        finscale_curve(model_config, data, epochs=args.epochs, seed=s) for s in range(args.seeds)
    ]
    theirs = [
        conventional_curve(model_config, data, epochs=args.epochs, seed=s)
        for s in range(args.seeds)
    ]
    again = finscale_curve(model_config, data, epochs=args.epochs, seed=0)
    epochs = []
    worst = 0.0
    for e in range(args.epochs):
        row: dict[str, object] = {"epoch": e + 1}
        for i, name in enumerate(("train_loss", "val_bce")):
            a = [curve[e][i] for curve in ours]
            b = [curve[e][i] for curve in theirs]
            z = _z(a, b)
            worst = max(worst, abs(z))
            row[name] = {
                "finscale": [round(statistics.mean(a), 4), round(statistics.stdev(a), 4)],
                "conventional": [round(statistics.mean(b), 4), round(statistics.stdev(b), 4)],
                "z": round(z, 2),
            }
        epochs.append(row)
    print(json.dumps({
        "arch": args.arch,
        "seeds": args.seeds,
        "train_windows": args.train_windows,
        "learning_rate": LEARNING_RATE,
        "base_rate_bce": round(float(_base_rate_bce(data)), 4),
        "epochs": epochs,
        "max_abs_z": round(worst, 2),
        "tolerance_z": TOLERANCE_Z,
        "within_tolerance": worst < TOLERANCE_Z,
        "reproducible": again == ours[0],
    }, indent=2))  # fmt: skip


def _base_rate_bce(data: TrainingData) -> float:
    rate = float(data.labels[data.train].mean())
    y = data.labels[data.val]
    return float(-(y * math.log(rate) + (1 - y) * math.log(1 - rate)).mean())


if __name__ == "__main__":
    main()
