"""Study storage under load: reservation and tell latency, trials per second (prints JSON).

W worker processes share one study and run trials of a sleep objective (a fixed pause stands in
for training) through finscale's own path: the stale-trial check `finscale worker` runs before
each reservation, `reserve_trial` (the count, the trial row created or claimed under the study's
lock), the sampler the workers use (multivariate TPE with constant liar, seeded per worker, over
an architecture and three training parameters), a heartbeat, `tell`. The workers start together
once all of them are imported, connected and warm.

Reported per backend and worker count: p50 and p99 of the reservations that started a trial
(from the call to the started trial, sampling excluded), p99 without each worker's first
(`steady`) and the slowest first one (all workers reserve at the same instant); the same of the
polls that found the budget taken (idle workers poll every `--poll-s`, 0.1 s: fifty times as
often as `finscale worker`); tell latencies; finished trials per second from the start to the last
exit. The workers share this machine's cores, so many workers measure CPU contention as much as
the database: `--sleep-s 1` gives 16 workers CPU to spare. `--prefill N` starts from a study
that already holds N finished trials.

    python benchmarks/bench_storage.py --postgres postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

from finscale.hpo._optuna import trial_id
from finscale.hpo.storage import normalize_url, open_storage
from finscale.hpo.trial_budget import StaleTrials, budget_state, reserve_trial
from finscale.spec import SamplerSpec

ARCHS = [f"d{d}-l{n}" for d in (64, 128) for n in (2, 4, 8)]


@dataclass(frozen=True)
class Load:
    """What the workers do: the sampler, the pause per trial (`sleep_s`, spread uniformly by
    ±`jitter` of itself: trials differ in length), an idle worker's polling period, trials per
    worker, and how many finished trials the study holds before they start."""

    sampler: str = "tpe"
    sleep_s: float = 0.05
    jitter: float = 0.5
    poll_s: float = 0.1
    trials_per_worker: int = 25
    prefill: int = 0


def _storage(url: str) -> optuna.storages.RDBStorage:
    return open_storage(url, heartbeat_interval_s=5, heartbeat_grace_s=30, max_retries=2)


def _sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """The workers' sampler (`finscale.hpo.study.make_sampler` with the spec's defaults)."""
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    spec = SamplerSpec()
    return optuna.samplers.TPESampler(
        n_startup_trials=spec.n_startup_trials,
        multivariate=spec.multivariate,
        constant_liar=True,
        seed=seed,
    )


def _suggest(trial: optuna.Trial) -> float:
    """A search space shaped like the architectural objective's: an architecture and three
    training parameters; a cheap stand-in for the validation loss."""
    arch = trial.suggest_categorical("arch", ARCHS)
    lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
    return len(arch) * 0.01 + abs(lr - 1e-3) + dropout * 0.1 + weight_decay


def _prefill(study: optuna.Study, n: int) -> None:
    """`n` finished trials of the same search space, as a study holds later in its life."""
    rng = random.Random(0)
    distributions = {
        "arch": optuna.distributions.CategoricalDistribution(ARCHS),
        "lr": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True),
        "dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
        "weight_decay": optuna.distributions.FloatDistribution(1e-6, 1e-1, log=True),
    }
    trials = []
    for _ in range(n):
        params = {
            "arch": rng.choice(ARCHS),
            "lr": 10 ** rng.uniform(-5, -2),
            "dropout": rng.uniform(0.0, 0.5),
            "weight_decay": 10 ** rng.uniform(-6, -1),
        }
        trials.append(
            optuna.create_trial(params=params, distributions=distributions, value=rng.random())
        )
    study.add_trials(trials)


def _worker(
    url: str,
    name: str,
    n_trials: int,
    load: Load,
    index: int,
    start: Any,
    queue: mp.Queue,  # type: ignore[type-arg]
) -> None:
    storage = _storage(url)
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=_sampler(load.sampler, index)
    )
    stale = StaleTrials(storage, grace_s=30, failed_by=f"worker {index}")
    pauses = random.Random(index)
    reserve_ms, poll_ms, tell_ms = [], [], []
    # Warm, as `finscale worker` is by its first reservation (it has loaded and checked the
    # study): connections open, queries compiled.
    budget_state(study, n_trials)
    stale.fail(study)
    study.get_trials(deepcopy=False)
    start.wait()  # then every worker starts at once
    first = time.time()
    while True:
        stale.fail(study)  # as `finscale worker` does before each reservation
        begin = time.perf_counter()
        trial, state = reserve_trial(study, storage, n_trials=n_trials)
        elapsed_ms = 1000 * (time.perf_counter() - begin)
        if trial is None:
            poll_ms.append(elapsed_ms)
            if state.done:
                break
            time.sleep(load.poll_s)
            continue
        reserve_ms.append(elapsed_ms)
        value = _suggest(trial)
        storage.record_heartbeat(trial_id(trial))
        time.sleep(load.sleep_s * (1 + load.jitter * pauses.uniform(-1, 1)))
        begin = time.perf_counter()
        study.tell(trial, value)
        tell_ms.append(1000 * (time.perf_counter() - begin))
    queue.put((reserve_ms, poll_ms, tell_ms, first, time.time()))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def run(url: str, workers: int, load: Load) -> dict[str, object]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    n_trials = load.prefill + load.trials_per_worker * workers
    storage = _storage(url)
    _prefill(optuna.create_study(study_name=name, storage=storage), load.prefill)
    context = mp.get_context("spawn")
    queue = context.Queue()
    start = context.Barrier(workers)
    procs = [
        context.Process(target=_worker, args=(url, name, n_trials, load, i, start, queue))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    # From the start (every worker imported and connected) to the last worker's exit.
    elapsed = max(r[4] for r in results) - min(r[3] for r in results)
    study = optuna.load_study(study_name=name, storage=storage)
    state = budget_state(study, n_trials)
    reserve = [v for r in results for v in r[0]]
    # Each worker's first reservation meets all the others at the same instant.
    steady = [v for r in results for v in r[0][1:]]
    polls = [v for r in results for v in r[1]]
    tell = [v for r in results for v in r[2]]
    return {
        "backend": make_url(url).get_backend_name(),
        "workers": workers,
        "sampler": load.sampler,
        "jitter": load.jitter,
        "prefill": load.prefill,
        "trials": state.finished - load.prefill,
        "exact_budget": state.finished == n_trials and len(study.get_trials()) == n_trials,
        "reserve_ms_p50": _percentile(reserve, 0.50),
        "reserve_ms_p99": _percentile(reserve, 0.99),
        "reserve_ms_p99_steady": _percentile(steady, 0.99),
        "first_reserve_ms_max": round(max(r[0][0] for r in results), 2),
        "polls": len(polls),
        "poll_ms_p50": _percentile(polls, 0.50),
        "poll_ms_p99": _percentile(polls, 0.99),
        "tell_ms_p50": _percentile(tell, 0.50),
        "tell_ms_p99": _percentile(tell, 0.99),
        "trials_per_s": round((state.finished - load.prefill) / elapsed, 1),
        "ideal_trials_per_s": round(workers / load.sleep_s, 1),
        "mean_reserve_ms": round(statistics.fmean(reserve), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", help="PostgreSQL server URL (a scratch database is created)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 4, 16])
    parser.add_argument("--sampler", choices=["tpe", "random"], default=Load.sampler)
    parser.add_argument("--sleep-s", type=float, default=Load.sleep_s, help="pause per trial")
    parser.add_argument(
        "--jitter",
        type=float,
        default=Load.jitter,
        help="spread of the pause, as a fraction of it (0: every worker in lockstep)",
    )
    parser.add_argument(
        "--poll-s", type=float, default=Load.poll_s, help="idle worker's polling period"
    )
    parser.add_argument("--trials-per-worker", type=int, default=Load.trials_per_worker)
    parser.add_argument("--prefill", type=int, default=Load.prefill, help="finished trials first")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()
    load = Load(
        args.sampler, args.sleep_s, args.jitter, args.poll_s, args.trials_per_worker, args.prefill
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in [] if args.no_sqlite else args.workers:
            rows.append(run(f"sqlite:///{tmp}/bench-{workers}.db", workers, load))
    if args.postgres:
        server = make_url(normalize_url(args.postgres))
        database = f"finscale_bench_{uuid.uuid4().hex[:8]}"
        admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
        try:
            url = server.set(database=database).render_as_string(hide_password=False)
            for workers in args.workers:
                rows.append(run(url, workers, load))
        finally:
            with admin.connect() as c:
                c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    settings = {"sleep_s": load.sleep_s, "trials_per_worker": load.trials_per_worker}
    print(json.dumps({**settings, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
