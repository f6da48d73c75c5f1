"""The report's numbers and tests in words: one sentence per finding, each with its statistic.

The sentences follow a fixed grammar that `tests/unit/test_summary_claims.py` parses and checks
against analysis.json: "WHO is better than / worse than / not distinguishable from WHAT (…)",
"WHO has a lower BCE than the reference (…)" for a gain a shift of the label rate can explain,
"NAME beats K of N final models / best trials".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from finscale.report.reference import Shift
from finscale.report.scaling_fit import ALPHA_MAX, ALPHA_MIN, ExponentFit
from finscale.report.stats import AucTest, PairedTest, Skill

SPLIT_NAMES = {"val": "validation", "test": "test"}
_SOURCES = {
    "train": "the training labels",
    "train+val": "the training and validation labels",
    "own": "the split's own labels: the training rate was not stored",
}


def num(value: object, digits: int = 4) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "—"
    return f"{value:.{digits}f}"


def stated(t: PairedTest | AucTest | None, digits: int = 4) -> str:
    """`estimate ± se (p₂ p)`; "—" without a test."""
    if t is None:
        return "—"
    if isinstance(t, PairedTest):
        return f"{t.mean:+.{digits}f} ± {t.se:.{digits}f} (p₂ {t.p_value:.2g})"
    return f"{t.estimate:.{digits}f} ± {t.se:.{digits}f} (p₂ {t.p_value:.2g})"


def spread(values: Sequence[float], digits: int = 4) -> str:
    """The spread over seeds: their range with fewer than 3 (a standard deviation of two values
    says little), else ± their standard deviation; empty with fewer than 2."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return ""
    if len(finite) < 3:
        return f"seeds {min(finite):.{digits}f}–{max(finite):.{digits}f}"
    return f"± {statistics.stdev(finite):.{digits}f} over {len(finite)} seeds"


def _numbers(t: PairedTest) -> str:
    return f"{t.mean:+.4f} ± {t.se:.4f}"


def versus(who: str, what: str, t: PairedTest) -> str:
    """WHO against WHAT by the paired BCE test, one-sided 2.5 % either way."""
    if t.p_lower < 0.025:
        return f"{who} is better than {what} ({_numbers(t)}, one-sided p {t.p_lower:.2g})."
    if 1 - t.p_lower < 0.025:
        return f"{who} is worse than {what} ({_numbers(t)}, one-sided p {1 - t.p_lower:.2g})."
    return f"{who} is not distinguishable from {what} ({_numbers(t)}, p₂ {t.p_value:.2g})."


def auc_words(a: AucTest) -> str:
    return f"AUC {a.estimate:.3f} ± {a.se:.3f} against 0.5, p₂ {a.p_value:.2g}"


def against_reference(who: str, skill: Skill) -> str:
    """WHO against the reference, by `skill.claim`, with the rate-free AUC beside it."""
    t, auc = skill.vs_base_rate, auc_words(skill.auc)
    claim = skill.claim
    if claim == "shift" and skill.vs_floor is not None:
        f = skill.vs_floor
        return (
            f"{who} has a lower BCE than the reference ({_numbers(t)}, one-sided p "
            f"{t.p_lower:.2g}; {auc}), but not than a constant that knew the split's rate "
            f"({_numbers(f)}): the shift alone could explain its lower BCE."
        )
    if claim == "better":
        also = ""
        if skill.shifted and skill.vs_floor is not None:
            also = f"; and than a constant that knew the split's rate, {_numbers(skill.vs_floor)}"
        return (
            f"{who} is better than the reference ({_numbers(t)}, one-sided p {t.p_lower:.2g}"
            f"{also}; {auc})."
        )
    if claim == "worse":
        return (
            f"{who} is worse than the reference ({_numbers(t)}, one-sided p "
            f"{1 - t.p_lower:.2g}; {auc})."
        )
    return (
        f"{who} is not distinguishable from the reference ({_numbers(t)}, p₂ {t.p_value:.2g}; "
        f"{auc})."
    )


def shift_sentences(shift: Shift) -> list[str]:
    """The split's rate against the reference rate, and what a flagged shift means."""
    ref, split = shift.reference, SPLIT_NAMES.get(shift.split, shift.split)
    if shift.test is None:
        return [
            f"The reference on the {split} windows is the split's own positive rate, "
            f"{ref.own_rate:.3f} (BCE {ref.bce:.4f}): the training rate was not stored, so this "
            "stricter bar stands in."
        ]
    t = shift.test
    where = f"{t.mean:+.4f} ± {t.se:.4f}, p₂ {t.p_value:.2g}; {t.test}"
    source = _SOURCES.get(ref.source, ref.source)
    if not shift.flagged:
        return [
            f"The {split} split's positive rate, {ref.own_rate:.3f}, does not differ from the "
            f"reference rate, {ref.rate:.3f} ({source}), beyond the noise ({where})."
        ]
    side = "above" if ref.own_rate > ref.rate else "below"
    return [
        f"The {split} split's positive rate, {ref.own_rate:.3f}, is {side} the reference rate, "
        f"{ref.rate:.3f} ({source}), beyond the noise ({where}).",
        "A model can beat the reference by predicting this shift, not by skill: a constant "
        f"that knew the split's rate would gain {ref.shift_gain:.4f} BCE (floor {ref.floor:.4f} "
        f"against the reference's {ref.bce:.4f}).",
        "So a predictor is called better than the reference only if it also beats that "
        "constant; the AUC, which no rate moves, stands beside each verdict.",
    ]


def _ends_words(at_low: bool, at_high: bool) -> str:
    if at_low and at_high:
        return "both its ends are the ends"
    return f"its {'lower' if at_low else 'upper'} end is the end"


def alpha_interval(e: ExponentFit, sep: str = "to") -> str:
    """The exponent's 95 % interval, then which of its ends is the fitted range's limit: such
    an end is a bound the data did not set, so it is shown as one, not as a value."""
    at_low, at_high = e.low <= ALPHA_MIN + 1e-9, e.high >= ALPHA_MAX - 1e-9
    low = f"≤ {ALPHA_MIN:g}" if at_low else f"{e.low:.3f}"
    high = f"≥ {ALPHA_MAX:g}" if at_high else f"{e.high:.3f}"
    text = f"{low}, {high}" if sep == "," else f"{low} {sep} {high}"
    if at_low or at_high:
        text += (
            f"; {_ends_words(at_low, at_high)} of the fitted range "
            f"[{ALPHA_MIN:g}, {ALPHA_MAX:g}], not set by the data"
        )
    return text
