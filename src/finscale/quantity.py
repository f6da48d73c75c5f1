"""Kubernetes resource quantities (`500m`, `2`, `16Gi`, `1.5e3`), parsed the way the API server
parses them, for the spec's checks and the renderer alike.

The grammar is Kubernetes' (`k8s.io/apimachinery/pkg/api/resource`): a signed decimal number,
then a binary suffix (Ki … Ei), a decimal SI suffix (n, u, m, k, M, G, T, P, E) or a decimal
exponent (e3, E-2). A test checks this against the official client's `parse_quantity`; this
module exists so that the spec does not import the Kubernetes client.
"""

from __future__ import annotations

import re
from decimal import Decimal

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity: `2k` → 2000, `500m` → 0.5, `1Gi` → 1073741824.

    Raises:
        ValueError: not a Kubernetes quantity (the message says what one looks like).
    """
    match = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a Kubernetes quantity (a number with an optional suffix: "
            "500m, 2, 4k, 16Gi, 1e3)"
        )
    number = Decimal(match.group("number"))
    suffix = match.group("suffix") or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * Decimal(10) ** int(suffix[1:])
