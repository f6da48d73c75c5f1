"""Window-level predictions in a few kilobytes: what each trial stores so that the report can
test skill on the same windows and resample them jointly across budgets.

A trial's validation logits travel as a JSON-safe string (an Optuna user attr): float16,
little-endian, the two bytes of each value split into two planes (all low bytes, then all high
bytes), zlib-compressed, base64. The labels travel once as packed bits.

Size (base64 characters, i.e. bytes in the database, of smooth logits such as a model emits on
sliding windows; measured by `tests/unit/test_predictions.py`):

| windows | logits `f16z` | logits `f16` (no zlib) | labels `bits` |
|---:|---:|---:|---:|
| 660 | ≈ 1.5 KB | 1,768 | 121 |
| 3,000 | ≈ 6.4 KB | 8,009 | 510 |

so a study of 1,000 trials with 3,000 validation windows stores about 6.5 MB of predictions:
nothing for PostgreSQL (a `text` value may hold 1 GB; Optuna stores user attrs as text).

Precision: float16 keeps 11 significant bits, so a decoded logit x' differs from x by at most
2⁻¹¹·|x| (the unit roundoff of round-to-nearest; 2⁻²⁵ absolute below float16's normal range).
The per-window BCE moves by at most |x − x'|·|σ(x) − y|, and |x|·|σ(x) − y| ≤ max(BCE, 0.28),
so each window's BCE is within 2⁻¹¹·max(BCE, 0.28), and the mean BCE of decoded logits within
2⁻¹¹·(BCE + 0.28) ≈ 3.3e-4 of the float32 one at BCE 0.4 (in practice ~1e-5: rounding errors
partly cancel). Logits are clipped to ±60000 (float16's range); a model never emits such values.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np

_F16 = "f16"
_F16Z = "f16z"
_BITS = "bits"
_F16_MAX = 60000.0  # below float16's largest finite value, 65504
FLOAT16_RELATIVE_ERROR = 2.0**-11  # bound on |x' - x| / |x| for decoded normal float16 values


def encode_logits(logits: np.ndarray, *, compress: bool = True) -> str:
    """One string holding the logits, one per window, in window order.

    Args:
        logits: shape (n,), finite.
        compress: zlib over byte planes (`f16z`, ~15 % smaller for smooth logits) or plain
            (`f16`).

    Returns:
        ``"f16z:<n>:<base64>"`` or ``"f16:<n>:<base64>"`` (ASCII, JSON-safe).

    Raises:
        ValueError: not one-dimensional, or a value is not finite.
    """
    x = np.asarray(logits, dtype="float64")
    if x.ndim != 1:
        raise ValueError(f"logits must be one-dimensional, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{int((~np.isfinite(x)).sum())} logits are not finite")
    half = np.clip(x, -_F16_MAX, _F16_MAX).astype("<f2")
    if not compress:
        return f"{_F16}:{len(x)}:{base64.b64encode(half.tobytes()).decode('ascii')}"
    planes = half.view("u1").reshape(-1, 2).T.tobytes()  # low bytes, then high bytes
    packed = zlib.compress(planes, 9)
    return f"{_F16Z}:{len(x)}:{base64.b64encode(packed).decode('ascii')}"


def decode_logits(text: str) -> np.ndarray:
    """The logits `encode_logits` stored, as float32 of shape (n,).

    Raises:
        ValueError: not a string `encode_logits` wrote.
    """
    kind, n, payload = _split(text, (_F16, _F16Z))
    raw = base64.b64decode(payload, validate=True)
    if kind == _F16Z:
        planes = np.frombuffer(zlib.decompress(raw), dtype="u1")
        if planes.size != 2 * n:
            raise ValueError(f"encoded logits hold {planes.size // 2} values, header says {n}")
        raw = planes.reshape(2, n).T.tobytes()
    if len(raw) != 2 * n:
        raise ValueError(f"encoded logits hold {len(raw)} bytes, header says {n} values")
    return np.frombuffer(raw, dtype="<f2").astype("float32")


def encode_labels(labels: np.ndarray) -> str:
    """0/1 labels as ``"bits:<n>:<base64 of packed bits>"``.

    Raises:
        ValueError: not one-dimensional, or a value other than 0 and 1.
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    packed = np.packbits(y.astype("u1"))
    return f"{_BITS}:{len(y)}:{base64.b64encode(packed.tobytes()).decode('ascii')}"


def decode_labels(text: str) -> np.ndarray:
    """The labels `encode_labels` stored, as float32 0.0/1.0 of shape (n,).

    Raises:
        ValueError: not a string `encode_labels` wrote.
    """
    _kind, n, payload = _split(text, (_BITS,))
    bits = np.unpackbits(np.frombuffer(base64.b64decode(payload, validate=True), dtype="u1"))
    if bits.size < n or bits.size - n >= 8:
        raise ValueError(f"encoded labels hold {bits.size} bits, header says {n}")
    return bits[:n].astype("float32")


def _split(text: str, kinds: tuple[str, ...]) -> tuple[str, int, str]:
    parts = text.split(":", 2) if isinstance(text, str) else []
    if len(parts) != 3 or parts[0] not in kinds or not parts[1].isdigit():
        shown = text[:20] if isinstance(text, str) else type(text).__name__
        raise ValueError(f"not an encoded array of kind {'/'.join(kinds)}: {shown!r}")
    return parts[0], int(parts[1]), parts[2]
