"""How soon a worker holds its first trial (prints JSON).

A worker joins an existing study (as a Job's pods and `finscale run`'s processes mostly do) on
SQLite, with the sample dataset: each run is a fresh process, timed from just before it is
started to the moment the first reservation returns a trial (the worker then loads torch and
builds its objective; here a stand-in that stops the process, so the trial is handed back and the
study stays as it was).
Reported: the median and the extremes over `--runs` processes, and each process's import time
of `finscale.hpo.worker`.

    python benchmarks/bench_worker_start.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

SPEC: dict[str, Any] = {
    "name": "bench-start",
    "budgets": ["30K"],
    "horizons": [1],
    "data": {"dataset": "GSPC.dataset.a25"},
    "split": {"mode": "chronological", "val_start": "2015-01-01", "test_start": "2017-01-01"},
    "architecture": {
        "d_model": [16, 24, 32],
        "n_layers": [1, 2],
        "n_heads": [2, 4],
        "d_ff_ratio": [2],
        "tolerance": 0.6,
    },
    "training": {"epochs": 1, "batch_size": 512, "precision": "fp32"},
    "pruner": {"type": "none"},
    "n_trials": 1000,
    "workers": 1,
    "resources": {"gpus": 0, "memory_request": "2Gi", "memory_limit": "2Gi"},
}

# The worker process: imports, joins, reserves (the moment a reservation returns a trial is
# noted); the objective factory, called next, reports it and stops the worker.
CHILD = """
import sys, time
started = time.time()
import finscale.hpo.worker as worker
imported = time.time()
from pathlib import Path
from finscale.hpo import trial_budget
from finscale.settings import Settings
from finscale.spec import load_study

reserved_at = []
reserve = trial_budget.reserve_trial

def noting(*args, **kwargs):
    trial, state = reserve(*args, **kwargs)
    if trial is not None and not reserved_at:
        reserved_at.append(time.time())
    return trial, state

trial_budget.reserve_trial = noting

class Reserved(BaseException):
    pass

def stop(*_args, **_kwargs):
    print(f"{imported - started} {reserved_at[0]}", flush=True)
    raise Reserved

folder = Path(sys.argv[1])
settings = Settings(
    storage_url=f"sqlite:///{folder / 'studies.db'}", data_dir=folder / "data",
    runs_dir=folder / "runs", device="cpu",
)
try:
    worker.run_worker(
        load_study(folder / "spec.yaml"), settings, install_signal_handlers=False,
        make_objective=stop,
    )
except Reserved:
    pass
"""


def set_up(folder: Path) -> None:
    """The sample dataset and the study, created once: the timed workers join it."""
    from finscale.data import build_datasets, load_inputs
    from finscale.hpo.worker import join_study
    from finscale.settings import Settings
    from finscale.spec import load_study

    build_datasets(load_inputs("sample", kinds=["a25"]), data_dir=folder / "data")
    (folder / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    settings = Settings(
        storage_url=f"sqlite:///{folder / 'studies.db'}",
        data_dir=folder / "data",
        runs_dir=folder / "runs",
        device="cpu",
    )
    join_study(load_study(folder / "spec.yaml"), settings).storage.remove_session()


def time_one(folder: Path) -> tuple[float, float]:
    """(seconds from the process's start to its first reservation, its import time)."""
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, check=True
    ).stdout.split()
    import_s, reserved_at = float(out[0]), float(out[1])
    return reserved_at - started, import_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="worker processes timed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        set_up(folder)
        times = [time_one(folder) for _ in range(args.runs)]
    to_reservation = [t for t, _ in times]
    imports = [i for _, i in times]
    print(
        json.dumps(
            {
                "runs": args.runs,
                "first_reservation_s": {
                    "median": round(statistics.median(to_reservation), 3),
                    "min": round(min(to_reservation), 3),
                    "max": round(max(to_reservation), 3),
                },
                "import_worker_s": {
                    "median": round(statistics.median(imports), 3),
                    "min": round(min(imports), 3),
                    "max": round(max(imports), 3),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
