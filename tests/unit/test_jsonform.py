"""Typed results in their JSON form (`finscale.report.jsonform`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from finscale.report.jsonform import fields_of, pair, to_json


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Fit:
    slope: float
    interval: Interval | None
    names: tuple[str, ...]


FORMS = {Fit: {"per_decade": "slope", "ci95": pair("interval"), "low": "interval.low"}}


def test_a_form_renames_picks_and_nests() -> None:
    fit = Fit(slope=-0.5, interval=Interval(-0.9, math.nan), names=("a",))
    assert to_json(fit, FORMS) == {"per_decade": -0.5, "ci95": [-0.9, None], "low": -0.9}
    # a missing parent gives null, not an interval of nulls
    assert to_json(Fit(1.0, None, ()), FORMS) == {"per_decade": 1.0, "ci95": None, "low": None}


def test_without_a_form_every_field_in_order() -> None:
    fit = Fit(slope=math.inf, interval=Interval(1, 2), names=("a", "b"))
    assert to_json([fit], {}) == [
        {"slope": None, "interval": {"low": 1, "high": 2}, "names": ["a", "b"]}
    ]
    form = fields_of(Interval, width=lambda i: i.high - i.low)
    assert to_json(Interval(1.0, 3.0), {Interval: form}) == {"low": 1.0, "high": 3.0, "width": 2.0}


def test_a_value_without_a_json_form_is_refused() -> None:
    with pytest.raises(TypeError, match="no JSON form for set"):
        to_json({1, 2}, {})
