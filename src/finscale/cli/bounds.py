"""Bounds of the numeric options: a callback per option that refuses, before the command runs,
a value that is not finite or lies outside its range, naming the option and the value (exit 2).

Click's own ranges let NaN through (every comparison with NaN is false) and say nothing of the
value given; these do both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import typer

N = TypeVar("N", int, float)


def _range_text(low: float | None, high: float | None, *, above: bool, below: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"above {low:g}" if above else f"at least {low:g}")
    if high is not None:
        parts.append(f"below {high:g}" if below else f"at most {high:g}")
    return " and ".join(parts)


def bounded(
    low: float | None = None,
    high: float | None = None,
    *,
    above: bool = False,
    below: bool = False,
) -> Callable[[N | None], N | None]:
    """A callback that passes a finite value within [low, high] (open ends with `above` /
    `below`) and refuses any other, saying what it got and what it expected."""

    def check(value: N | None) -> N | None:
        if value is None:
            return value
        wanted = _range_text(low, high, above=above, below=below)
        if isinstance(value, float) and not math.isfinite(value):
            raise typer.BadParameter(f"{value!r} is not a finite number; expected one {wanted}")
        too_low = low is not None and (value <= low if above else value < low)
        too_high = high is not None and (value >= high if below else value > high)
        if too_low or too_high:
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            raise typer.BadParameter(f"{shown} is out of range; expected a number {wanted}")
        return value

    return check
