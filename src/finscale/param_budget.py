"""Parameter budgets as people write them: `2M`, `20M`, `200M`, `2B`, `50K`."""

from __future__ import annotations

import re

_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMBG]?)\s*$", re.IGNORECASE)


def parse_budget(text: str | int) -> int:
    """A budget as a parameter count: `2M` → 2_000_000, `50k`, `2B`, `800000`.

    Raises:
        ValueError: not a positive number with an optional K, M or B suffix.
    """
    if isinstance(text, int):
        if text < 1:
            raise ValueError(f"budget must be positive, got {text}")
        return text
    match = _BUDGET.match(text)
    if not match:
        raise ValueError(f"budget {text!r}: expected a count like 2M, 20M, 50K or 800000")
    count = round(float(match.group(1)) * _SUFFIXES[match.group(2).upper()])
    if count < 1:
        raise ValueError(f"budget {text!r} must be positive")
    return count


def budget_label(count: int) -> str:
    """The shortest exact label of a count: 2_000_000 → `2M`, 50_000 → `50K`, 1_500 → `1500`."""
    for suffix, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if count % scale == 0:
            return f"{count // scale}{suffix}"
    return str(count)
