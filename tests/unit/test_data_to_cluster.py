"""Every dataset reaches the cluster as it was validated: `finscale render` ships the raw
snapshots a dataset was built from locally, the rendered data Job rebuilds it from exactly those
bars (run here, as the pod would run it) and refuses any other sha256, and the studies pin the
one built locally. A download on the cluster is an explicit choice."""

from __future__ import annotations

import base64
import gzip
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from finscale.data import build_datasets, load_inputs, read_manifest
from finscale.errors import DataError
from finscale.k8s import render, shipping, write
from finscale.k8s.options import SHIPPED_DIR
from tests.conftest import REPO, SAMPLE_DIR, run_cli
from tests.unit.test_delivery import KUBERNETES_VERSIONS, _tool

NASDAQ = REPO / "configs" / "experiments" / "nasdaq-scaling.yaml"
DATA_JOB = "data/finscale-data-ixic.yaml"


def _spec(tmp_path: Path, dataset: str) -> Path:
    """The nasdaq-scaling design on `dataset`, one budget."""
    text = NASDAQ.read_text().replace("dataset: IXIC.dataset.a25", f"dataset: {dataset}")
    text = text.replace("budgets: [50K, 200K, 800K]", "budgets: [50K]")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def _sample_frame(name: str) -> pd.DataFrame:
    with gzip.open(SAMPLE_DIR / f"{name}.csv.gz", "rt") as f:
        return pd.read_csv(f)


def _build(source: str, data_dir: Path, tmp_path: Path, kinds: list[str]) -> None:
    """IXIC's datasets in `data_dir`, from the sample, from a user's CSV with the ticker as
    given (`^IXIC`), or as a yfinance build (the sample's bars in Yahoo's place: no network)."""
    if source == "sample":
        inputs = load_inputs("sample", ticker="IXIC", kinds=kinds)
    elif source == "csv":
        bars = tmp_path / "nasdaq.csv"
        _sample_frame("IXIC").to_csv(bars, index=False)
        inputs = load_inputs("csv", ticker="^IXIC", csv_path=bars, kinds=kinds)
    else:
        frames = {"^IXIC": _sample_frame("IXIC"), "^VIX": _sample_frame("VIX")}
        inputs = load_inputs("yfinance", ticker="^IXIC", kinds=kinds, history=frames.__getitem__)
    build_datasets(inputs, data_dir=data_dir)


def _docs(text: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(text) if d}


def _run_data_job(
    text: str, tmp_path: Path, env: pytest.MonkeyPatch, capsys: Any
) -> tuple[int, str, str, Path]:
    """The data Job's container, run here: the ConfigMap's files written where the pod would
    see them (its mount path mapped to a temporary folder through --snapshot-dir), a fresh
    data directory as the volume."""
    docs = _docs(text)
    mounted = tmp_path / "mounted"
    mounted.mkdir(exist_ok=True)
    for name, data in docs["ConfigMap"]["binaryData"].items():
        (mounted / name).write_bytes(base64.b64decode(data))
    (container,) = docs["Job"]["spec"]["template"]["spec"]["containers"]
    args = [str(mounted) if a == SHIPPED_DIR else a for a in container["args"]]
    volume = tmp_path / "volume"
    env.setenv("FINSCALE_DATA_DIR", str(volume))
    return (*run_cli(args, capsys), volume)


