"""Typed results in their JSON form: dataclasses become objects, floats that JSON cannot hold
(NaN, infinities) become null, tuples become lists.

A class's JSON form is, by default, its fields in order; a `Form` says otherwise where the JSON
names, picks or nests differently (e.g. `"slope_per_decade": "scaling.slope.per_decade"`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

# A JSON field's source: an attribute path (dots descend, a None on the way gives None) or a
# function of the object.
Source = str | Callable[[Any], Any]
Form = Mapping[str, Source]
Forms = Mapping[type, Form]


def attr(obj: Any, path: str) -> Any:
    """`obj.a.b.c` for "a.b.c"; None as soon as a step is None."""
    for name in path.split("."):
        if obj is None:
            return None
        obj = getattr(obj, name)
    return obj


def pair(parent: str, low: str = "low", high: str = "high") -> Callable[[Any], Any]:
    """A two-element list (an interval) of the parent's `low` and `high`; None without parent."""

    def get(obj: Any) -> Any:
        found = attr(obj, parent) if parent else obj
        return None if found is None else [getattr(found, low), getattr(found, high)]

    return get


def fields_of(cls: type, **extra: Source) -> dict[str, Source]:
    """The default form of a dataclass (its fields in order), with `extra` fields after."""
    return {**{f.name: f.name for f in dataclasses.fields(cls)}, **extra}


def to_json(value: Any, forms: Forms) -> Any:
    """`value` in its JSON form, dataclasses by their form in `forms` (default: every field).

    Raises:
        TypeError: a value JSON has no form for.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_json(v, forms) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v, forms) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        form = forms.get(type(value)) or fields_of(type(value))
        return {
            name: to_json(attr(value, src) if isinstance(src, str) else src(value), forms)
            for name, src in form.items()
        }
    raise TypeError(f"no JSON form for {type(value).__name__}: {value!r}")
