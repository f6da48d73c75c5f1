"""The summary claims nothing its own analysis.json contradicts.

Every sentence of the answer that judges a predictor ("X is better than / worse than / not
distinguishable from Y", "X has a lower BCE than the reference", "B beats K of N …", "No
predictor … is better than the reference", the rate shift, the slope verdict) and every verdict
in the tables is parsed and checked against the numbers in analysis.json: on the golden storage
and on synthetic experiments where the transformers win, where a baseline wins, where the
reference is beaten only by a drift of the label rate, and where nothing beats it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, create_trial

from finscale.predictions import encode_labels, encode_logits
from finscale.records import (
    ATTR_BASELINES,
    ATTR_EVAL_PREFIX,
    ATTR_FIELDS,
    ATTR_N_TRIALS,
    ATTR_SPEC,
    ATTR_WINDOWS,
    TRIAL_VAL_LOGITS,
    StoredStudy,
)
from finscale.report import write_report

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"

# --- the checker ---------------------------------------------------------------------------------

CONTEXT = re.compile(r"^\*\*Horizon (?P<h>\d+), on (?P<split>test|validation)\*\*")
VERSUS = re.compile(
    r"^(?P<who>.+?) is (?P<rel>better than|worse than|not distinguishable from) "
    r"(?P<what>the reference|[\w-]+) \("
)
SHIFT = re.compile(r"^(?P<who>.+?) has a lower BCE than the reference \(")
BEATS = re.compile(
    r"^(?P<name>[\w-]+) beats (?P<k>\d+) of (?P<n>\d+) (?:final models|best trials)\.$"
)
NONE_BEATS = re.compile(r"^No baseline beats a (?:final model|best trial)\.$")
BEST = re.compile(r"^The best baseline is (?P<name>[\w-]+) \(BCE (?P<bce>[\d.]+), AUC ")
RATE = re.compile(
    r"^The (?:test|validation) split's positive rate, (?P<own>[\d.]+), "
    r"(?P<rel>is above|is below|does not differ from) the reference rate, (?P<ref>[\d.]+) "
)
SLOPE = re.compile(r"^Across budgets (?P<budgets>[^:]+): (?P<rest>.+)$")
NO_PREDICTOR = (
    "No predictor on these windows, transformer or baseline, is better than the reference by BCE."
)
EXPLAINING = ("A model can beat the reference by predicting", "So a predictor is called better")
CLAIM_WORDS = (" better than ", " worse than ", "distinguishable", " beats ", "lower BCE")
RELATION = {
    "better than": "better",
    "worse than": "worse",
    "not distinguishable from": "not distinguishable",
}


def _relation(p_lower: float) -> str:
    if p_lower < 0.025:
        return "better"
    return "worse" if 1 - p_lower < 0.025 else "not distinguishable"


@dataclass
class _Split:
    """What analysis.json says of one horizon's test or validation windows."""

    models: dict[str, dict[str, Any]]  # "50K's final model" → {claim, vs_baselines}
    baselines: dict[str, dict[str, Any]]  # name → {claim, bce}
    reference: dict[str, Any] | None
    sentence: str | None  # the slope's


def _splits(analysis: dict[str, Any]) -> dict[tuple[int, str], _Split]:
    out = {}
    for fa in analysis["final"]:
        models = {
            f"{m['budget']}'s final model": {"claim": m["claim"], "vs": m["vs_baselines"]}
            for m in fa["models"]
        }
        baselines = {
            n: {"claim": b["claim"], "bce": b["test_bce"]}
            for n, b in fa["models"][0]["baselines"].items()
        }
        out[fa["horizon"], "test"] = _Split(models, baselines, fa["reference"], fa["sentence"])
    for a in analysis["scaling"]:
        models = {
            f"{p['budget']}'s best trial": {
                "claim": p["skill"]["claim"],
                "vs": p["skill"]["vs_baselines"],
            }
            for p in a["points"]
            if p["skill"] is not None
        }
        baselines = {n: {"claim": b["claim"], "bce": b["loss"]} for n, b in a["baselines"].items()}
        out[a["horizon"], "validation"] = _Split(models, baselines, a["reference"], a["sentence"])
    return out


def _answer_sentences(summary: str) -> list[tuple[tuple[int, str], str]]:
    """The answer's bullet sentences, each with its (horizon, split)."""
    answer = summary.split("## The answer", 1)[1].split("\n## ", 1)[0]
    found, context = [], None
    for line in answer.splitlines():
        if m := CONTEXT.match(line):
            context = (int(m["h"]), m["split"])
        elif line.startswith("- ") and context is not None:
            found += [(context, s) for s in re.split(r"(?<=\.)\s+(?=[A-Z0-9])", line[2:])]
    return found


