"""The rendered Job's runtime contract, without a cluster: its container's command, args and env
run as Kubernetes would run them (the ConfigMap mounted as files, the Secret as a group-readable
password file, JOB_COMPLETION_INDEX set), one process per completion index, against the test
PostgreSQL. This is the validation experiment end to end: the study ends with exactly its 3
trials, their stored parameters alone rebuild the models they trained, their metrics are stored,
and `finscale report` turns the storage into its report.

Then as the image runs it: as uid 10001 (not root), HOME and the working directory on the pod's
/tmp volume, reading data that another user built and that nobody may write. What fails there
fails in a pod."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import torch
import yaml
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from finscale.data import build_datasets, load_inputs
from finscale.hpo.inputs import model_config
from finscale.hpo.storage import open_storage
from finscale.hpo.trial_budget import TrialBudgetState, budget_state
from finscale.k8s.render import IMAGE_DATA_DIR, UID, render
from finscale.model import PatchTST, parse_arch_id
from finscale.spec import StudySpec
from tests.conftest import REPO


def _mount(volume: dict[str, Any], config_map: dict[str, Any], root: Path, login: str) -> Path:
    """A local folder standing in for a pod volume; `login` is the pgpass line's `user:password`."""
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
            (path / item["path"]).write_text(f"*:*:*:{login}\n")
            (path / item["path"]).chmod(
                volume["secret"]["defaultMode"]
            )  # 0440, as the kubelet does
    return path


def _pod(
    rendered: str, root: Path, postgres_url: str, image_data: Path
) -> tuple[dict[str, Any], dict[str, Any], list[str], dict[str, str], dict[str, Path]]:
    """The ConfigMap, the Job, and the worker container's command and environment, with every
    mount path replaced by a local folder under `root` (the image's data by `image_data`) and the
    storage URL pointed at the test database (still without a password: libpq reads the mounted
    password file)."""
    config_map, job = [d for d in yaml.safe_load_all(rendered) if d]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    test_url = make_url(postgres_url)
    login = f"{test_url.username}:{test_url.password or 'not-needed-by-trust-auth'}"
    paths = {
        m["mountPath"]: _mount(volumes[m["name"]], config_map, root, login)
        for m in container["volumeMounts"]
    }
    paths[IMAGE_DATA_DIR] = image_data  # the image's baked sample data: built the same way

    def local(value: str) -> str:
        for mounted, folder in sorted(paths.items(), key=lambda kv: -len(kv[0])):
            if value == mounted or value.startswith(mounted + "/"):
                return str(folder) + value[len(mounted) :]
        return value

    rendered_url = make_url(
        next(e["value"] for e in container["env"] if e["name"] == "FINSCALE_STORAGE_URL")
    )
    assert rendered_url.password is None
    env = {e["name"]: local(e["value"]) for e in container["env"] if "value" in e}
    # what the kubelet fills in from the downward API (the node's name)
    env |= {
        e["name"]: "emulated-node" for e in container["env"] if "fieldRef" in e.get("valueFrom", {})
    }
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
    if "PYTHONPATH" in os.environ:  # a checkout run from its sources: the pod's code is this one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    command = [*container["command"], *[local(a) for a in container["args"]]]
    return config_map, job, command, env, paths


