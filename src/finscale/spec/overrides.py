"""Changes to a spec from the command line: `FIELD=VALUE` assignments (`--set`)."""

from __future__ import annotations

from typing import Any

from finscale.errors import SpecError
from finscale.spec.base import shorten
from finscale.spec.strict_yaml import parse_yaml


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`["split.val_start=2015-01-01", "model.revin=true"]` → nested changes to a spec; each
    value is read as YAML (numbers, booleans, dates, lists), as strictly as a spec file.

    Raises:
        SpecError: an assignment without `=` or with an empty field path.
    """
    changes: dict[str, Any] = {}
    for text in assignments:
        path, sep, raw = text.partition("=")
        keys = [k.strip() for k in path.split(".")]
        if not sep or not all(keys):
            raise SpecError(
                f"--set {shorten(text)}: expected FIELD=VALUE, e.g. split.val_start=2015-01-01"
            )
        value = parse_yaml(raw, f"--set {shorten(text)}", field=".".join(keys))
        node = changes
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise SpecError(
                    f"--set {shorten(text)}: {key} is set both as a value and as a section"
                )
        node[keys[-1]] = value
    return changes


def train_changes(
    assignments: list[str],
    *,
    dataset: str | None = None,
    horizon: int | None = None,
    epochs: int | None = None,
) -> dict[str, Any]:
    """`finscale train`'s changes to its spec: the `--set` assignments, then its shorthands
    `--dataset`, `--horizon` and `--epochs`, which win over an assignment of the same field.

    Raises:
        SpecError: see `parse_assignments`.
    """
    changes = parse_assignments(assignments)
    if dataset is not None:
        changes.setdefault("data", {})["dataset"] = dataset
    if horizon is not None:
        changes["horizon"] = horizon
    if epochs is not None:
        changes.setdefault("training", {})["epochs"] = epochs
    return changes
