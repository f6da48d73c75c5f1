"""The rendered Job's runtime contract, without a cluster: its container's command, args and env
run as Kubernetes would run them (the ConfigMap mounted as files, the Secret as a group-readable
password file, JOB_COMPLETION_INDEX set), one process per completion index, against the test
PostgreSQL. This is the validation experiment end to end: the study ends with exactly its 3
trials, their stored parameters alone rebuild the models they trained, their metrics are stored,
and `finscale report` turns the storage into its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import torch
import yaml
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from finscale.hpo.budget import BudgetState, budget_state
from finscale.hpo.inputs import model_config
from finscale.hpo.storage import open_storage
from finscale.k8s.render import IMAGE_DATA_DIR
from finscale.model import PatchTST, parse_arch_id
from finscale.spec import StudySpec
from tests.conftest import REPO


def _mount(volume: dict[str, Any], config_map: dict[str, Any], root: Path, password: str) -> Path:
    """A local folder standing in for a pod volume."""
    path = root / volume["name"]
    path.mkdir(parents=True)
    if "configMap" in volume:
        assert volume["configMap"]["name"] == config_map["metadata"]["name"]
        for name, text in config_map["data"].items():
            (path / name).write_text(text)
            (path / name).chmod(volume["configMap"]["defaultMode"])
    elif "secret" in volume:
        for item in volume["secret"]["items"]:
            assert item["key"] == "pgpass"
            (path / item["path"]).write_text(f"*:*:*:postgres:{password}\n")
            (path / item["path"]).chmod(
                volume["secret"]["defaultMode"]
            )  # 0440, as the kubelet does
    return path


@pytest.mark.slow
def test_the_rendered_validation_job_runs_its_study_and_the_report_reads_it(
    postgres_url: str, data_dir: Path, tmp_path: Path
) -> None:
    config_map, job = [
        d for d in yaml.safe_load_all((REPO / "jobs" / "validation-50k-h1.yaml").read_text()) if d
    ]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    paths = {
        m["mountPath"]: _mount(
            volumes[m["name"]], config_map, tmp_path / "volumes", "not-needed-by-trust-auth"
        )
        for m in container["volumeMounts"]
    }
    paths[IMAGE_DATA_DIR] = data_dir  # the image's baked sample data: built the same way

    def local(value: str) -> str:
        for mounted, folder in sorted(paths.items(), key=lambda kv: -len(kv[0])):
            if value == mounted or value.startswith(mounted + "/"):
                return str(folder) + value[len(mounted) :]
        return value

    # The in-cluster storage URL, pointed at the test database (still without a password).
    rendered_url = make_url(
        next(e["value"] for e in container["env"] if e["name"] == "FINSCALE_STORAGE_URL")
    )
    assert rendered_url.password is None
    test_url = make_url(postgres_url)
    env = {e["name"]: local(e["value"]) for e in container["env"]}
    env["FINSCALE_STORAGE_URL"] = rendered_url.set(
        host=test_url.host,
        port=test_url.port,
        database=test_url.database,
        username=test_url.username,
    ).render_as_string(hide_password=False)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    if "PYTHONPATH" in os.environ:  # a worktree's code, not the installed copy, is under test
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    env["FINSCALE_POLL_INTERVAL_S"] = "0.5"  # only to finish sooner
    assert Path(env["PGPASSFILE"]).stat().st_mode & 0o777 == 0o440

    command = [*container["command"], *[local(a) for a in container["args"]]]
    assert command[:2] == ["finscale", "worker"]
    processes = [
        subprocess.Popen(
            command,
            env={**env, "JOB_COMPLETION_INDEX": str(index)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for index in range(job["spec"]["completions"])
    ]
    assert len(processes) == job["spec"]["parallelism"] == 2
    for process in processes:
        _out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err.decode()[-3000:]
        assert b"group or world access" not in err  # libpq used the private copy of the file

    storage = open_storage(
        postgres_url, heartbeat_interval_s=30, heartbeat_grace_s=120, max_retries=0
    )
    study = optuna.load_study(study_name="validation-50k-h1", storage=storage)
    n_trials = yaml.safe_load(config_map["data"]["study.yaml"])["n_trials"]
    assert budget_state(study, n_trials) == BudgetState(
        n_trials=3, finished=3, running=0, waiting=0
    )
    trials = study.get_trials()
    assert {t.user_attrs["worker"] for t in trials} <= {0, 1}
    assert all(t.state == TrialState.COMPLETE for t in trials)

    # The stored parameters alone rebuild each trial's model, to the parameter.
    spec = StudySpec.model_validate(yaml.safe_load(config_map["data"]["study.yaml"]))
    for t in trials:
        arch = parse_arch_id(t.params["arch"])
        assert arch.dims() == {k: t.user_attrs[k] for k in arch.dims()}
        with torch.device("meta"):
            model = PatchTST(model_config(spec, arch, t.params, num_features=25))
        assert sum(p.numel() for p in model.parameters()) == t.user_attrs["param_count"]
        for metric in ("val_bce", "val_bce_se", "val_auc", "val_accuracy", "val_pred_std"):
            assert isinstance(t.user_attrs[metric], float), metric
        assert t.value == t.user_attrs["val_bce"]
        assert t.user_attrs["epochs_run"] >= 1 and t.user_attrs["wall_time_s"] > 0

    # The report, from the storage alone.
    out = tmp_path / "report"
    report_env = {**os.environ, "FINSCALE_STORAGE_URL": postgres_url}
    report_env.pop("FINSCALE_RUNS_DIR", None)
    result = subprocess.run(
        [sys.executable, "-m", "finscale", "report", "--out", str(out), "--resamples", "200"],
        env=report_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "horizon 1: no fit" in result.stdout  # one budget: no power law, and it says so
    frame = pd.read_csv(out / "trials.csv")
    assert sorted(frame["trial"]) == [0, 1, 2]
    assert (frame["state"] == "COMPLETE").all() and frame["val_bce"].notna().all()
    best = json.loads((out / "best.json").read_text())["validation-50k-h1"]
    assert best["best"]["value"] == study.best_value
    assert best["best"]["params"] == study.best_trial.params
    assert best["partial"] is False and best["finished"] == 3
    summary = (out / "summary.md").read_text()
    assert "validation-50k-h1" in summary and "| done |" in summary
    assert (out / "history-validation-50k-h1.png").stat().st_size > 0
