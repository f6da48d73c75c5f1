"""Binary labels: will the price reach `threshold` above today's close within `horizon` days?"""

from __future__ import annotations

from typing import Literal

import numpy as np

Target = Literal["close", "high"]


def make_labels(
    close: np.ndarray,
    high: np.ndarray | None,
    *,
    horizon: int,
    threshold: float,
    target: Target = "close",
) -> np.ndarray:
    """Label of each day t that has `horizon` days after it.

    `label[t] = 1` when `max(price[t+1 .. t+horizon]) >= close[t] * (1 + threshold)`, where
    `price` is the close (`target="close"`) or the day's high (`target="high"`: the level was
    touched during the day, which is what a limit order sees).

    Args:
        close: daily closes, shape (T,).
        high: daily highs, shape (T,); required for `target="high"`.
        horizon: days ahead, at least 1.
        threshold: the rise as a fraction (0.01 = 1 %); 0 asks for any close at or above today's.
        target: which future price must reach the level.

    Returns:
        float32 array of shape (T - horizon,) holding 0.0 and 1.0.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 day, got {horizon}")
    if target == "high":
        if high is None:
            raise ValueError("target 'high' needs the High column")
        future = np.asarray(high, dtype="float64")
    elif target == "close":
        future = np.asarray(close, dtype="float64")
    else:
        raise ValueError(f"target must be 'close' or 'high', got {target!r}")
    close = np.asarray(close, dtype="float64")
    n = len(close) - horizon
    if n <= 0:
        return np.zeros(0, dtype="float32")
    # future_max[t] = max(future[t+1 .. t+horizon]) for t in 0..T-horizon-1
    future_max = np.lib.stride_tricks.sliding_window_view(future[1:], horizon).max(axis=1)
    labels: np.ndarray = (future_max >= close[:n] * (1.0 + threshold)).astype("float32")
    return labels
