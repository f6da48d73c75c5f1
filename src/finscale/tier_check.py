"""What is wrong with the feature table (`finscale.tiers`); a test runs it. The function lists
are arguments so that this module stays free of TA-Lib."""

from __future__ import annotations

import re

from finscale.tiers import DATASETS, INPUTS, OHLCV, TIERS, Family, Feature, FeatureTier

_COUNTED = re.compile(r"^a(\d+)$")


def _row_problems(tier: FeatureTier) -> list[str]:
    problems = []
    for row in tier.rows:
        if not isinstance(row, Family):
            continue
        for period in row.periods:
            values = (period,) if isinstance(period, int) else period
            if len(values) != len(row.period_params):
                problems.append(
                    f"family {row.prefix!r} of {tier.name}: period {period!r} does not set "
                    f"{row.period_params!r}"
                )
    return problems


def _feature_problems(
    f: Feature, tier: FeatureTier, own_functions: frozenset[str], talib_functions: frozenset[str]
) -> list[str]:
    problems = []
    if f.function not in own_functions and f.function not in talib_functions:
        problems.append(f"{f.name}: {f.function!r} is neither TA-Lib's nor ours")
    if f.function in own_functions and f.output is not None:
        problems.append(f"{f.name}: our functions have one output; drop output=")
    if f.weekly and "Close" not in INPUTS.get(tier.input, INPUTS["ohlcv"]).columns:
        problems.append(f"{f.name}: weekly features need a close")
    if f.bounds is not None and not (f.bounded and f.bounds[0] < f.bounds[1]):
        problems.append(f"{f.name}: bounds {f.bounds} need bounded=True and low < high")
    return problems


def _tier_problems(
    key: str, tier: FeatureTier, own_functions: frozenset[str], talib_functions: frozenset[str]
) -> list[str]:
    problems = []
    if key != tier.name:
        problems.append(f"tier {key!r} is named {tier.name!r}")
    if tier.input not in INPUTS:
        problems.append(f"tier {key!r}: input {tier.input!r} is not in INPUTS")
    if tier.extends is not None and tier.extends.input != tier.input:
        problems.append(f"tier {key!r} extends {tier.extends.name!r} of another input")
    counted = _COUNTED.match(key)
    if tier.input == "ohlcv" and (counted is None or int(counted[1]) != len(tier.features)):
        problems.append(f"tier {key!r} has {len(tier.features)} features: name it by that count")
    names = [f.name for f in tier.features]
    for name in sorted({n for n in names if names.count(n) > 1} | (set(names) & set(OHLCV))):
        problems.append(f"column {name!r} appears more than once")
    seen: dict[tuple[object, ...], str] = {}
    for f in tier.features:
        same = seen.setdefault((*f.definition, f.output), f.name)
        if same != f.name:
            problems.append(f"{f.name} computes what {same} does")
        problems += _feature_problems(f, tier, own_functions, talib_functions)
    return problems + _row_problems(tier)


def _kind_problems() -> list[str]:
    problems = []
    for key, kind in DATASETS.items():
        if key != kind.kind:
            problems.append(f"dataset kind {key!r} is named {kind.kind!r}")
        missing = [t for t in kind.tiers if t not in TIERS]
        for t in missing:
            problems.append(f"dataset kind {key!r}: tier {t!r} is not in TIERS")
        if missing:
            continue
        ticker = [t for t in kind.tiers if TIERS[t].input == "ohlcv"]
        expected = f"a{len(OHLCV) + sum(len(TIERS[t].features) for t in ticker)}" + "".join(
            t for t in kind.tiers if t not in ticker
        )
        if key != expected:
            problems.append(f"dataset kind {key!r}: its columns name it {expected!r}")
        if len(set(kind.columns)) != len(kind.columns):
            problems.append(f"dataset kind {key!r} holds a column twice")
    return problems


def check_table(own_functions: frozenset[str], talib_functions: frozenset[str]) -> list[str]:
    """What is wrong with the table (empty when nothing): a column named twice or defined two
    ways, a feature repeating another, a function neither TA-Lib nor ours has, an undeclared
    input or tier, a weekly feature off a close, bounds without `bounded`, a family period that
    does not fit its parameters, a tier or kind not named by its count."""
    problems: list[str] = []
    definitions: dict[str, Feature] = {}
    for key, tier in TIERS.items():
        problems += _tier_problems(key, tier, own_functions, talib_functions)
        for f in tier.features:
            if definitions.setdefault(f.name, f) != f:
                problems.append(f"column {f.name!r} is defined two ways")
    for key, inp in INPUTS.items():
        if key != inp.name:
            problems.append(f"input {key!r} is named {inp.name!r}")
    return list(dict.fromkeys(problems + _kind_problems()))
