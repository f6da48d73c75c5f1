"""The market-data pipeline: sources → features → datasets (manifest) → windows and splits.

Knows nothing of Optuna or Kubernetes. The names below are what other packages use; the
modules' other names are for this package and its tests. They load lazily: loading a dataset
imports neither TA-Lib nor the build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from finscale.lazy import lazy_exports

# Each public name and the module that defines it: the one list (`__all__` follows from it).
_WHERE = {
    "Dataset": "dataset",
    "Plausibility": "sources",
    "Prepared": "preparation",
    "SplitSettings": "preparation",
    "already_built": "inputs",
    "already_expected": "inputs",
    "build_datasets": "build",
    "dataset_names": "inputs",
    "load_dataset": "dataset",
    "load_inputs": "inputs",
    "parse_expected": "inputs",
    "parse_input_csv": "inputs",
    "prepare": "preparation",
    "read_manifest": "manifest",
    "summarize_splits": "summary",
    "verify_manifest": "integrity",
    "wait_for_dataset": "dataset",
}

__all__ = sorted(_WHERE)

if TYPE_CHECKING:  # the same names for type checkers
    from finscale.data.build import build_datasets as build_datasets
    from finscale.data.dataset import Dataset as Dataset
    from finscale.data.dataset import load_dataset as load_dataset
    from finscale.data.dataset import wait_for_dataset as wait_for_dataset
    from finscale.data.inputs import already_built as already_built
    from finscale.data.inputs import already_expected as already_expected
    from finscale.data.inputs import dataset_names as dataset_names
    from finscale.data.inputs import load_inputs as load_inputs
    from finscale.data.inputs import parse_expected as parse_expected
    from finscale.data.inputs import parse_input_csv as parse_input_csv
    from finscale.data.integrity import verify_manifest as verify_manifest
    from finscale.data.manifest import read_manifest as read_manifest
    from finscale.data.preparation import Prepared as Prepared
    from finscale.data.preparation import SplitSettings as SplitSettings
    from finscale.data.preparation import prepare as prepare
    from finscale.data.sources import Plausibility as Plausibility
    from finscale.data.summary import summarize_splits as summarize_splits


__getattr__ = lazy_exports("finscale.data", _WHERE)