@pytest.mark.slow
def test_the_rendered_validation_job_runs_its_study_and_the_report_reads_it(
    postgres_url: str, data_dir: Path, tmp_path: Path
) -> None:
    config_map, job, command, env, _ = _pod(
        (REPO / "jobs" / "validation" / "validation-50k-h1.yaml").read_text(),
        tmp_path / "volumes",
        postgres_url,
        data_dir,
    )
    assert Path(env["PGPASSFILE"]).stat().st_mode & 0o777 == 0o440

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
    assert budget_state(study, n_trials) == TrialBudgetState(
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


# --- as the image runs it ---

OTHER_UID = UID + 1  # the owner of the image's data (root builds it; anyone but the worker)


def _privileged() -> list[str]:
    """The prefix that runs a command as root: none for root, `sudo -n` where it needs no
    password (a CI runner); otherwise this machine cannot switch users and the test says so."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to run a command as another user")
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"]).returncode == 0:
        return ["sudo", "-n"]
    pytest.skip("running as the image's uid needs root or password-less sudo")


def _chown(path: Path, owner: str) -> None:
    subprocess.run([*_privileged(), "chown", "-R", owner, str(path)], check=True)


@pytest.fixture
def pod_root() -> Iterator[Path]:
    """A folder every user may traverse, for the pod's volumes (pytest's own is private)."""
    root = Path(tempfile.mkdtemp(prefix="finscale-pod-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        _chown(root, f"{os.geteuid()}:{os.getegid()}")
        for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            folder.chmod(0o755)
        shutil.rmtree(root)


@dataclass(frozen=True)
class _ImageUser:
    """Runs commands as uid/gid 10001 and no other group, with exactly the environment given (as
    a container starts), on a Python that uid can execute."""

    python: str
    prefix: list[str]

    def run(
        self, command: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        if command[0] == "finscale":  # the image's entry point, on this Python
            command = [self.python, "-m", "finscale", *command[1:]]
        user = [f"--reuid={UID}", f"--regid={UID}", "--clear-groups"]
        values = [f"{k}={v}" for k, v in env.items()]
        return subprocess.run(
            [*self.prefix, "setpriv", *user, "--", "env", "-i", *values, *command],
            cwd=cwd, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


def _python_for(user: _ImageUser, root: Path) -> str:
    """This interpreter where uid 10001 can run it. Otherwise (a Python under root's private home,
    as pyenv installs it) a virtual environment on a world-readable Python of the same minor
    version that sees this one's packages: the data, HOME and working directory under test stay
    the image's."""
    probe = ["-c", "import finscale, torch"]
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    if user.run([sys.executable, *probe], env=env, cwd=root).returncode == 0:
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for base in (Path("/usr/bin") / version, Path("/usr/local/bin") / version):
        if base.is_file() and user.run([str(base), "-c", ""], env=env, cwd=root).returncode == 0:
            venv = root / "python"
            subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True)
            (venv / "lib" / version / "site-packages" / "_tested_env.pth").write_text(
                f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
            )
            for path in [venv, *venv.rglob("*")]:
                if not path.is_symlink():
                    path.chmod(0o755 if path.is_dir() else 0o644)
            if user.run([str(venv / "bin" / "python"), *probe], env=env, cwd=root).returncode == 0:
                return str(venv / "bin" / "python")
    pytest.fail(
        f"uid {UID} can run neither {sys.executable} nor a {version} beside it: make the "
        "interpreter, the checkout and its virtual environment readable by every user"
    )


@pytest.fixture
def image_user(pod_root: Path) -> _ImageUser:
    user = _ImageUser(python=sys.executable, prefix=_privileged())
    return _ImageUser(python=_python_for(user, pod_root), prefix=user.prefix)


@pytest.mark.slow
def test_the_worker_and_data_verify_run_as_the_image_user_on_data_it_does_not_own(
    postgres_url: str,
    make_spec: Callable[..., Path],
    pod_root: Path,
    image_user: _ImageUser,
) -> None:
    # given the sample data built by another user (root, in the image's build stage) into a
    # folder the build creates, then owned by someone else and read-only, as /opt/finscale/data
    # is in the image
    image_data = pod_root / "opt" / "finscale" / "data"
    build_datasets(load_inputs("sample", kinds=["a25"]), data_dir=image_data)
    for path in [image_data, *image_data.rglob("*")]:
        path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
    _chown(image_data, f"{OTHER_UID}:{OTHER_UID}")
    # and a small study's rendered Job, its volumes as the kubelet makes them: the password file
    # root's with the pod's fsGroup, /tmp an empty folder everyone may write
    rendered = render(make_spec())["it/it-30k-h1.yaml"]
    _config_map, _job, command, env, paths = _pod(rendered, pod_root, postgres_url, image_data)
    _chown(paths["/etc/finscale/secrets"], f"0:{UID}")
    pod_tmp = paths["/tmp"]
    pod_tmp.chmod(0o777)
    env = {**env, "TMPDIR": str(pod_tmp), "OMP_NUM_THREADS": "1"}
    assert env["HOME"] == str(pod_tmp)  # HOME=/tmp, as rendered; the image's WORKDIR is /tmp
    assert env["FINSCALE_DATA_DIR"] == str(image_data)
    # when the data check (as the wait-for-data init container runs it) and the worker run as
    # uid 10001
    verify = image_user.run(
        [command[0], "data", "verify", "--dataset", "GSPC.dataset.a25"], env=env, cwd=pod_tmp
    )
    worker = image_user.run(command, env={**env, "JOB_COMPLETION_INDEX": "0"}, cwd=pod_tmp)

    # then both succeed, and the study has its trials
    assert verify.returncode == 0, verify.stdout + verify.stderr[-3000:]
    assert "GSPC.dataset.a25" in verify.stdout and "matches" in verify.stdout
    assert worker.returncode == 0, worker.stderr[-3000:]
    storage = open_storage(
        postgres_url, heartbeat_interval_s=30, heartbeat_grace_s=120, max_retries=0
    )
    study = optuna.load_study(study_name="it-30k-h1", storage=storage)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 3
    assert not any(p.stat().st_uid == UID for p in image_data.rglob("*"))  # nothing written there
