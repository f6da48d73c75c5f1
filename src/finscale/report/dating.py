"""Calendar dates of a study's windows, read from its pinned dataset: what pairs two markets'
windows day by day (`report.compare`). The storage keeps window start rows, not dates."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from finscale.data.dataset import load_dataset
from finscale.errors import DataError
from finscale.records import ATTR_DATASET_SHA256, ATTR_SPEC
from finscale.report.collect import StudyResult
from finscale.report.compare import Dater

log = logging.getLogger(__name__)


def dataset_dater(data_dir: Path) -> Dater:
    """A `Dater` reading each dataset once from `data_dir`: a window's date is its decision
    day, the last of its context (row start + L − 1 of the dataset the study is pinned to)."""
    loaded: dict[tuple[str, str | None], np.ndarray | str] = {}

    def dates_of(name: str, pin: str | None) -> np.ndarray | str:
        if (name, pin) not in loaded:
            try:
                frame = load_dataset(data_dir, name, sha256=pin).frame
                loaded[name, pin] = frame["Date"].to_numpy(dtype="datetime64[D]")
            except DataError as e:
                log.info("windows of %s are not dated: %s", name, e)
                version = f" (sha256 {pin[:12]})" if pin else ""
                loaded[name, pin] = f"dataset {name}{version} is not in the data directory"
        return loaded[name, pin]

    def dater(result: StudyResult, split: str) -> np.ndarray | str:
        spec = result.attrs.get(ATTR_SPEC) or {}
        name = (spec.get("data") or {}).get("dataset")
        context = (spec.get("model") or {}).get("context_length")
        windows = result.test_windows if split == "test" else result.val_windows
        if not name or not context or windows is None:
            return f"{result.name} stores no dataset or context length to date its windows by"
        dates = dates_of(str(name), result.attrs.get(ATTR_DATASET_SHA256))
        if isinstance(dates, str):
            return dates
        rows = windows.starts + int(context) - 1
        if len(rows) and rows.max() >= len(dates):
            return f"{result.name}: its dataset {name} has fewer rows than its windows"
        found: np.ndarray = dates[rows]
        return found

    return dater
