"""What of a study's search would come out the same if it ran again, said per study.

A trial retrains from what the storage holds (its parameters and seed: `finscale train
--trial N`), bit for bit on the same machine and thread count. Which parameters the sampler
proposed is another matter: TPE proposes from the trials finished when it is asked, so with
several workers the proposals depend on how their reservations interleaved, and a restarted
worker draws a fresh seed (it must not replay its previous life). A study that one worker ran
from start to end with `sampler.seed` set proposes the same parameters again.
"""

from __future__ import annotations

from finscale.records import ATTR_SPEC, TRIAL_WORKER
from finscale.report.collect import StudyResult


def sampler_seeded(result: StudyResult) -> bool:
    spec = result.attrs.get(ATTR_SPEC) or {}
    return (spec.get("sampler") or {}).get("seed") is not None


def workers_seen(result: StudyResult) -> int:
    """How many worker indexes ran the study's trials (0 when none is recorded)."""
    return len({t.user_attrs.get(TRIAL_WORKER) for t in result.trials} - {None})


def reproducibility(results: list[StudyResult]) -> str:
    """One paragraph: which studies would propose the same trials again, and why not the rest."""
    alone = [r.name for r in results if workers_seen(r) == 1 and sampler_seeded(r)]
    shared = [r.name for r in results if workers_seen(r) > 1]
    unseeded = [r.name for r in results if not sampler_seeded(r) and workers_seen(r) <= 1]
    parts = [
        "Reproducibility: every trial retrains from its stored parameters and seed "
        "(`finscale train SPEC --trial N`), bit for bit on the same machine and thread count."
    ]
    if alone:
        parts.append(
            f"{_names(alone)} ran on one worker with a seeded sampler: run again the same way "
            "on the same machine, the search proposes the same trials."
        )
    if shared:
        parts.append(
            f"{_names(shared)} ran on several workers: which parameters the sampler proposed "
            "depended on how their reservations interleaved (TPE proposes from the trials "
            "finished at that moment), so a rerun searches differently though seeded; the "
            "intervals hold that luck in the spread of the trials."
        )
    if unseeded:
        parts.append(f"{_names(unseeded)} had no sampler seed: its proposals are not repeatable.")
    return " ".join(parts)


def _names(names: list[str]) -> str:
    return ", ".join(names)
