"""A count and its noun, in the number that count takes: `1 trial`, `3 trials`, `1 study`."""

from __future__ import annotations

_IRREGULAR = {"study": "studies", "has": "have", "its": "their", "is": "are"}


def counted(n: int, noun: str) -> str:
    """`counted(1, "trial")` → "1 trial"; `counted(3, "study")` → "3 studies"."""
    return f"{n} {noun if n == 1 else plural(noun)}"


def plural(word: str) -> str:
    return _IRREGULAR.get(word, f"{word}s")


def agreeing(n: int, word: str) -> str:
    """The word as `n` things take it: `agreeing(2, "has")` → "have"."""
    return word if n == 1 else plural(word)
