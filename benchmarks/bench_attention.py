"""Which attention kernel is fastest, by device and sequence length (JSON).

Times forward plus backward of multi-head self-attention for the shapes a PatchTST layer
feeds it (batch 256 windows, the reference architectures' heads and head widths) at several
sequence lengths (P = 11 is the shipped context of 60 days in patches of 10 with stride 5):

- `default`: `F.scaled_dot_product_attention` left to choose its kernel (the model's path);
- `flash`, `efficient`, `math`: the same call restricted to one backend (`efficient` runs on
  CUDA only);
- `manual`: `softmax(q kᵀ / √d) v` written out with batched matmuls, as
  `nn.MultiheadAttention` once did.

    python benchmarks/bench_attention.py [--device cpu|cuda] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BATCH = 256
# (heads, head width) of d64-l48-h2-f4 and d192-l4-h8-f4.
HEADS = ((2, 32), (8, 24))
LENGTHS = (11, 23, 64, 128)

Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _manual(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, H, P, P)
    return scores.softmax(-1) @ v


def _backend(backend: SDPBackend | None) -> Attention:
    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if backend is None:
            return F.scaled_dot_product_attention(q, k, v)
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v)

    return attend


def _time(attend: Attention, shape: tuple[int, ...], device: torch.device, repeats: int) -> float:
    q, k, v = (torch.randn(shape, device=device, requires_grad=True) for _ in range(3))
    grad = torch.randn(shape, device=device)
    times = []
    for i in range(repeats + 3):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        attend(q, k, v).backward(grad)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    device = torch.device(args.device)
    paths: dict[str, Attention] = {
        "default": _backend(None),
        "flash": _backend(SDPBackend.FLASH_ATTENTION),
        "math": _backend(SDPBackend.MATH),
        "manual": _manual,
    }
    if device.type == "cuda":
        paths["efficient"] = _backend(SDPBackend.EFFICIENT_ATTENTION)
    rows = []
    for heads, width in HEADS:
        for length in LENGTHS:
            shape = (BATCH, heads, length, width)
            ms: dict[str, float | None] = {}
            for name, attend in paths.items():
                try:
                    ms[name] = round(1000 * _time(attend, shape, device, args.repeats), 3)
                except RuntimeError:  # no kernel of this backend for the device or shape
                    ms[name] = None
            timed = {k: v for k, v in ms.items() if v is not None}
            fastest = min(timed, key=lambda k: timed[k])
            rows.append({
                "heads": heads,
                "head_width": width,
                "length": length,
                "ms_forward_backward": ms,
                "fastest": fastest,
                "default_over_fastest": round(timed["default"] / timed[fastest], 3),
            })  # fmt: skip
    print(json.dumps({"device": str(device), "torch": torch.__version__, "batch": BATCH,
                      "results": rows}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
