"""The choices of the options, as enums so that `--help` lists them and click refuses any
other value (exit 2). Each mirrors a Literal of the library (tests/unit/test_views.py checks
that they agree); the Literals are not imported here, since their modules load pandas or optuna.
"""

from __future__ import annotations

from enum import StrEnum

from finscale.tiers import DATASETS


class Device(StrEnum):
    """Where training runs: `Settings.device`."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Until(StrEnum):
    """When a worker leaves: `run_worker`'s `until`."""

    done = "done"
    idle = "idle"


class Source(StrEnum):
    """Where the bars come from: `finscale.data.inputs.SourceKind`."""

    sample = "sample"
    csv = "csv"
    yfinance = "yfinance"
    snapshot = "snapshot"


class DataFrom(StrEnum):
    """Where a rendered data Job gets a dataset's bars: `finscale.k8s.shipping.DataFrom`."""

    local = "local"
    download = "download"


class Allowance(StrEnum):
    """What `data build --allow` accepts: `finscale.data.sources.ALLOWABLE`."""

    old_dates = "old-dates"
    gaps = "gaps"
    flat_prices = "flat-prices"
    zero_volume = "zero-volume"


class PriceTarget(StrEnum):
    """Which future price must rise: `finscale.data.labels.Target`."""

    close = "close"
    high = "high"


class PullPolicy(StrEnum):
    """The rendered Jobs' imagePullPolicy: `finscale.k8s.options.PULL_POLICIES`."""

    IfNotPresent = "IfNotPresent"
    Always = "Always"


class Propagation(StrEnum):
    """How `finscale cancel` deletes a Job's pods: `finscale.k8s.cluster.PROPAGATIONS`."""

    Foreground = "Foreground"
    Background = "Background"


# The dataset kinds of the table.
DatasetKind = StrEnum("DatasetKind", {k: k for k in DATASETS})  # type: ignore[misc]


class Gpu(StrEnum):
    """The cards whose peak `finscale plan` knows: `finscale.plan.compute.GPU_PEAK_TFLOPS`."""

    H100 = "H100"
    H200 = "H200"
    A100 = "A100"
    L4 = "L4"
