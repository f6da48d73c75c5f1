"""Spec YAML read strictly: nothing ambiguous, nothing unbounded.

PyYAML reads YAML 1.1, whose readings surprise: `010` is 8, `1:30` is 90, `on` and `no` are
booleans, `1e-4` is a string, and a key given twice silently keeps its last value. A spec is
read here instead, one rule per surprise:

- a key given twice is an error naming both lines;
- `010` (a leading zero: octal in YAML 1.1, ten in YAML 1.2) and `1:30` (base 60) are errors
  that say how to write the number or the text;
- `yes`, `no`, `on`, `off` are text, as in YAML 1.2: a boolean field reads them as booleans, a
  text field keeps them, a number field refuses them; `true` and `false` are booleans;
- `1e-4` is a number, as in YAML 1.2;
- dates stay text until the spec's date fields parse them, so that `2015-02-30` is refused
  naming its field;
- merge keys (`<<`) and tags other than YAML's own are refused;
- the file is a regular file of at most `MAX_BYTES`, nested at most `MAX_DEPTH` deep, and holds
  at most `MAX_VALUES` values once its aliases are expanded (an alias bomb fails at once).

Every message names the file (or the option), the field, its line and the value, cut short
(`finscale.spec.base.shorten`).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from finscale.errors import SpecError
from finscale.spec.base import shorten

MAX_BYTES = 64 * 1024  # a spec is a few KB
MAX_DEPTH = 32  # a spec nests 4 deep
MAX_VALUES = 100_000  # values once aliases are expanded

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp"))


# libyaml's parser when PyYAML has it (ten times faster), else PyYAML's own.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Resolver(_Base):  # type: ignore[valid-type,misc]
    """YAML 1.1's resolver, with YAML 1.2's booleans and floats and no dates."""


def _strip_resolvers(tags: set[str]) -> None:
    table = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in tags]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }
    _Resolver.yaml_implicit_resolvers = table


_strip_resolvers({f"{_TAG}bool", f"{_TAG}timestamp"})
_Resolver.add_implicit_resolver(
    f"{_TAG}bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Resolver.add_implicit_resolver(  # 1e-4, 3E5: floats without a dot, which YAML 1.1 reads as text
    f"{_TAG}float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

_CONSTRUCT = SafeConstructor()
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]+$")


def read_spec_text(path: Path) -> str:
    """The text of a spec file, which must be a regular file of at most `MAX_BYTES`.

    The file is opened without blocking and checked before it is read: a FIFO, a device
    (`/dev/zero`, `/dev/urandom`) or a folder is refused at once.

    Raises:
        SpecError: the file is missing, not a regular file, too large, or not UTF-8 text.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a folder, not a spec file") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read the spec: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise SpecError(f"{path}: is a folder, not a spec file")
        raise SpecError(f"{path}: not a regular file ({_kind(mode)}); a spec is a file")
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise SpecError(
            f"{path}: larger than {MAX_BYTES // 1024} KiB; a spec file is a few KB of YAML"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file") from None


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a file")


def parse_yaml(text: str, where: str, *, field: str = "") -> Any:
    """The value a YAML text holds, read by the rules of this module.

    Args:
        text: the YAML.
        where: names the text in messages (the file, or `--set 'FIELD=VALUE'`).
        field: the field the text is the value of (`--set`'s), named in messages.

    Raises:
        SpecError: the text is not YAML, or breaks a rule; names `where`, the field, its line
            and the value.
    """
    try:
        _check_depth(text, where)
        node = yaml.compose(text, Loader=_Resolver)  # aliases stay shared: nothing expands yet
    except yaml.YAMLError as e:
        text = str(e).replace('in "<unicode string>", ', "")
        raise SpecError(f"{where}: not valid YAML: {shorten(text, 500, quote=False)}") from None
    return None if node is None else _Builder(where).build(node, field, 0)


def _check_depth(text: str, where: str) -> None:
    """Refuse nesting deeper than `MAX_DEPTH` before building anything (PyYAML's composer
    recurses once per level; its parser, read here event by event, does not)."""
    depth = 0
    for event in yaml.parse(text, Loader=_Resolver):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise SpecError(
                    f"{where}: line {line}: nested deeper than {MAX_DEPTH} levels; a spec "
                    "nests a few"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _yaml_1_1(node: ScalarNode) -> str:
    """What YAML 1.1 reads a number as, for a message: cut short, or `?` when too long to
    convert."""
    construct = (
        _CONSTRUCT.construct_yaml_float if ":" in node.value else _CONSTRUCT.construct_yaml_int
    )
    try:
        value = construct(node)
        text = f"{value:g}" if isinstance(value, float) else str(value)
    except (ValueError, OverflowError):
        return "?"
    return shorten(text, quote=False)


def _shown(tag: str) -> str:
    return shorten(tag.replace(_TAG, "!!"), quote=False)


class _Builder:
    """Python values from composed nodes, counting what aliases expand to."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.values = 0

    def fail(self, node: Node, field: str, problem: str) -> SpecError:
        line = node.start_mark.line + 1 if node.start_mark else "?"
        field = shorten(field, quote=False) if field else "(top)"
        return SpecError(f"{self.where}: {field} (line {line}): {problem}")

    def build(self, node: Node, field: str, depth: int) -> Any:
        """The value of `node` (at `field`, `depth` levels down), aliases expanded."""
        self.values += 1
        if self.values > MAX_VALUES:
            raise self.fail(
                node,
                field,
                f"more than {MAX_VALUES:,} values once its aliases are expanded (an alias "
                "bomb?); write the values out",
            )
        if depth > MAX_DEPTH:  # an alias that holds itself
            raise self.fail(node, field, f"nested deeper than {MAX_DEPTH} levels through aliases")
        if isinstance(node, ScalarNode):
            return self.scalar(node, field)
        if isinstance(node, SequenceNode) and node.tag == f"{_TAG}seq":
            return [self.build(n, f"{field}.{i}", depth + 1) for i, n in enumerate(node.value)]
        if isinstance(node, MappingNode) and node.tag == f"{_TAG}map":
            return self.mapping(node, field, depth)
        raise self.fail(node, field, f"the tag {_shown(node.tag)} is not accepted in a spec")

    def mapping(self, node: MappingNode, field: str, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == f"{_TAG}merge":
                raise self.fail(
                    key_node, field, "merge keys (<<) are not accepted; write the fields out"
                )
            if not isinstance(key_node, ScalarNode):
                raise self.fail(key_node, field, "a key must be a plain value")
            key = self.scalar(key_node, field)
            path = f"{field}.{key}" if field else str(key)
            line = key_node.start_mark.line + 1
            if key in lines:
                raise self.fail(
                    key_node, path, f"given twice (first on line {lines[key]}); keep one"
                )
            lines[key] = line
            result[key] = self.build(value_node, path, depth + 1)
        return result

    def scalar(self, node: ScalarNode, field: str) -> Any:
        tag, text = node.tag, node.value
        if tag not in _SCALAR_TAGS:
            raise self.fail(node, field, f"the tag {_shown(tag)} is not accepted in a spec")
        quoted = shorten(text)
        if tag in (f"{_TAG}str", f"{_TAG}timestamp"):
            return text
        if tag in (f"{_TAG}int", f"{_TAG}float") and ":" in text:
            raise self.fail(
                node,
                field,
                f"{quoted} is a base-60 number in YAML 1.1 "
                f"({_yaml_1_1(node)}); quote it if it is text",
            )
        if tag == f"{_TAG}int" and _LEADING_ZERO.match(text):
            raise self.fail(
                node,
                field,
                f"{quoted} has a leading zero: octal in YAML 1.1 "
                f"({_yaml_1_1(node)}), decimal in YAML 1.2; write the "
                "number without it, or quote it if it is text",
            )
        construct = {
            f"{_TAG}int": _CONSTRUCT.construct_yaml_int,
            f"{_TAG}float": _CONSTRUCT.construct_yaml_float,
            f"{_TAG}bool": _CONSTRUCT.construct_yaml_bool,
            f"{_TAG}null": _CONSTRUCT.construct_yaml_null,
        }[tag]
        try:
            return construct(node)
        except (ValueError, KeyError, yaml.YAMLError):
            problem = f"{quoted} is not a valid {tag.removeprefix(_TAG)}"
            raise self.fail(node, field, problem) from None
