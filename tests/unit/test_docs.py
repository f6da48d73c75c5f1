"""The README and docs/ cannot drift from the code.

- Every `finscale …` command they show (in a code block, inline code, or a spec's header comment)
  is parsed by the real command-line interface: the command exists, every option exists, every
  value has its type, no argument is missing or extra. Parsing stops short of running it.
- Every command line of a `bash` block is checkable (`finscale`, `make`, `python`), or needs a
  cluster or a registry and is skipped by its first word (`SKIPPED`).
- The README's two command blocks run for real in a sandbox; the first is exactly what `make
  run` runs (the slow test).
- The settings table lists exactly the settings; the spec tables every spec field and training
  parameter with its default; relative links and their anchors resolve.

Checking `finscale CMD … --help` instead would not do: click honours `--help` before it looks at
values and extra arguments, so `finscale grid 2M 3M --help` passes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from tests.conftest import REPO

README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]
SPECS = sorted((REPO / "configs" / "experiments").glob("*.yaml"))

# First words of documented commands that need a cluster, a registry or the network: shown, never
# run or checked here (their manifests are checked by the Kubernetes tests).
SKIPPED = frozenset(
    {"docker", "kubectl", "skaffold", "openssl", "pip", "psql", "pg_dump", "pg_restore"}
)
# Placeholders of synopses, as a user would fill them in.
PLACEHOLDERS = {
    "SPEC": "configs/experiments/validation.yaml",
    "STUDY": "validation-50k-h1",
    "NAME": "validation-50k-h1",
    "COMMAND": "status",
    "BUDGET": "2M",
    "ID": "d64-l1-h4-f2",
    "N": "1",
    "M": "3",
    "I": "0",
    "S": "1",
    "DIR": "runs/report",
    "FILE": "bars.csv",
    "DIGEST": "9548d0f63052",
    "SECONDS": "60",
    "FIELD=VALUE": "training.learning_rate=3e-4",
}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SEPARATORS = frozenset({"&&", "||", ";", "|", "&"})


@dataclass(frozen=True)
class Shown:
    """One command line as a page shows it."""

    where: str  # file:line
    words: tuple[str, ...]
    inline: bool = False  # inline code: a mention or a synopsis ([optional] parts, a|b choices)

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.words)}"


# --- reading the pages -------------------------------------------------------------------------


def _blocks(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """Fenced code blocks: (language, line number of the first line, lines)."""
    lang, start, lines = None, 0, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and lang is None:
            lang, start, lines = fence.group(1), number + 1, []
        elif fence:
            yield lang, start, lines
            lang = None
        elif lang is not None:
            lines.append(line)


def _logical_lines(start: int, lines: list[str]) -> Iterator[tuple[int, str]]:
    """Lines with backslash continuations joined, and the number of their first line."""
    pending, first = "", start
    for offset, line in enumerate(lines):
        if not pending:
            first = start + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield first, pending + line
        pending = ""
    if pending:
        yield first, pending


def _commands(line: str) -> Iterator[list[str]]:
    """The simple commands of a shell line, environment assignments dropped."""
    line = re.sub(r"\$\([^)]*\)", "SUBSTITUTED", line)  # $(…) is a value, not a command here
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    for token in [*lexer, ";"]:
        if token in _SEPARATORS:
            while words and _ASSIGNMENT.match(words[0]):
                words.pop(0)
            if words:
                yield words
            words = []
        else:
            words.append(token)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def shell_lines(paths: list[Path]) -> list[Shown]:
    """Every command of every `bash` block."""
    found = []
    for path in paths:
        for lang, start, lines in _blocks(path):
            if lang not in ("bash", "sh", "shell"):
                continue
            for number, line in _logical_lines(start, lines):
                for words in _commands(line):
                    found.append(Shown(f"{_rel(path)}:{number}", tuple(words)))
    return found


def finscale_lines(paths: list[Path]) -> list[Shown]:
    """Every `finscale …` command of the pages: bash blocks, other blocks' lines that start with
    it (not YAML: a manifest's `command:` is checked by the Kubernetes tests), inline code."""
    found = [s for s in shell_lines(paths) if s.words[0] == "finscale"]
    for path in paths:
        text = path.read_text()
        fenced: set[int] = set()
        for lang, start, lines in _blocks(path):
            fenced.update(range(start - 1, start + len(lines) + 1))
            if lang in ("bash", "sh", "shell", "yaml", "json"):
                continue
            for offset, line in enumerate(lines):
                words = line.removeprefix("$ ").split()
                if words[:1] == ["finscale"]:
                    found.append(Shown(f"{_rel(path)}:{start + offset}", tuple(words)))
        for number, line in enumerate(text.splitlines(), 1):
            if number in fenced:
                continue
            for span in re.findall(r"`(finscale [^`]+)`", line):
                found.append(Shown(f"{_rel(path)}:{number}", tuple(span.split()), inline=True))
    for spec in SPECS:  # the usage a spec's header comment shows
        for number, line in enumerate(spec.read_text().splitlines(), 1):
            text = line.lstrip("#")
            if line.startswith("#") and text.split()[:1] == ["finscale"]:
                words = shlex.split(text, comments=True)
                found.append(Shown(f"{_rel(spec)}:{number}", tuple(words)))
    return found


# --- checking a finscale command ---------------------------------------------------------------


def _fill(shown: Shown) -> list[str]:
    """The arguments a user would type: placeholders filled in; for a synopsis, optional parts
    taken and the first of `a|b|c`."""
    args = []
    for word in shown.words[1:]:
        if shown.inline:
            word = word.replace("[", "").replace("]", "")
            if word in ("…", "...", "|", ""):
                continue
            if "|" in word:
                word = word.split("|")[0]
        args.append(PLACEHOLDERS.get(word, word))
    return args


def parse_cli(args: list[str]) -> Any:
    """Parse `finscale ARGS` as the CLI would, down to the command's own parameters, without
    running anything; the command's context.

    Raises:
        typer.TyperException: an unknown command or option, a bad value, a missing or an extra
            argument (click's usage errors, which typer carries).
    """
    from finscale.cli import app

    command: Any = typer.main.get_command(app)
    name, parent, rest = "finscale", None, list(args)
    while hasattr(command, "list_commands"):  # a group: its options, then a command
        at = next((i for i, a in enumerate(rest) if not a.startswith("-")), len(rest))
        ctx = command.make_context(name, rest[: at + 1], parent=parent)
        sub = command.get_command(ctx, rest[at]) if at < len(rest) else None
        if sub is None:
            raise typer.BadParameter(f"no command {' '.join(rest[at : at + 1])!r} in {name}")
        command, name, parent, rest = sub, rest[at], ctx, rest[at + 1 :]
    return command.make_context(name, rest, parent=parent)


def _message(error: Exception) -> str:
    format_message = getattr(error, "format_message", None)
    return format_message() if callable(format_message) else str(error)


def _id(shown: Shown) -> str:
    return str(shown)[:120]


FINSCALE = finscale_lines(DOCS)


def test_the_pages_show_the_commands_a_user_needs() -> None:
    commands = {s.words[1] for s in FINSCALE if len(s.words) > 1}
    assert {"data", "grid", "train", "run", "worker", "evaluate", "status", "report"} <= commands
    assert {"render"} <= commands


@pytest.mark.parametrize("shown", FINSCALE, ids=_id)
def test_every_documented_finscale_command_parses(shown: Shown) -> None:
    args = _fill(shown)
    try:
        parse_cli(args)
    except typer.TyperException as e:
        # Prose names a command (`finscale run`) without its arguments; what it shows must exist.
        missing_argument = type(e).__name__ == "MissingParameter" and isinstance(
            getattr(e, "param", None), typer.core.TyperArgument
        )
        if not (shown.inline and missing_argument):
            pytest.fail(f"{shown}\n  finscale {shlex.join(args)}: {_message(e)}")
    for arg in args:  # the specs a page names exist
        if re.fullmatch(r"configs/\S+\.ya?ml", arg):
            assert (REPO / arg).is_file(), f"{shown}: no file {arg}"


def test_the_cli_check_catches_what_help_would_miss() -> None:
    for bad in (
        ["run", "configs/experiments/validation.yaml", "--bogus"],
        ["grid", "2M", "3M"],
        ["train", "--trial", "one"],
        ["worker"],
        ["data", "bogus"],
        ["bogus"],
        ["--bogus", "status"],
    ):
        with pytest.raises(typer.TyperException):
            parse_cli(bad)


# --- every bash line is checkable or skipped by name --------------------------------------------


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", text, re.MULTILINE))


def _check_python(shown: Shown) -> None:
    words = [w for w in shown.words[1:] if not w.startswith("[")]
    script = REPO / words[0]
    assert script.is_file(), f"{shown}: no script {words[0]}"
    source = script.read_text()
    for word in words[1:]:
        option = word.strip("[]").split("=")[0]
        if option.startswith("--"):
            assert f'"{option}"' in source, f"{shown}: {words[0]} has no option {option}"


SHELL = shell_lines(DOCS)


@pytest.mark.parametrize("shown", SHELL, ids=_id)
def test_every_documented_command_line_is_checkable(shown: Shown) -> None:
    first = shown.words[0]
    if first == "finscale":
        return  # test_every_documented_finscale_command_parses
    if first == "make":
        unknown = set(shown.words[1:]) - _make_targets()
        assert not unknown, f"{shown}: the Makefile has no target {sorted(unknown)}"
    elif first in ("python", "python3"):
        _check_python(shown)
    else:
        assert first in SKIPPED, (
            f"{shown}: {first!r} is neither checked nor skipped; make the command checkable "
            "(finscale, make, python) or add its first word to SKIPPED"
        )


# --- the README's commands run --------------------------------------------------------------------

_MARKER = "<!-- tests/unit/test_docs.py runs this block"


def readme_blocks() -> list[list[list[str]]]:
    """The bash blocks the README marks as run by this test, as commands."""
    lines = README.read_text().splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.startswith(_MARKER):
            assert lines[i + 1] == "```bash", f"README.md:{i + 1}: the marker must precede a block"
            end = lines.index("```", i + 2)
            blocks.append([shlex.split(c, comments=True) for c in lines[i + 2 : end]])
    return blocks


def make_run_recipe() -> list[list[str]]:
    """The commands of the Makefile's `run` target, as a user types them."""
    text = (REPO / "Makefile").read_text()
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert recipe, "the Makefile has no run target"
    return [
        shlex.split(line.strip().replace("$(BIN)/", "")) for line in recipe.group(1).splitlines()
    ]


def test_the_readme_shows_what_make_run_runs() -> None:
    first, second = readme_blocks()
    assert first == make_run_recipe()
    assert all(c[0] == "finscale" for c in first + second)


# Lines of the README's output that every run prints as they are (sizes, names and paths, no
# trained values, which depend on the machine).
STABLE_OUTPUT = (
    "Built in data",
    "│ GSPC.ohlcv.daily  │ 5031 │ 1999-01-04 │ 2018-12-31 │ 6       │ 3e16b913a49e │ new │",
    "│ VIX.close.daily   │ 1259 │ 2014-01-03 │ 2019-01-03 │ 2       │ 1dcaea4f4c0f │ new │",
    "│ GSPC.dataset.a25  │ 4832 │ 1999-10-18 │ 2018-12-31 │ 26      │ 9548d0f63052 │ new │",
    "│ GSPC.dataset.a25c │ 1198 │ 2014-03-31 │ 2018-12-31 │ 34      │ 9e9a0e8cb7b1 │ new │",
    "storage sqlite:///runs/finscale.db; 1 study",
    "validation-50k-h1: 2 workers, logs in runs/validation-50k-h1",
    "horizon 1: no fit (1 budget with results; a fit needs two)",
    "report of 1 study in runs/report: summary.md and 7 more files",
    "validation-50k-h1: 1 run (1 trained now)",
)
REPORT_FILES = {
    "summary.md", "trials.csv", "trials.json", "best.json", "analysis.json",
    "scaling-h1.png", "scaling-h1-test.png", "width-depth.png", "history-validation-50k-h1.png",
}  # fmt: skip


def _squeeze(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text)


def _sandbox_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSCALE_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    # The CPU, so that a retrained trial's value comes back exactly; idle workers look for
    # work every second rather than every five.
    env.update(FINSCALE_DEVICE="cpu", FINSCALE_POLL_INTERVAL_S="1")
    return env


@pytest.mark.slow
def test_the_readme_commands_run_as_shown(tmp_path: Path) -> None:
    # given an empty working directory with the specs, and finscale's default settings
    (tmp_path / "configs").symlink_to(REPO / "configs")
    env = _sandbox_env()
    outputs: list[str] = []
    # when every command of the README's two blocks runs there, in order
    for command in [c for block in readme_blocks() for c in block]:
        done = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{shlex.join(command)}:\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    build, run, report, status, evaluate, report_again, train = outputs
    shown = _squeeze(README.read_text())
    # then it prints what the README shows
    for line in STABLE_OUTPUT:
        assert _squeeze(line) in shown, f"README.md no longer shows {line!r}"
        assert _squeeze(line) in _squeeze("".join(outputs)), f"no command printed {line!r}"
    # written to a pipe, run prints a line per change, down to the study done, its workers gone
    assert "3/3 finished" in run and "workers 0/2 alive" in run
    assert re.search(r"validation-50k-h1 +│ 3/3 ", status)
    # the best trial of the run is the one evaluated (which trial that is depends on how the
    # two workers' reservations interleave, so it is read from the run's own output)
    best = re.findall(r"\(#(\d+)\)", run)  # the last: the study's final best
    assert best, run
    assert f"trial {best[-1]} seed 0: test bce" in evaluate
    assert re.search(r"^\S+ on GSPC\.dataset\.a25, horizon 1 \(trial 0 of validation-50k-h1\)$",
                     train, re.MULTILINE), train  # fmt: skip
    assert "report of 1 study in runs/report" in report_again
    assert train.rstrip().endswith(": the same"), train
    # and writes the report the README names, with the final evaluation on test
    out = tmp_path / "runs" / "report"
    assert {p.name for p in out.iterdir()} == REPORT_FILES
    assert "## Final evaluation on test" in (out / "summary.md").read_text()
    assert (tmp_path / "runs" / "finscale.db").is_file()
    assert build and report


# --- reference tables match the code ----------------------------------------------------------


def _rows(path: Path, heading: str | None = None) -> list[list[str]]:
    """The body rows of the Markdown tables of a page (after `heading`, up to the next `## `),
    each cell stripped."""
    text = path.read_text()
    if heading is not None:
        text = text[text.index(heading) :]
        text = text[: m.start()] if (m := re.search(r"^## ", text[3:], re.MULTILINE)) else text
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def _literal(cell: str) -> Any:
    """The value of a cell that is one backticked YAML literal; KeyError otherwise."""
    match = re.fullmatch(r"`([^`]+)`", cell)
    if not match:
        raise KeyError(cell)
    return yaml.safe_load(match.group(1))


def test_settings_page_lists_every_setting_with_its_default() -> None:
    from finscale.settings import ENV_PREFIX, Settings

    rows = {r[0].strip("`"): r[1] for r in _rows(REPO / "docs" / "settings.md", "## Settings")}
    documented = {k for k in rows if k.startswith(ENV_PREFIX)}
    assert documented == {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        if field.default is not None:
            value = _literal(rows[ENV_PREFIX + name.upper()])
            assert str(value) == str(field.default) or value == field.default, name


def test_exit_codes_page_names_every_error_code() -> None:
    from finscale import errors

    codes = {r[0].strip("`") for r in _rows(REPO / "docs" / "settings.md", "## Exit codes")}
    raised = {
        str(cls.exit_code)
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.FinscaleError)
    }
    assert raised | {"0"} <= codes


def _spec_defaults(model: type[Any]) -> dict[str, Any]:
    out = {}
    for name, field in model.model_fields.items():
        if field.is_required():
            out[name] = "required"
            continue
        value = field.get_default(call_default_factory=True)
        out[name] = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
    return out


def test_specs_page_lists_every_spec_field_with_its_default() -> None:
    from finscale import spec

    sections = {
        name: type(field.get_default(call_default_factory=True))
        for name, field in spec.ExperimentSpec.model_fields.items()
        if field.default_factory is not None and hasattr(field.default_factory, "model_fields")
    }
    sections["data"] = spec.DataSpec
    expected = {
        f"{section}.{name}": default
        for section, model in sections.items()
        for name, default in _spec_defaults(model).items()
    }
    top = {k: v for k, v in _spec_defaults(spec.ExperimentSpec).items() if k not in sections}
    expected.update(top)
    params = {f"training.{p.name}" for p in spec.TRAINING_PARAMS}
    rows = {r[0].strip("`"): r[1] for r in _rows(REPO / "docs" / "specs.md") if len(r) >= 3}
    documented = {k for k in rows if k in expected or re.fullmatch(r"[a-z_]+\.[a-z_0-9]+", k)}
    assert documented | params == set(expected)
    for key in documented:
        cell = rows[key]
        if cell == "required":
            assert expected[key] == "required", key
            continue
        assert _literal(cell) == expected[key], f"{key}: the page says {cell}"


def test_specs_page_lists_the_training_parameters_as_spec_py_defines_them() -> None:
    from finscale.spec import TRAINING_PARAMS

    rows = {
        r[0].strip("`"): r
        for r in _rows(REPO / "docs" / "specs.md")
        if len(r) == 5 and r[2].startswith("[")
    }
    assert list(rows) == [p.name for p in TRAINING_PARAMS]
    for p in TRAINING_PARAMS:
        _, kind, allowed, default, _ = rows[p.name]
        assert kind == ("integer" if p.whole else "float"), p.name
        low, high = (float(v) for v in allowed.strip("[)").split(","))
        assert (low, high) == (p.low, p.high), p.name
        want = p.default.model_dump() if hasattr(p.default, "model_dump") else p.default
        assert _literal(default) == want, p.name


# --- links ---------------------------------------------------------------------------------------


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
        anchors.add(slug.replace(" ", "-"))
    return anchors


def test_relative_links_and_their_anchors_resolve() -> None:
    for page in DOCS:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(#[^)\s]*)?\)", page.read_text()):
            if re.match(r"^[a-z]+://", target):
                continue
            path = (page.parent / target).resolve() if target else page
            assert path.exists(), f"{_rel(page)}: link to {target}, which does not exist"
            if anchor and path.suffix == ".md":
                assert anchor[1:] in _anchors(path), f"{_rel(page)}: no {anchor} in {target}"


def test_the_docs_index_links_every_page() -> None:
    index = (REPO / "docs" / "README.md").read_text()
    for page in (REPO / "docs").glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not link {page.name}"


def test_data_page_shows_the_feature_table_as_tiers_py_defines_it() -> None:
    # FINSCALE_UPDATE_DOCS=1 rewrites the block from the table instead of comparing
    from finscale.data.feature_docs import replace_tables

    page = REPO / "docs" / "data.md"
    text = page.read_text()
    wanted = replace_tables(text)
    if os.environ.get("FINSCALE_UPDATE_DOCS") == "1":
        page.write_text(wanted)
    assert text == wanted, "docs/data.md: run FINSCALE_UPDATE_DOCS=1 pytest tests/unit/test_docs.py"


def test_data_page_names_every_sample_ticker() -> None:
    from finscale.data.sources import SAMPLE_FILES
    from finscale.tiers import INPUTS

    text = (REPO / "docs" / "data.md").read_text()
    auxiliary = {i.sample for i in INPUTS.values()}
    for ticker in SAMPLE_FILES:
        named = f"^{ticker}" if ticker not in auxiliary else INPUTS["vix"].label
        assert named in text, f"docs/data.md: the sample source does not mention {named}"
