"""The identity of the code that trains: a digest of finscale's own source files.

A study stores the digest of the code that created it (`finscale.records.ATTR_CODE_SHA256`), and
a worker whose code has another refuses to join it (exit 2) unless the user allows it
(`--allow-code-change`, `FINSCALE_ALLOW_CODE_CHANGE=1`): trials trained by different code would
otherwise be compared as if one search had run them.

The digest covers every `.py` file of the package, by relative path and content, in sorted order:
a changed line, a new or a removed module changes it; compiled caches, data files, the
environment and the installed dependencies do not. Images compute it once at build time
(`python -m finscale.identity --bake` writes it to `BAKED` beside this module) and every process
reads that file; elsewhere it is computed at first use (a few milliseconds) and kept.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
BAKED = "_code_sha256"  # a file beside this module; never in a source tree (.gitignore)


def source_digest(package: Path = PACKAGE) -> str:
    """The sha256 of the package's `.py` files: each file's path relative to `package` and its
    bytes, in sorted path order."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py"), key=lambda p: p.relative_to(package).as_posix()):
        relative = path.relative_to(package).as_posix()
        content = path.read_bytes()
        digest.update(f"{relative}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


@functools.cache
def code_sha256() -> str:
    """This process's code identity: the baked digest when the package holds one (images),
    else `source_digest()`, computed once."""
    baked = PACKAGE / BAKED
    if baked.is_file():
        value = baked.read_text().strip()
        if len(value) == 64:
            return value
    return source_digest()


def short(digest: str | None) -> str:
    """The first 12 hex digits, as messages print a digest ("(none)" when not stored)."""
    return digest[:12] if digest else "(none)"


def bake(package: Path = PACKAGE) -> str:
    """Write the package's digest to `BAKED` (an image's build step) and return it."""
    value = source_digest(package)
    (package / BAKED).write_text(value + "\n")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m finscale.identity", description="Print (or bake) finscale's code digest."
    )
    parser.add_argument(
        "--bake", action="store_true", help=f"also write it to {BAKED} in the installed package"
    )
    args = parser.parse_args(argv)
    print(bake() if args.bake else code_sha256())


if __name__ == "__main__":
    main()
