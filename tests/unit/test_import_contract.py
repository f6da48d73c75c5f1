"""The layering of the house, written down as an import contract and checked on the source.

Every import counts, at module level or inside a function (a lazy import is still a
dependency), so a layer cannot reach up by deferring the import."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass(frozen=True)
class Rule:
    """Modules under `layer` import none of `forbidden` (a name forbids its submodules too)."""

    layer: str
    forbidden: tuple[str, ...]
    why: str


ML_CORE = ("finscale.data", "finscale.model", "finscale.train")
UPPER = ("finscale.hpo", "finscale.k8s", "finscale.report", "finscale.cli", "finscale.spec")

CONTRACT = (
    *(
        Rule(layer, ("optuna", "kubernetes", *UPPER), "the ML core is a plain ML library")
        for layer in ML_CORE
    ),
    Rule("finscale.tiers", ("torch", "optuna", "kubernetes", *UPPER), "a table, read by all"),
    Rule(
        "finscale.records",
        ("torch", "kubernetes", *UPPER),
        "the storage contract: Optuna's records in, typed records out, for hpo and report alike",
    ),
    Rule(
        "finscale.spec",
        (
            "torch",
            "optuna",
            "finscale.hpo",
            "finscale.k8s",
            "finscale.report",
            "finscale.cli",
            "finscale.train",
        ),
        "specs validate without torch",
    ),
    Rule(
        "finscale.k8s",
        ("torch", "optuna", "finscale.hpo", "finscale.report", "finscale.cli", "finscale.train"),
        "rendering needs no ML library",
    ),
    Rule(
        "finscale.report",
        ("finscale.hpo", "finscale.k8s", "finscale.cli"),
        "report reads the storage through records, not hpo's internals",
    ),
    Rule("finscale.hpo", ("finscale.report", "finscale.k8s", "finscale.cli"), "no import up"),
    Rule(
        "finscale.plan",
        ("torch", "finscale.train", "finscale.k8s", "finscale.cli"),
        "a plan is made before anything trains, and without torch",
    ),
)


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, src: Path = SRC) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path, src).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from finscale import hpo` imports the package finscale.hpo
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violations(rule: Rule, src: Path = SRC) -> list[str]:
    out = []
    for path in sorted(src.rglob("*.py")):
        if not _within(_module_name(path, src), rule.layer):
            continue
        for line, module in _imports(path, src):
            for banned in rule.forbidden:
                if _within(module, banned) and not _within(banned, rule.layer):
                    out.append(f"{path.relative_to(src)}:{line} imports {module}")
    return sorted(set(out))


@pytest.mark.parametrize("rule", CONTRACT, ids=lambda rule: rule.layer)
def test_layer_imports_only_what_the_contract_allows(rule: Rule) -> None:
    assert _violations(rule) == [], f"{rule.layer}: {rule.why}"


def test_every_layer_in_the_contract_exists() -> None:
    # a renamed package would make its rule check nothing
    modules = {_module_name(path) for path in SRC.rglob("*.py")}
    for rule in CONTRACT:
        assert any(_within(module, rule.layer) for module in modules), rule.layer


def test_the_contract_catches_a_lazy_import_up(tmp_path: Path) -> None:
    probe = tmp_path / "finscale" / "train" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("def f():\n    from ..hpo import study\n    import optuna\n")
    found = _violations(CONTRACT[2], tmp_path)
    assert any("probe.py:2 imports finscale.hpo" in v for v in found)
    assert any("probe.py:3 imports optuna" in v for v in found)
