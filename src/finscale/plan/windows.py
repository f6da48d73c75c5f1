"""A horizon's windows: counted, and their labels' dependence measured, on the dataset the spec
names; or assumed, when it is not built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from finscale.errors import DataError
from finscale.plan.power import assumed_dependence, window_dependence
from finscale.spec import StudySpec


@dataclass(frozen=True)
class HorizonWindows:
    """A horizon's split: counts, and each evaluated split's window dependence."""

    counts: tuple[int, int, int]  # train, val, test
    dependence: Mapping[str, tuple[int, float, float]]  # split → lag, ratio, long-run ratio
    source: str
    num_features: int


def _measured(spec: StudySpec, data_dir: Path) -> HorizonWindows:
    from finscale.hpo.inputs import load_study_data
    from finscale.report.hac import segments

    data = load_study_data(spec, data_dir)
    splits, labels = data.prepared.splits, data.prepared.windows.labels
    dependence = {
        name: window_dependence(labels[idx], horizon=spec.horizon, starts=segments(idx))
        for name, idx in (("val", splits.val), ("test", splits.test))
        if len(idx) > 2
    }
    return HorizonWindows(
        counts=(len(splits.train), len(splits.val), len(splits.test)),
        dependence=dependence,
        source=f"dataset {spec.data.dataset} in {data_dir}: windows counted, their labels' "
        "autocorrelation measured",
        num_features=data.num_features,
    )


def _assumed(spec: StudySpec, counts: tuple[int, int, int]) -> HorizonWindows:
    from finscale.tiers import dataset_kind

    try:
        num_features = dataset_kind(spec.data.dataset).num_features
    except ValueError:
        raise DataError(
            f"dataset {spec.data.dataset}: its kind does not say how many features it has; "
            "build it to plan"
        ) from None
    dependence = {
        name: assumed_dependence(n, spec.horizon)
        for name, n in (("val", counts[1]), ("test", counts[2]))
        if n > 2
    }
    return HorizonWindows(
        counts=counts,
        dependence=dependence,
        source=f"assumed (--windows {counts[0]},{counts[1]},{counts[2]}: dataset "
        f"{spec.data.dataset} not built): labels as dependent as the S&P 500 sample's",
        num_features=num_features,
    )


def horizon_windows(
    spec: StudySpec, data_dir: Path, *, assumed: tuple[int, int, int] | None
) -> HorizonWindows:
    """The split of a horizon's studies: from the dataset when it is built, else from the
    assumed counts.

    Raises:
        DataError: the dataset is not built (the message says how to build it, or how to plan
            on assumed counts), or a split is too small.
    """
    from finscale.data.manifest import find_dataset

    try:
        find_dataset(data_dir, spec.data.dataset, sha256=spec.data.sha256)
    except DataError as e:
        if assumed is not None:
            return _assumed(spec, assumed)
        raise DataError(
            f"{e}. The plan counts the windows of {spec.data.dataset} and measures their labels' "
            "autocorrelation; build it first, or pass --windows TRAIN,VAL,TEST to plan on "
            "assumed counts (labels then taken as dependent as the S&P 500 sample's)"
        ) from None
    return _measured(spec, data_dir)
