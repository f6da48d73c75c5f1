"""The feature tables of docs/data.md, written from `finscale.tiers` (a test compares the page
with them; `FINSCALE_UPDATE_DOCS=1` makes it rewrite the page)."""

from __future__ import annotations

from finscale.data.features import OWN_FUNCTIONS, lookback_rows, tier_lookback
from finscale.tiers import DATASETS, INPUTS, TIERS, Feature

BEGIN = "<!-- feature tables: generated from src/finscale/tiers.py; do not edit -->"
END = "<!-- end of the generated feature tables -->"


def _function(feature: Feature) -> str:
    origin = "ours" if feature.function in OWN_FUNCTIONS else "TA-Lib"
    output = f" → {feature.output}" if feature.output else ""
    return f"`{feature.function}`{output} ({origin})"


def _params(feature: Feature) -> str:
    return ", ".join(f"{k}={v}" for k, v in feature.params.items()) or "–"


def feature_tables() -> str:
    """Markdown: the dataset kinds, then one table per tier."""
    lines = [
        BEGIN,
        "",
        "| dataset | tiers | inputs | features | lookback rows |",
        "|---|---|---|---|---|",
    ]
    for kind, d in DATASETS.items():
        inputs = ", ".join(INPUTS[i].label for i in d.inputs)
        tiers = ", ".join(d.tiers)
        lines.append(
            f"| `<TICKER>.dataset.{kind}` | {tiers} | {inputs} | {d.num_features} "
            f"| {lookback_rows(kind)} |"
        )
    for name, tier in TIERS.items():
        lines += [
            "",
            f"**Tier {name}**: {tier.description}; input: {INPUTS[tier.input].label}; "
            f"lookback {tier_lookback(name)} rows.",
            "",
            "| column | function | parameters | weekly | bounded |",
            "|---|---|---|---|---|",
        ]
        for f in tier.features:
            weekly = "yes" if f.weekly else ""
            bounded = "yes" if f.bounded else ""
            lines.append(f"| `{f.name}` | {_function(f)} | {_params(f)} | {weekly} | {bounded} |")
    lines += ["", END]
    return "\n".join(lines)


def replace_tables(page: str) -> str:
    """`page` with its generated block replaced by today's tables."""
    start, end = page.index(BEGIN), page.index(END) + len(END)
    return page[:start] + feature_tables() + page[end:]
