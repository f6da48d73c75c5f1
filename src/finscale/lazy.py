"""Packages that export their names lazily: a table of name → defining module, and the module
`__getattr__` that imports the module at first use (so that importing a package is cheap)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """The `__getattr__` of `package`: `where` maps each public name to its module, relative to
    the package unless it starts with `finscale.`."""

    def getattr_(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = where[name]
        full = module if module.startswith("finscale.") else f"{package}.{module}"
        return getattr(importlib.import_module(full), name)

    return getattr_
