"""Parameter budgets as people write them: `2M`, `20M`, `200M`, `2B`, `50K`."""

from __future__ import annotations

import re

from finscale.defaults import MAX_BUDGET

_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMBG]?)\s*$", re.IGNORECASE)


def parse_budget(text: str | int) -> int:
    """A budget as a parameter count: `2M` → 2_000_000, `50k`, `2B`, `800000`.

    Raises:
        ValueError: not a positive number with an optional K, M or B suffix, or above
            `MAX_BUDGET`.
    """
    if isinstance(text, int):
        if not 1 <= text <= MAX_BUDGET:
            raise ValueError(f"budget must be from 1 to {budget_label(MAX_BUDGET)}, got {text}")
        return text
    match = _BUDGET.match(text) if len(text) <= 100 else None
    if not match:
        shown = text if len(text) <= 40 else f"{text[:40]}…"
        raise ValueError(f"budget {shown!r}: expected a count like 2M, 20M, 50K or 800000")
    value = float(match.group(1)) * _SUFFIXES[match.group(2).upper()]
    if value > MAX_BUDGET:  # also an infinite one: a number of 400 digits
        shown = text if len(text) <= 40 else f"{text[:40]}…"
        raise ValueError(f"budget {shown!r} is above the most, {budget_label(MAX_BUDGET)}")
    count = round(value)
    if count < 1:
        raise ValueError(f"budget {text!r} must be positive")
    return count


def budget_label(count: int) -> str:
    """The shortest exact label of a count: 2_000_000 → `2M`, 50_000 → `50K`, 1_500 → `1500`."""
    for suffix, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if count % scale == 0:
            return f"{count // scale}{suffix}"
    return str(count)


def short_count(n: float) -> str:
    """A parameter count in two significant digits: 5769 → "5.8K", 26209 → "26K"."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size * 0.9995:
            value = n / size
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return f"{n:.0f}"