def _check(sentence: str, split: _Split) -> str | None:
    """What contradicts `sentence` in `split`; None when nothing does. Raises KeyError for a
    predictor analysis.json does not hold."""
    models, baselines = split.models, split.baselines
    if m := VERSUS.match(sentence):
        who, what = m["who"], m["what"]
        if what == "the reference":
            claim = (models.get(who) or baselines[who])["claim"]
            return None if claim == RELATION[m["rel"]] else f"claim is {claim!r}"
        rel = _relation(models[who]["vs"][what]["p_lower"])
        return None if rel == RELATION[m["rel"]] else f"the test says {rel!r}"
    if m := SHIFT.match(sentence):
        claim = (models.get(m["who"]) or baselines[m["who"]])["claim"]
        return None if claim == "shift" else f"claim is {claim!r}"
    if m := BEATS.match(sentence):
        beaten = sum(_relation(v["vs"][m["name"]]["p_lower"]) == "worse" for v in models.values())
        said = (int(m["k"]), int(m["n"]))
        return None if said == (beaten, len(models)) else f"{beaten} of {len(models)}"
    if NONE_BEATS.match(sentence):
        beaten = [
            n for n in baselines
            if any(_relation(v["vs"][n]["p_lower"]) == "worse" for v in models.values())
        ]  # fmt: skip
        return f"beaten by {beaten}" if beaten else None
    if m := BEST.match(sentence):
        best = min(baselines, key=lambda n: baselines[n]["bce"])
        return None if m["name"] == best else f"the best is {best}"
    if sentence == NO_PREDICTOR:
        better = [w for w, v in {**models, **baselines}.items() if v["claim"] == "better"]
        return f"{better} are better" if better else None
    if m := RATE.match(sentence):
        ref = split.reference
        assert ref is not None
        flagged = m["rel"] != "does not differ from"
        if flagged != ref["flagged"]:
            return f"flagged is {ref['flagged']}"
        rates = (float(m["own"]), float(m["ref"]))
        want = (round(ref["own_rate"], 3), round(ref["reference_rate"], 3))
        return None if rates == want else f"rates are {want}"
    if m := SLOPE.match(sentence):
        return None if m["rest"] == f"{split.sentence}." else f"the fit says {split.sentence!r}"
    if any(w in sentence for w in CLAIM_WORDS) and not sentence.startswith(EXPLAINING):
        return "a claim the checker cannot parse"
    return None


def _verdict_rows(summary: str) -> list[tuple[tuple[int, str], str, str]]:
    """(horizon and split, predictor, verdict) of every table row with a verdict column."""
    rows = []
    sections = {"Final evaluation on test": "test", "Scaling": "validation"}
    for title, split in sections.items():
        if f"\n## {title}\n" not in summary:
            continue
        body = summary.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
        for part in body.split("### Horizon ")[1:]:
            horizon = int(part.split("\n", 1)[0])
            lines = [line for line in part.splitlines() if line.startswith("|")]
            header = [c.strip() for c in lines[0].strip("|").split("|")]
            where = header.index("verdict")
            for line in lines[2:]:
                cells = [c.strip() for c in line.strip("|").split("|")]
                rows.append(((horizon, split), cells[0], cells[where]))
    return rows


def contradictions(summary: str, analysis: dict[str, Any]) -> tuple[list[str], int]:
    """Every contradiction between the summary and analysis.json, and the claims checked."""
    splits = _splits(analysis)
    errors, checked = [], 0
    judged: dict[tuple[int, str], set[str]] = {}
    for context, sentence in _answer_sentences(summary):
        checked += 1
        problem = _check(sentence, splits[context])
        if problem is not None:
            errors.append(f"{context}: {sentence!r}: {problem}")
        m = VERSUS.match(sentence)
        if (m and m["what"] == "the reference") or (m := SHIFT.match(sentence)):
            judged.setdefault(context, set()).add(m["who"])
    for context, split in splits.items():  # every predictor is judged against the reference
        missing = {*split.models, *split.baselines} - judged.get(context, set())
        if missing:
            errors.append(f"{context}: no verdict against the reference for {sorted(missing)}")
    kind = {"test": "final model", "validation": "best trial"}
    for context, who, verdict in _verdict_rows(summary):
        split = splits[context]
        found = split.baselines.get(who.removesuffix(" (baseline)")) or split.models.get(
            f"{who}'s {kind[context[1]]}"
        )
        if found is None:
            if verdict != "—":  # the reference and the floor have none
                errors.append(f"table {context}: {who} has a verdict {verdict!r}")
            continue
        checked += 1
        if verdict != found["claim"]:
            errors.append(f"table {context}: {who} {verdict!r}, analysis {found['claim']!r}")
    return errors, checked


