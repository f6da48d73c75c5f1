"""The base of every spec model: unknown keys forbidden, frozen, numbers that stay numbers;
and validation errors described one line per problem."""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

# Kubernetes object names (Job, ConfigMap) and label values: DNS-1123, at most 63 characters.
NAME_LIMIT = 63
# Values quoted in messages are cut to this many characters (a megabyte of YAML is no message).
QUOTE_LIMIT = 80
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def shorten(value: Any, limit: int = QUOTE_LIMIT, *, quote: bool = True) -> str:
    """`value` as a message quotes it (its repr, or its text with `quote=False`), cut to
    `limit` characters with the length of the whole."""
    text = repr(value) if quote else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def _kinds(annotation: Any) -> set[Any]:
    """The leaf types a field's annotation accepts (`int | None` → {int, NoneType})."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return {type(v) for v in typing.get_args(annotation)}
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _kinds(args[0])
    if args:
        return set().union(*(_kinds(a) for a in args))
    return {annotation}


def _check_leaves(name: str, kinds: set[Any], value: Any) -> None:
    plain = {k for k in kinds if not (isinstance(k, type) and issubclass(k, BaseModel))}
    numbers_only = bool(plain) and plain <= {int, float}
    wanted = "an integer" if plain == {int} else "a number"
    for leaf in value if isinstance(value, list) else [value]:
        if isinstance(leaf, bool) and bool not in kinds:
            raise ValueError(f"{name}: expected {wanted}, got the boolean {leaf}")
        if isinstance(leaf, str) and numbers_only:
            raise ValueError(f"{name}: expected {wanted}, got the string {shorten(leaf)}")
        if isinstance(leaf, float) and plain == {int}:
            raise ValueError(f"{name}: expected an integer, got {leaf}")


class SpecModel(BaseModel):
    # Numbers are finite: `.inf` and `.nan` are no bound, rate or delta.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_coercion(cls, data: Any) -> Any:
        """Numbers are numbers: `true` is no count, `"3"` and `3.5` are no integer (pydantic
        would read `n_trials: true` as 1)."""
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            if field is not None:
                _check_leaves(name, _kinds(field.annotation) - {type(None)}, value)
        return data


_INTERNAL_LOC = ("tagged-union[", "function-after[", "function-before[", "function-wrap[")
_SCALAR_BRANCHES = frozenset({"float", "int", "str", "bool"})
_SCALAR_MISMATCH = frozenset({"float_type", "float_parsing", "int_type", "int_parsing"})


def describe_errors(error: ValidationError, where: str) -> str:
    """One line per problem: the field path, what is wrong, and the value found.

    A field that takes a number or a distribution fails both ways when given a bad
    distribution; only the distribution's complaint is kept, and pydantic's internal path
    segments are dropped (the distribution's `type` stays: it says which one).
    """
    lines = []
    problems = error.errors()
    for problem in problems:
        value = problem.get("input")
        if problem["type"] in _SCALAR_MISMATCH and isinstance(value, dict) and len(problems) > 1:
            continue
        parts = [str(p) for p in problem["loc"]]
        parts = [p for p in parts if not p.startswith(_INTERNAL_LOC) and p not in _SCALAR_BRANCHES]
        shown = (
            ""
            if problem["type"] == "missing" or isinstance(value, dict)
            else f" (got {shorten(value)})"
        )
        message = shorten(problem["msg"], 300, quote=False)
        lines.append(f"{where}: {'.'.join(parts) or '(top)'}: {message}{shown}")
    return "\n".join(lines)
