"""Study storage under load: ask/tell latency and trials per second (prints JSON).

W worker processes share one study and run trials of a sleep objective (a fixed pause stands in
for training) through finscale's own path: `reserve_trial` (the budget lock, the count, the
trial's creation), the sampler the workers use (multivariate TPE with constant liar, seeded per
worker, over an architecture and three training parameters), a heartbeat, `tell`. Reported per
backend and worker count: p50 and p99 of the reserve (from the call to the started trial,
sampling excluded) and tell latencies, and finished trials per second from the first
reservation to the last exit. The workers share this machine's cores, so many workers measure
CPU contention as much as the database.

    python benchmarks/bench_storage.py --postgres postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

from finscale.hpo._optuna import trial_id
from finscale.hpo.budget import budget_state, reserve_trial
from finscale.hpo.storage import normalize_url, open_storage
from finscale.spec import SamplerSpec

TRIALS_PER_WORKER = 25
SLEEP_S = 0.05


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
    arch = trial.suggest_categorical("arch", [f"d{d}-l{n}" for d in (64, 128) for n in (2, 4, 8)])
    lr = trial.suggest_float("lr", 1e-5, 1e-2, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
    return len(arch) * 0.01 + abs(lr - 1e-3) + dropout * 0.1 + weight_decay


def _worker(url: str, name: str, n_trials: int, sampler: str, index: int, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    storage = _storage(url)
    study = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(sampler, index))
    reserve_ms, tell_ms = [], []
    first = time.time()
    while True:
        start = time.perf_counter()
        trial, state = reserve_trial(study, storage, n_trials=n_trials)
        reserve_ms.append(1000 * (time.perf_counter() - start))
        if trial is None:
            if state.done:
                break
            time.sleep(0.01)
            continue
        value = _suggest(trial)
        storage.record_heartbeat(trial_id(trial))
        time.sleep(SLEEP_S)
        start = time.perf_counter()
        study.tell(trial, value)
        tell_ms.append(1000 * (time.perf_counter() - start))
    queue.put((reserve_ms, tell_ms, first, time.time()))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def run(url: str, workers: int, sampler: str) -> dict[str, object]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    n_trials = TRIALS_PER_WORKER * workers
    storage = _storage(url)
    optuna.create_study(study_name=name, storage=storage)
    context = mp.get_context("spawn")
    queue = context.Queue()
    procs = [
        context.Process(target=_worker, args=(url, name, n_trials, sampler, i, queue))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    # From the first worker's first reservation to the last worker's exit: process start-up
    # (imports) is not the storage's cost.
    elapsed = max(r[3] for r in results) - min(r[2] for r in results)
    study = optuna.load_study(study_name=name, storage=storage)
    state = budget_state(study, n_trials)
    reserve = [v for r in results for v in r[0]]
    tell = [v for r in results for v in r[1]]
    return {
        "backend": make_url(url).get_backend_name(),
        "workers": workers,
        "sampler": sampler,
        "trials": state.finished,
        "exact_budget": state.finished == n_trials and len(study.get_trials()) == n_trials,
        "reserve_ms_p50": _percentile(reserve, 0.50),
        "reserve_ms_p99": _percentile(reserve, 0.99),
        "tell_ms_p50": _percentile(tell, 0.50),
        "tell_ms_p99": _percentile(tell, 0.99),
        "trials_per_s": round(state.finished / elapsed, 1),
        "ideal_trials_per_s": round(workers / SLEEP_S, 1),
        "mean_reserve_ms": round(statistics.fmean(reserve), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", help="PostgreSQL server URL (a scratch database is created)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 4, 16])
    parser.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in [] if args.no_sqlite else args.workers:
            rows.append(run(f"sqlite:///{tmp}/bench-{workers}.db", workers, args.sampler))
    if args.postgres:
        server = make_url(normalize_url(args.postgres))
        database = f"finscale_bench_{uuid.uuid4().hex[:8]}"
        admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
        try:
            url = server.set(database=database).render_as_string(hide_password=False)
            for workers in args.workers:
                rows.append(run(url, workers, args.sampler))
        finally:
            with admin.connect() as c:
                c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    print(
        json.dumps(
            {"sleep_s": SLEEP_S, "trials_per_worker": TRIALS_PER_WORKER, "results": rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
