"""The feature tables of docs/data.md, written from `finscale.tiers` (a test compares the page
with them; `FINSCALE_UPDATE_DOCS=1` makes it rewrite the page). A tier's table shows its own
rows as the table writes them: a family is one line."""

from __future__ import annotations

from finscale.data.features import (
    OWN_FUNCTIONS,
    feature_lookback,
    lookback_rows,
    restarts,
    tier_lookback,
)
from finscale.tiers import DATASETS, HISTORY_ROWS, INPUTS, TIERS, Family, Feature, FeatureTier

BEGIN = "<!-- feature tables: generated from src/finscale/tiers.py; do not edit -->"
END = "<!-- end of the generated feature tables -->"


def _function(function: str, output: str | None, weekly: bool = False) -> str:
    origin = "ours" if function in OWN_FUNCTIONS else "TA-Lib"
    shown = f" → {output}" if output else ""
    return f"`{function}`{shown} ({origin}){', weekly' if weekly else ''}"


def _params(params: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "–"


def _bounds(f: Feature) -> str:
    if f.bounds is not None:
        return f"{f.bounds[0]:g}..{f.bounds[1]:g}"
    return "fixed scale" if f.bounded else ""


def _lookbacks(features: tuple[Feature, ...]) -> str:
    rows = ", ".join(dict.fromkeys(str(feature_lookback(f)) for f in features))
    return f"{rows} (restarted)" if any(restarts(f) for f in features) else rows


def _row_line(row: Feature | Family) -> str:
    if isinstance(row, Feature):
        return (
            f"| `{row.name}` | {_function(row.function, row.output, row.weekly)} "
            f"| {_params(dict(row.params))} | {_lookbacks((row,))} | {_bounds(row)} |"
        )
    features = row.features()
    names = ", ".join(f"`{f.name}`" for f in features)
    periods = {
        p: ", ".join(str(f.params[p]) for f in features) for p in row.period_params if row.periods
    }
    return (
        f"| {names} | {_function(row.function, row.output)} "
        f"| {_params({**periods, **row.params})} | {_lookbacks(features)} "
        f"| {_bounds(features[0])} |"
    )


def _tier_lines(name: str, tier: FeatureTier) -> list[str]:
    extends = (
        f": {tier.extends.name}'s and {len(tier.added)} more" if tier.extends is not None else ""
    )
    history = (
        "; computed over the whole history, as the research system did"
        if all(f.whole_history for f in tier.added)
        else ""
    )
    return [
        "",
        f"**Tier {name}** ({len(tier.features)} features{extends}): "
        f"{tier.description}; input: {INPUTS[tier.input].label}; "
        f"lookback {tier_lookback(name)} rows{history}.",
        "",
        "| columns | function | parameters | lookback rows | bounds |",
        "|---|---|---|---|---|",
        *(_row_line(r) for r in tier.rows),
    ]


def feature_tables() -> str:
    """Markdown: the dataset kinds, then one table per tier."""
    lines = [
        BEGIN,
        "",
        "| dataset | tiers | inputs | features | lookback rows | built by default |",
        "|---|---|---|---|---|---|",
    ]
    for kind, d in DATASETS.items():
        inputs = ", ".join(INPUTS[i].label for i in d.inputs)
        tiers = ", ".join(d.tiers)
        lines.append(
            f"| `<TICKER>.dataset.{kind}` | {tiers} | {inputs} | {d.num_features} "
            f"| {lookback_rows(kind)} | {'yes' if d.by_default else '`--kind ' + kind + '`'} |"
        )
    lines += [
        "",
        f"A restarted function is computed on the {HISTORY_ROWS} rows ending at each day.",
    ]
    for name, tier in TIERS.items():
        lines += _tier_lines(name, tier)
    lines += ["", END]
    return "\n".join(lines)


def replace_tables(page: str) -> str:
    """`page` with its generated block replaced by today's tables."""
    start, end = page.index(BEGIN), page.index(END) + len(END)
    return page[:start] + feature_tables() + page[end:]