# --- synthetic experiments -----------------------------------------------------------------------

N = 600
SIZES = {"50K": 50_000, "500K": 500_000}


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class World:
    """An experiment's splits and predictors: rates per split, and each predictor's level (the
    rate it predicts around) and skill (how far it ranks positives above negatives)."""

    rates: tuple[float, float, float]  # train, val, test
    model_skill: float
    model_level: float | None = None  # None: the training rate
    baselines: tuple[tuple[str, float, float | None], ...] = (("logistic", 0.3, None),)
    evaluated: bool = True


def _predict(y: np.ndarray, level: float, skill: float, rng: np.random.Generator) -> np.ndarray:
    z = skill * (y - y.mean()) / max(y.std(), 1e-9) + rng.normal(0, 0.5, len(y))
    return _logit(level) + 0.5 * z


def _windows(y: np.ndarray, start: int) -> dict[str, Any]:
    return {"n": len(y), "labels": encode_labels(y), "runs": [[start, start + len(y) - 1]],
            "first_date": "2015-01-02", "last_date": "2017-06-30",
            "positive_rate": float(y.mean())}  # fmt: skip


def _bce(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0, logits) - y * logits))


def _trial(number: int, logits: np.ndarray, y: np.ndarray, size: int) -> FrozenTrial:
    value = _bce(logits, y)
    trial = create_trial(
        value=value,
        params={"arch": "d32-l2-h4-f2"},
        distributions={"arch": CategoricalDistribution(["d32-l2-h4-f2"])},
        user_attrs={"param_count": size, "val_bce": value, "best_epoch": 3, "epochs_run": 8,
                    "stop_reason": "early_stopping", "val_pred_std": 0.05,
                    TRIAL_VAL_LOGITS: encode_logits(logits)},
    )  # fmt: skip
    trial.number = number
    return trial


def _studies(world: World, seed: int) -> list[StoredStudy]:
    rng = np.random.default_rng(seed)
    train, val_rate, test_rate = world.rates
    val_y = (rng.random(N) < val_rate).astype(float)
    test_y = (rng.random(N) < test_rate).astype(float)
    level = world.model_level or train
    baselines = {
        name: {
            "val": encode_logits(_predict(val_y, lvl or train, skill, rng)),
            "test": encode_logits(_predict(test_y, lvl or train, skill, rng)),
            "details": {},
        }
        for name, skill, lvl in world.baselines
    }
    baselines["base_rate"] = {"val": encode_logits(np.full(N, _logit(train))),
                              "test": encode_logits(np.full(N, _logit(train))),
                              "details": {"train_rate": train}}  # fmt: skip
    out = []
    for budget, size in SIZES.items():
        name = f"claims-{budget.lower()}-h1"
        trials = [_trial(i, _predict(val_y, level, world.model_skill - 0.1 * i, rng), val_y, size)
                  for i in range(3)]  # fmt: skip
        attrs: dict[str, Any] = {
            ATTR_SPEC: {"experiment": "claims", "budget": budget, "horizon": 1,
                        "objective": {"metric": "val_bce"}},
            ATTR_N_TRIALS: 3,
            ATTR_FIELDS: {"experiment": '"claims"', "name": json.dumps(name),
                          "budget": json.dumps(budget), "horizon": "1"},
            ATTR_WINDOWS: {"horizon": 1, "train": {"n": 3000, "positive_rate": train},
                           "val": _windows(val_y, 4000), "test": _windows(test_y, 5000)},
            ATTR_BASELINES: baselines,
        }  # fmt: skip
        if world.evaluated:
            best = min(trials, key=lambda t: float(t.value or 0.0))
            for seed_index in range(2):
                logits = _predict(test_y, level, world.model_skill, rng)
                attrs[f"{ATTR_EVAL_PREFIX}{best.number}.{seed_index}"] = {
                    "trial": best.number, "seed_index": seed_index, "seed": seed_index,
                    "arch": "d32-l2-h4-f2", "param_count": size, "refit": False,
                    "best_epoch": 3, "epochs_run": 8,
                    "val": {"bce": best.value, "auc": 0.6},
                    "test": {"bce": _bce(logits, test_y), "auc": 0.6},
                    "test_logits": encode_logits(logits), "wall_time_s": 1.0,
                }  # fmt: skip
        out.append(StoredStudy(name=name, direction="minimize", user_attrs=attrs, trials=trials))
    return out


