"""Names read from the storage (a study's, which anyone with write access to the database can
choose) made safe to use in a file name: no folder separators, no `..`, no control characters."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# A stem longer than this is cut (file systems allow 255 bytes per name).
_LIMIT = 100


def file_stem(name: str) -> str:
    """`name` as part of a file name in one folder: a DNS-1123 study name stays as it is; any
    other keeps its letters, digits, `-` and `_`, the rest becoming `_`, and gains 8 digits of
    its sha256 so that two names never share a file (`../../x` → `x-<digits>`)."""
    safe = _UNSAFE.sub("_", name).strip("_")
    if safe == name and 0 < len(name) <= _LIMIT:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe[:_LIMIT] or 'unnamed'}-{digest}"
