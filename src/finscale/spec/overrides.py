"""Changes to a spec from the command line: `FIELD=VALUE` assignments (`--set`)."""

from __future__ import annotations

from typing import Any

import yaml

from finscale.errors import SpecError


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`["split.val_start=2015-01-01", "model.revin=true"]` → nested changes to a spec; each
    value is read as YAML (numbers, booleans, dates, lists).

    Raises:
        SpecError: an assignment without `=` or with an empty field path.
    """
    changes: dict[str, Any] = {}
    for text in assignments:
        path, sep, raw = text.partition("=")
        keys = [k.strip() for k in path.split(".")]
        if not sep or not all(keys):
            raise SpecError(
                f"--set {text!r}: expected FIELD=VALUE, e.g. split.val_start=2015-01-01"
            )
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise SpecError(f"--set {text!r}: the value is not valid YAML: {e}") from None
        node = changes
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise SpecError(f"--set {text!r}: {key} is set both as a value and as a section")
        node[keys[-1]] = value
    return changes
