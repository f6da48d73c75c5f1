"""Every table the CLI prints, drawn from the plain data the library returns.

A table fits the width it is given: names and architecture ids are never cut. Every column
keeps its cells on one line except free text (which wraps at spaces); when the columns do not
fit, the least important ones are left out, in a stated order, and a caption names them.
Only when the kept columns still do not fit (a name wider than the screen) does a cell fold
onto a second line; nothing is ever shortened with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from finscale.param_budget import short_count
from finscale.plural import counted

if TYPE_CHECKING:
    from finscale.data.build import Built
    from finscale.data.manifest import ManifestEntry
    from finscale.data.summary import SplitSummary
    from finscale.hpo import EvalRun
    from finscale.hpo.preflight import SpecCheck
    from finscale.hpo.read import StudySummary
    from finscale.k8s.snapshot import Snapshot
    from finscale.model import Arch

# What a table adds to its cells' widths: one padding space either side of each cell and
# one border between and around the columns (rich's default box and padding).
_PER_COLUMN = 3
_EDGES = 1
NONE = "—"


@dataclass(frozen=True)
class Column:
    """One column: its header, where its cells sit, and what happens when space is short."""

    header: str
    justify: Literal["left", "right"] = "left"
    # 0: always shown (names, ids, the numbers a reader came for); 1, 2, …: left out in that
    # order (1 first) when the table is too wide.
    drop: int = 0
    wrap: bool = False  # free text: may wrap at spaces
    whole: bool = False  # a name or an id: the last thing to fold when nothing else can give


def _needed(column: Column, cells: Iterable[str]) -> int:
    """The narrowest the column can be without cutting or folding a word."""
    texts = [column.header, *cells]
    if column.wrap:
        return max(cell_len(word) for text in texts for word in (text.split() or [""]))
    return max(cell_len(text) for text in texts)


def _room(width: int, n_columns: int) -> int:
    """What `width` leaves for the cells of `n_columns` columns."""
    return width - _EDGES - _PER_COLUMN * n_columns


def _shown(columns: Sequence[Column], needed: Sequence[int], width: int) -> list[int]:
    """Indices of the columns shown at `width`: all, less the least important, until they fit."""
    shown = list(range(len(columns)))
    for i in sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: columns[i].drop):
        if sum(needed[j] for j in shown) <= _room(width, len(shown)):
            break
        shown.remove(i)
    return shown


# The narrowest a column that is not a name may be squeezed to, its cells folding.
_SQUEEZED = 5


def _squeezed(columns: Sequence[Column], needed: Sequence[int], room: int) -> list[int] | None:
    """Fixed widths for the columns shown when they need more than `room`: names and ids keep
    theirs, the others share what is left in proportion (their cells fold). None when even
    that does not fit."""
    kept = sum(n for n, c in zip(needed, columns, strict=True) if c.whole)
    rest = sum(n for n, c in zip(needed, columns, strict=True) if not c.whole)
    floors = [min(n, _SQUEEZED) for n, c in zip(needed, columns, strict=True) if not c.whole]
    left = room - kept
    if left < sum(floors):
        return None
    return [
        n if c.whole else max(min(n, _SQUEEZED), n * left // rest)
        for n, c in zip(needed, columns, strict=True)
    ]


def _records(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str | None, width: int
) -> Table:
    """A table too wide for the screen as one record per row: its name on a line, then its
    other columns as `header value` pairs, as many to a line as fit."""
    drawn = Table.grid(padding=(0, 0))
    drawn.title, drawn.title_justify = title, "left"
    drawn.add_column(overflow="fold")
    first = next((i for i, c in enumerate(columns) if c.whole), 0)
    for row in rows:
        drawn.add_row(row[first])
        line = ""
        for i, c in enumerate(columns):
            pair = f"{c.header} {row[i]}" if c.header else row[i]
            if i == first or not row[i]:
                continue
            if line and cell_len(line) + 3 + cell_len(pair) > width:
                drawn.add_row(line)
                line = ""
            line = f"{line} · {pair}" if line else f"  {pair}"
        if line:
            drawn.add_row(line)
    return drawn


def table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    width: int,
    title: str | None = None,
) -> Table:
    """A table of `rows` that fits `width` columns of screen."""
    needed = [_needed(c, (row[i] for row in rows)) for i, c in enumerate(columns)]
    shown = _shown(columns, needed, width)
    left_out = [c.header for i, c in enumerate(columns) if i not in shown]
    caption = f"left out at {width} columns: {', '.join(left_out)}" if left_out else None
    kept = [columns[i] for i in shown]
    widths: list[int] | None = None
    room = _room(width, len(shown))
    if sum(needed[i] for i in shown) > room:
        widths = _squeezed(kept, [needed[i] for i in shown], room)
        if widths is None:
            return _records(columns, rows, title, width)
    drawn = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for j, c in enumerate(kept):
        drawn.add_column(
            c.header,
            justify=c.justify,
            no_wrap=not c.wrap,
            overflow="fold",
            width=None if widths is None else widths[j],
        )
    for row in rows:
        drawn.add_row(*(row[i] for i in shown))
    return drawn


def show(console: Console, drawn: Table) -> None:
    """Print a table (wrapped to the console's width, whatever its default for text)."""
    console.print(drawn, soft_wrap=False)


class _Wrapped:
    """A table drawn by something that prints with the console's defaults (a `Live`): its
    title and cells wrap to the width even where lines of text do not."""

    def __init__(self, drawn: Table) -> None:
        self.drawn = drawn

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from console.render(self.drawn, options.update(no_wrap=False, overflow=None))


def _best(value: float | None, trial: int | None = None) -> str:
    if value is None:
        return NONE
    return f"{value:.4f}" if trial is None else f"{value:.4f} (#{trial})"


def _params(params: Mapping[str, Any], digits: int) -> str:
    return ", ".join(
        f"{k}={v:.{digits}g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


# --- finscale status and run (its progress: cli/progress.py) -----------------------------------


def status_table(summaries: Sequence[StudySummary], storage: str, *, width: int) -> Table:
    """`finscale status`: one row per study, its trials by state and its best trial."""
    columns = (
        Column("study", whole=True),
        Column("finished"),
        # Narrow, the counts a person can infer go first; RUNNING (is it moving?) goes last.
        Column("COMPLETE", drop=3),
        Column("PRUNED", drop=2),
        Column("FAIL"),
        Column("RUNNING", drop=4),
        Column("WAITING", drop=1),
        Column("best"),
        Column("best arch", whole=True),
    )
    rows = []
    for s in summaries:
        budget = f"{s.finished}/{s.n_trials}" if s.n_trials else str(s.finished)
        counts = [
            str(s.states.get(k, 0)) for k in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
        ]
        rows.append(
            [s.name, budget, *counts, _best(s.best_value, s.best_trial), s.best_arch or NONE]
        )
    return table(columns, rows, width=width, title=f"Studies in {storage}")


def results_table(
    summaries: Sequence[StudySummary], metrics: Sequence[str], *, width: int
) -> Table:
    """`finscale run`'s last word: one row per study (`metrics` gives each study's objective),
    budget progress, outcome counts and the best trial."""
    columns = (
        Column("study", whole=True),
        Column("finished"),
        Column("complete", drop=2),
        Column("pruned", drop=1),
        Column("failed"),
        Column("metric", drop=3),
        Column("best"),
        Column("best arch", whole=True),
        Column("best params", drop=4, wrap=True),
    )
    rows = []
    for s, metric in zip(summaries, metrics, strict=True):
        params = {k: v for k, v in s.best_params.items() if k != "arch"}
        rows.append(
            [
                s.name,
                f"{s.finished}/{s.n_trials}",
                str(s.states.get("COMPLETE", 0)),
                str(s.states.get("PRUNED", 0)),
                str(s.states.get("FAIL", 0)),
                metric,
                _best(s.best_value),
                s.best_arch or NONE,
                _params(params, 3) or NONE,
            ]
        )
    return table(columns, rows, width=width, title="Results")


# --- finscale train and evaluate ------------------------------------------------------------

EPOCH_COLUMNS = ("epoch", "train_loss", "val_bce", "val_auc", "val_accuracy", "val_pred_std", "lr")


def epochs_table(epochs: Sequence[tuple[int, Mapping[str, float]]], *, width: int) -> Table:
    """`finscale train`: the metrics of every epoch."""
    drops = {"lr": 1, "val_pred_std": 2}
    columns = [Column(c, drop=drops.get(c, 0)) for c in EPOCH_COLUMNS]
    rows = [[str(n), *(f"{values[c]:.4g}" for c in EPOCH_COLUMNS[1:])] for n, values in epochs]
    return table(columns, rows, width=width)


def evaluation_table(study: str, runs: Sequence[EvalRun], *, width: int) -> Table:
    """`finscale evaluate`: every run of a study's evaluated trials."""
    columns = (
        Column("trial"),
        Column("arch", whole=True),
        Column("seed"),
        Column("best epoch", drop=2),
        Column("val bce", drop=1),
        Column("test bce"),
        Column("test auc"),
    )
    rows = [
        [
            str(run.trial),
            run.arch,
            str(run.seed_index),
            f"{run.best_epoch}/{run.epochs_run}",
            f"{run.val['bce']:.4f}",
            f"{run.test['bce']:.4f}",
            f"{run.test['auc']:.4f}",
        ]
        for run in runs
    ]
    return table(columns, rows, width=width, title=f"{study}: test evaluation")


# --- finscale grid --------------------------------------------------------------------------


def grid_table(grid: Sequence[Arch], *, title: str, width: int) -> Table:
    """`finscale grid`: the architectures of a budget with their exact parameter counts."""
    columns = [Column("id", whole=True)] + [
        Column(c, justify="right")
        for c in ("d_model", "n_layers", "n_heads", "d_ff", "param_count")
    ]
    rows = [
        [a.id, str(a.d_model), str(a.n_layers), str(a.n_heads), str(a.d_ff), f"{a.param_count:,}"]
        for a in grid
    ]
    return table(columns, rows, width=width, title=title)


def check_table(check: SpecCheck, *, width: int) -> Table:
    """`finscale check`: per study, what it would search and whether it can."""
    columns = (
        Column("study", whole=True),
        Column("budget"),
        Column("features", justify="right"),
        Column("architectures", justify="right"),
        Column("sizes"),
        Column("storage", drop=1),
        Column("check"),
    )
    rows = []
    for s in check.studies:
        sizes = (
            f"{short_count(s.grid[0].param_count)}–{short_count(s.grid[-1].param_count)}"
            if s.grid
            else NONE
        )
        rows.append([
            s.name, s.budget, NONE if s.num_features is None else str(s.num_features),
            str(len(s.grid)), sizes, s.stored or NONE, "ok" if not s.problems else "✗",
        ])  # fmt: skip
    return table(columns, rows, width=width, title=f"{check.path}: {counted(len(rows), 'study')}")


# --- finscale data --------------------------------------------------------------------------


def built_table(built: Sequence[Built], data_dir: Path, *, width: int) -> Table:
    """`finscale data build`: the files built, new or unchanged."""
    columns = (
        Column("name", whole=True),
        Column("rows", drop=3),
        Column("first", drop=2),
        Column("last"),
        Column("columns", drop=1),
        Column("sha256", drop=4),
        Column(""),
    )
    rows = [
        [
            b.entry.name,
            str(b.entry.rows),
            str(b.entry.start),
            str(b.entry.end),
            str(len(b.entry.columns)),
            b.entry.sha256[:12],
            "unchanged" if b.unchanged else "new",
        ]
        for b in built
    ]
    return table(columns, rows, width=width, title=f"Built in {data_dir}")


def manifest_table(entries: Sequence[ManifestEntry], manifest: Path, *, width: int) -> Table:
    """`finscale data list`: the latest version of every dataset."""
    columns = (
        Column("name", whole=True),
        Column("kind", drop=3),
        Column("rows", drop=2),
        Column("first", drop=1),
        Column("last"),
        Column("sha256", drop=4),  # the path names it too
        Column("path"),
    )
    rows = [
        [e.name, e.kind, str(e.rows), str(e.start), str(e.end), e.sha256[:12], e.path]
        for e in entries
    ]
    return table(columns, rows, width=width, title=str(manifest))


def splits_table(rows: Sequence[SplitSummary], *, width: int) -> Table:
    """`finscale data summary`: windows per split and positive rates of one dataset."""
    columns = (
        Column("split mode"),
        Column("h"),
        Column("train"),
        Column("val"),
        Column("test"),
        Column("positive rate t/v/t"),
        Column("note", wrap=True),
    )
    cells = [
        [
            r.mode,
            str(r.horizon),
            str(r.train),
            str(r.val),
            str(r.test),
            "/".join(f"{r.positive_rate[k]:.2f}" for k in ("train", "val", "test")),
            r.problem or "",
        ]
        for r in rows
    ]
    return table(columns, cells, width=width)


# --- finscale watch ---------------------------------------------------------------------------


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


def _pods(active: int, succeeded: int, failed: int) -> str:
    said = [f"{n} {w}" for n, w in ((active, "run"), (succeeded, "ok"), (failed, "fail")) if n]
    return " ".join(said) or NONE


def cluster_view(
    snap: Snapshot, progress: Mapping[str, StudySummary], *, width: int, note: str | None = None
) -> Group:
    """`finscale watch`: the Jobs with their studies' progress in the storage, their pods
    (how each last ended) and the recent Warning events; `note` says why progress is missing."""
    jobs = [
        [j.name, j.state, _pods(j.active, j.succeeded, j.failed),
         *_trials(progress.get(j.study or "")), j.reason]
        for j in snap.jobs
    ]  # fmt: skip
    columns: tuple[Column, ...] = (
        Column("job", whole=True), Column("state"), Column("pods"), Column("trials"),
        Column("running", drop=2), Column("failed", drop=1), Column("why", wrap=True),
    )  # fmt: skip
    label = snap.selector.split(",")[0]
    drawn: list[Any] = [
        Text(f"{label} in namespace {snap.namespace} at {snap.taken:%H:%M:%S} UTC"),
        table(columns, jobs, width=width, title="Jobs"),
    ]
    pods = [[p.name, p.phase, str(p.restarts), p.node or NONE, p.last] for p in snap.pods]
    columns = (Column("pod", whole=True), Column("phase"), Column("restarts", drop=1),
               Column("node", drop=2), Column("last", wrap=True))  # fmt: skip
    drawn.append(table(columns, pods, width=width, title="Pods") if pods else Text("no pods"))
    if snap.events:
        events = [
            [_age((snap.taken - e.when).total_seconds()) if e.when else NONE, e.obj,
             e.reason + (f" ×{e.count}" if e.count > 1 else ""), e.message]
            for e in snap.events
        ]  # fmt: skip
        columns = (Column("age"), Column("object", whole=True), Column("reason"),
                   Column("message", wrap=True))  # fmt: skip
        drawn.append(table(columns, events, width=width, title="Warning events"))
    if note:
        drawn.append(Text(note))
    return Group(*drawn)


def _trials(summary: StudySummary | None) -> list[str]:
    """A study's trials: finished of the budget, running, failed."""
    if summary is None:
        return [NONE, NONE, NONE]
    done = f"{summary.finished}/{summary.n_trials}" if summary.n_trials else str(summary.finished)
    return [done, str(summary.states.get("RUNNING", 0)), str(summary.states.get("FAIL", 0))]