@pytest.mark.parametrize(
    ("source", "kind", "shipped"),
    [
        ("sample", "a25c", {"IXIC.ohlcv.daily.parquet", "VIX.close.daily.parquet"}),
        ("csv", "a25", {"IXIC.ohlcv.daily.parquet"}),
        ("yfinance", "a25", {"IXIC.ohlcv.daily.parquet"}),
    ],
)
def test_the_data_job_rebuilds_the_dataset_validated_locally(
    source: str,
    kind: str,
    shipped: set[str],
    tmp_path: Path,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given IXIC built locally from the source, with the ticker as given
    local = tmp_path / "local"
    _build(source, local, tmp_path, [kind])
    dataset = f"IXIC.dataset.{kind}"
    validated = read_manifest(local).latest(dataset)
    assert validated is not None
    # when the spec is rendered (the default: ship what was built here)
    files = render(_spec(tmp_path, dataset), data_dir=local)
    # then the study ConfigMap and the wait-for-data init container pin that version
    study = _docs(files["nasdaq-scaling/nasdaq-scaling-50k-h1.yaml"])
    spec = yaml.safe_load(study["ConfigMap"]["data"]["study.yaml"])
    assert spec["data"]["sha256"] == validated.sha256
    (wait,) = study["Job"]["spec"]["template"]["spec"]["initContainers"]
    assert wait["args"][-2:] == ["--sha256", validated.sha256]
    # and the data Job ships the raw snapshots, with the ticker exactly as given
    docs = _docs(files[DATA_JOB])
    assert set(docs["ConfigMap"]["binaryData"]) == shipped
    args = docs["Job"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--ticker") + 1] == "^IXIC"
    # when its command runs against a fresh volume
    code, out, err, volume = _run_data_job(files[DATA_JOB], tmp_path, env, capsys)
    # then it built the very dataset validated locally, and recorded the symbol as given
    assert code == 0, err
    built = read_manifest(volume).latest(dataset)
    assert built is not None and built.sha256 == validated.sha256
    raw = read_manifest(volume).latest("IXIC.ohlcv.daily")
    assert raw is not None and raw.inputs[0].symbol == "^IXIC"
    # and the study's wait-for-data init container, run against that volume, finds its version
    code, out, err = run_cli(wait["args"], capsys)
    assert code == 0 and f"{dataset} {validated.sha256} matches" in " ".join(out.split()), err
    # and applied again, it builds nothing
    code, out, err, _ = _run_data_job(files[DATA_JOB], tmp_path, env, capsys)
    assert code == 0 and "nothing to do" in out + err


def test_a_tampered_configmap_makes_the_data_job_exit_2_naming_both_digests(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a rendered data Job whose shipped bars have one byte changed
    local = tmp_path / "local"
    _build("sample", local, tmp_path, ["a25"])
    raw = read_manifest(local).latest("IXIC.ohlcv.daily")
    assert raw is not None
    files = render(_spec(tmp_path, "IXIC.dataset.a25"), data_dir=local)
    docs = list(yaml.safe_load_all(files[DATA_JOB]))
    config_map = next(d for d in docs if d and d["kind"] == "ConfigMap")
    bars = bytearray(base64.b64decode(config_map["binaryData"]["IXIC.ohlcv.daily.parquet"]))
    bars[len(bars) // 2] ^= 0x01
    config_map["binaryData"]["IXIC.ohlcv.daily.parquet"] = base64.b64encode(bars).decode()
    # when the data Job runs
    code, _, err, volume = _run_data_job(yaml.safe_dump_all(docs), tmp_path, env, capsys)
    # then it refuses with exit 2, naming the dataset and both digests, and builds nothing
    said = " ".join(err.split())
    assert code == 2, err
    assert "the bars of IXIC.dataset.a25 have sha256" in said
    assert hashlib.sha256(bars).hexdigest() in said and raw.sha256 in said
    assert read_manifest(volume).entries == []


def test_a_build_that_makes_another_version_than_expected_writes_nothing(
    tmp_path: Path,
) -> None:
    # given the sample's IXIC bars and a digest the build will not reproduce
    inputs = load_inputs("sample", ticker="IXIC", kinds=["a25"])
    wanted = "0" * 64
    # when they are built with that expectation
    with pytest.raises(DataError) as refused:
        build_datasets(inputs, data_dir=tmp_path / "volume", expect={"IXIC.dataset.a25": wanted})
    # then the message names the dataset and both digests, and nothing was written
    said = str(refused.value)
    assert said.startswith("IXIC.dataset.a25: the rebuilt dataset has sha256 ")
    assert f"not the {wanted} that was validated" in said
    assert read_manifest(tmp_path / "volume").entries == []
    assert not list((tmp_path / "volume").rglob("*.parquet"))


def test_a_dataset_neither_in_the_image_nor_built_locally_is_refused_with_both_ways_out(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given an empty data directory
    empty = tmp_path / "data"
    env.setenv("FINSCALE_DATA_DIR", str(empty))
    spec = _spec(tmp_path, "IXIC.dataset.a25")
    # when the spec is rendered without a choice
    code, _, err = run_cli(["render", str(spec), "--out", str(tmp_path / "jobs")], capsys)
    # then it exits 2 naming the dataset, the data directory and both ways out; nothing written
    said = " ".join(err.split())
    assert code == 2, err
    assert "dataset IXIC.dataset.a25 is not in the image and not built in" in said
    assert str(empty) in said.replace(" ", "")  # a long path may wrap
    assert "finscale data build" in said and "--data-from download" in said
    assert not (tmp_path / "jobs").exists()
    with pytest.raises(DataError, match=r"IXIC\.dataset\.a25 is not in the image"):
        render(spec, data_dir=empty)


def test_the_explicit_download_renders_yfinance_with_the_ticker_as_given(tmp_path: Path) -> None:
    files = render(_spec(tmp_path, "IXIC.dataset.a25"), data_from="download")
    (job,) = _docs(files[DATA_JOB]).values()
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["data", "build", "--source", "yfinance", "--ticker", "^IXIC", "--if-missing"]
    study = _docs(files["nasdaq-scaling/nasdaq-scaling-50k-h1.yaml"])
    assert yaml.safe_load(study["ConfigMap"]["data"]["study.yaml"])["data"]["sha256"] is None


def test_shipped_bars_too_large_for_a_configmap_are_refused_naming_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "local"
    _build("sample", local, tmp_path, ["a25"])
    monkeypatch.setattr(shipping, "SHIP_LIMIT_BYTES", 100_000)
    with pytest.raises(DataError, match=r"dataset IXIC.dataset.a25: its raw snapshots") as e:
        render(_spec(tmp_path, "IXIC.dataset.a25"), data_dir=local)
    assert "above the 100000 render ships" in str(e.value)
    assert "--data-from download" in str(e.value)


def test_a_queued_spec_queues_its_data_job_on_the_cpu_image(tmp_path: Path) -> None:
    # given a spec on the GPU image that names a Kueue queue, its dataset built locally
    local = tmp_path / "local"
    _build("sample", local, tmp_path, ["a25"])
    spec = _spec(tmp_path, "IXIC.dataset.a25")
    text = spec.read_text().replace("resources:\n", "resources:\n  queue: research\n")
    spec.write_text(text.replace("finscale-worker-cpu:0.1.0", "finscale-worker:0.1.0"))
    # when it is rendered
    job = _docs(render(spec, data_dir=local)[DATA_JOB])["Job"]
    # then the data Job is queued (suspended until Kueue admits it) and runs the CPU image
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "research"
    assert job["spec"]["suspend"] is True
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/finscale/finscale-worker-cpu:0.1.0"


def test_render_cli_lists_the_data_choices(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"COLUMNS": "200"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        code, out, _ = run_cli(["render", "--help"], capsys)
    assert code == 0 and "<local|download>" in out and "[default: local]" in out


def test_the_shipped_files_are_the_raw_snapshots_byte_for_byte(tmp_path: Path) -> None:
    local = tmp_path / "local"
    _build("sample", local, tmp_path, ["a25"])
    raw = read_manifest(local).latest("IXIC.ohlcv.daily")
    assert raw is not None
    files = render(_spec(tmp_path, "IXIC.dataset.a25"), data_dir=local)
    shipped = _docs(files[DATA_JOB])["ConfigMap"]["binaryData"]["IXIC.ohlcv.daily.parquet"]
    assert base64.b64decode(shipped) == (local / raw.path).read_bytes()


@pytest.mark.parametrize("version", [KUBERNETES_VERSIONS[0], KUBERNETES_VERSIONS[-1]])
def test_a_shipped_data_job_validates_strictly(version: str, tmp_path: Path) -> None:
    # given IXIC built locally and the spec rendered, queued, with its bars shipped
    local = tmp_path / "local"
    _build("sample", local, tmp_path, ["a25c"])
    spec = _spec(tmp_path, "IXIC.dataset.a25c")
    spec.write_text(spec.read_text().replace("resources:\n", "resources:\n  queue: research\n"))
    out = tmp_path / "jobs"
    write(render(spec, data_dir=local), out)
    manifests = sorted(str(p) for p in out.rglob("*.yaml") if p.name != "kustomization.yaml")
    # then every object passes the Kubernetes schemas, strictly, and stays under 1 MiB
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, *manifests],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / DATA_JOB).stat().st_size < shipping.OBJECT_LIMIT_BYTES


def test_shipping_reads_the_manifest_without_pandas_torch_or_talib(tmp_path: Path) -> None:
    local = tmp_path / "local"
    _build("sample", local, tmp_path, ["a25"])
    code = (
        "import sys; from pathlib import Path; from finscale.k8s import render\n"
        f"render(Path({str(_spec(tmp_path, 'IXIC.dataset.a25'))!r}), data_dir=Path({str(local)!r}))\n"
        "print([m for m in ('torch', 'optuna', 'talib', 'pandas') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_version_the_spec_pins_is_shipped_after_a_newer_build(tmp_path: Path) -> None:
    # given IXIC built from the sample, then rebuilt from a CSV that lacks the last year
    local = tmp_path / "local"
    _build("sample", local, tmp_path, ["a25"])
    first = read_manifest(local).latest("IXIC.dataset.a25")
    shorter = tmp_path / "shorter.csv"
    _sample_frame("IXIC").iloc[:-250].to_csv(shorter, index=False)
    inputs = load_inputs("csv", ticker="^IXIC", csv_path=shorter, kinds=["a25"])
    build_datasets(inputs, data_dir=local)
    latest = read_manifest(local).latest("IXIC.dataset.a25")
    assert first is not None and latest is not None and latest.sha256 != first.sha256
    # when a spec pinning the first version (by a prefix) is rendered
    spec = _spec(tmp_path, "IXIC.dataset.a25")
    spec.write_text(
        spec.read_text().replace(
            "  target: close\n", f"  target: close\n  sha256: {first.sha256[:12]}\n"
        )
    )
    files = render(spec, data_dir=local)
    # then the data Job rebuilds that version from its own bars, and the studies pin it in full
    docs = _docs(files[DATA_JOB])
    args = docs["Job"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"IXIC.dataset.a25={first.sha256}" in args
    raw = read_manifest(local).find("IXIC.ohlcv.daily", first.inputs[0].sha256)
    assert raw is not None
    shipped = docs["ConfigMap"]["binaryData"]["IXIC.ohlcv.daily.parquet"]
    assert base64.b64decode(shipped) == (local / raw.path).read_bytes()
    study = _docs(files["nasdaq-scaling/nasdaq-scaling-50k-h1.yaml"])["ConfigMap"]
    assert yaml.safe_load(study["data"]["study.yaml"])["data"]["sha256"] == first.sha256
