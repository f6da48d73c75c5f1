"""Window-level predictions stored with each trial: small, JSON-safe, and precise enough that a
BCE computed from them is the BCE the trial reported."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import lfilter

from finscale.predictions import (
    FLOAT16_RELATIVE_ERROR,
    decode_labels,
    decode_logits,
    encode_labels,
    encode_logits,
)
from finscale.report.stats import bce_per_window


def model_like_logits(n: int, *, seed: int = 0) -> np.ndarray:
    """Logits that drift slowly around a 15 % base rate, as a model's do on sliding windows."""
    rng = np.random.default_rng(seed)
    drift = lfilter([1.0], [1.0, -0.97], rng.normal(0, 0.25, n))
    return np.log(0.15 / 0.85) + drift


@pytest.mark.parametrize("compress", [True, False])
def test_logits_round_trip_within_float16_precision_through_json(compress: bool) -> None:
    logits = np.concatenate([model_like_logits(3000), [0.0, -1e-6, 12.3, -45.0, 7e4, -7e4]])
    text = encode_logits(logits, compress=compress)
    assert text.isascii() and json.loads(json.dumps({"v": text}))["v"] == text
    decoded = decode_logits(text)
    assert decoded.dtype == np.float32 and decoded.shape == logits.shape
    inside = np.abs(logits) < 6e4
    error = np.abs(decoded[inside] - logits[inside])
    assert (error <= FLOAT16_RELATIVE_ERROR * np.abs(logits[inside]) + 2**-25).all()
    assert decoded[~inside] == pytest.approx(np.sign(logits[~inside]) * 60000, rel=1e-3)


@pytest.mark.parametrize("n", [660, 3000])
def test_bce_from_stored_logits_is_the_reported_bce(n: int) -> None:
    logits = model_like_logits(n, seed=n)
    rng = np.random.default_rng(n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(float)
    exact = bce_per_window(logits.astype("float32"), labels)
    stored = bce_per_window(decode_logits(encode_logits(logits)), labels)
    bound = 2**-11 * (exact.mean() + 0.28)  # the module's stated bound
    assert abs(stored.mean() - exact.mean()) <= bound < 1e-3
    assert abs(stored.mean() - exact.mean()) < 5e-5  # rounding errors partly cancel: ~1e-5
    assert (np.abs(stored - exact) <= 2**-11 * np.maximum(exact, 0.28) + 1e-7).all()


@pytest.mark.parametrize(
    ("n", "logits_at_most", "labels_at_most"), [(660, 1600, 121), (3000, 7000, 510)]
)
def test_a_trial_stores_a_few_kilobytes(n: int, logits_at_most: int, labels_at_most: int) -> None:
    logits = encode_logits(model_like_logits(n))
    labels = encode_labels(np.random.default_rng(0).random(n) < 0.15)
    assert len(logits) <= logits_at_most  # 1,489 and 6,426 measured
    assert len(encode_logits(model_like_logits(n), compress=False)) == len(f"f16:{n}:") + 4 * (
        -(-2 * n // 3)
    )
    assert len(labels) <= labels_at_most


def test_labels_round_trip_as_packed_bits() -> None:
    for n in (1, 7, 8, 9, 661):
        labels = (np.random.default_rng(n).random(n) < 0.3).astype("float32")
        decoded = decode_labels(encode_labels(labels))
        assert decoded.dtype == np.float32
        np.testing.assert_array_equal(decoded, labels)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: encode_logits(np.array([0.0, np.nan])), "not finite"),
        (lambda: encode_logits(np.zeros((2, 2))), "one-dimensional"),
        (lambda: encode_labels(np.array([0, 2])), "0 or 1"),
        (lambda: decode_logits("bits:3:AA=="), "not an encoded array of kind f16/f16z"),
        (lambda: decode_logits("f16:5:AAAA"), "hold 3 bytes, header says 5 values"),
        (lambda: decode_labels("bits:20:AA=="), "hold 8 bits, header says 20"),
    ],
    ids=["nan", "2-d", "label 2", "wrong kind", "short logits", "short labels"],
)
def test_bad_input_is_refused_with_the_reason(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