def _report(stored: list[StoredStudy], out: Path) -> tuple[str, dict[str, Any]]:
    write_report(stored, out, storage="s", plots=False, n_resamples=50)
    return (out / "summary.md").read_text(), json.loads((out / "analysis.json").read_text())


WORLDS: dict[str, tuple[World, Callable[[str], bool]]] = {
    "the transformers win": (
        World((0.2, 0.2, 0.2), model_skill=1.2),
        lambda s: "50K's final model is better than the reference (" in s,
    ),
    "a baseline wins": (
        World(
            (0.2, 0.2, 0.2),
            model_skill=0.1,
            baselines=(("logistic", 1.5, None), ("gbt", 0.8, None)),
        ),
        lambda s: (
            "- logistic beats 2 of 2 final models." in s
            and "- logistic beats 2 of 2 best trials." in s
        ),
    ),
    "the reference is beaten only by drift": (
        World((0.2, 0.2, 0.08), model_skill=0.0, model_level=0.08),
        lambda s: (
            "50K's final model has a lower BCE than the reference (" in s
            and "is below the reference rate, 0.200" in s
        ),
    ),
    "nothing beats the reference": (
        World((0.2, 0.2, 0.2), model_skill=0.0, baselines=(("logistic", 0.0, None),)),
        lambda s: NO_PREDICTOR in s,
    ),
    "validation only": (
        World((0.2, 0.2, 0.2), model_skill=0.2, baselines=(("gbt", 0.8, None),), evaluated=False),
        lambda s: "- gbt beats 2 of 2 best trials." in s and "on test**" not in s,
    ),
}


@pytest.mark.parametrize("world", list(WORLDS))
def test_the_summary_makes_no_claim_its_analysis_contradicts(world: str, tmp_path: Path) -> None:
    # given a synthetic experiment whose truth is known
    spec, expected = WORLDS[world]
    summary, analysis = _report(_studies(spec, seed=7), tmp_path)
    # then every claim of the answer and every verdict of the tables agrees with analysis.json
    errors, checked = contradictions(summary, analysis)
    assert errors == []
    assert checked >= 12
    # and the answer says what that world is about
    assert expected(summary), summary.split("## Final evaluation")[0]


def test_the_golden_report_makes_no_claim_its_analysis_contradicts(tmp_path: Path) -> None:
    # given the storage the 0.1.0 release wrote (S&P 500 sample: test rate 0.079 below 0.144)
    from finscale.hpo import read_studies
    from finscale.hpo.storage import open_storage

    path = tmp_path / "storage.db"
    shutil.copyfile(GOLDEN / "storage.db", path)
    storage = open_storage(f"sqlite:///{path}", heartbeat_interval_s=5, heartbeat_grace_s=10,
                           max_retries=0)  # fmt: skip
    summary, analysis = _report(read_studies(storage), tmp_path / "r")
    errors, checked = contradictions(summary, analysis)
    assert errors == [] and checked >= 20
    # the baselines beat the transformers, and the answer says so before anything else
    first = next(s for _, s in _answer_sentences(summary))
    assert first == "gbt beats 2 of 2 final models."
    # the sentence the issue found false is gone: a baseline beats the reference there
    assert "noise around the base rate" not in summary


def test_the_checker_finds_a_contradiction(tmp_path: Path) -> None:
    # given a report, and the same summary with one verdict turned around
    spec, _ = WORLDS["nothing beats the reference"]
    summary, analysis = _report(_studies(spec, seed=7), tmp_path)
    wrong = summary.replace(
        "50K's final model is not distinguishable from the reference",
        "50K's final model is better than the reference",
        1,
    )
    assert wrong != summary
    # then the checker names it (and the sentence no predictor is better, now contradicted)
    errors, _ = contradictions(wrong, analysis)
    assert any("50K's final model is better than the reference" in e for e in errors)
    # and a claim it cannot parse is an error, not a pass
    vague = summary.replace(NO_PREDICTOR, "The transformers are better than all of them.", 1)
    assert vague != summary
    vague_errors, _ = contradictions(vague, analysis)
    assert any("cannot parse" in e for e in vague_errors)
