"""The market-data pipeline: sources → features → datasets (manifest) → windows and splits.

Knows nothing of Optuna or Kubernetes. The names below are what other packages use; the
modules' other names are for this package and its tests.
"""

from finscale.data.build import build_datasets
from finscale.data.dataset import Dataset, load_dataset, wait_for_dataset
from finscale.data.inputs import already_built, dataset_names, load_inputs, parse_input_csv
from finscale.data.manifest import read_manifest, verify_manifest
from finscale.data.prepare import Prepared, SplitSettings, prepare
from finscale.data.sources import Plausibility
from finscale.data.summary import summarize_splits

__all__ = [
    "Dataset",
    "Plausibility",
    "Prepared",
    "SplitSettings",
    "already_built",
    "build_datasets",
    "dataset_names",
    "load_dataset",
    "load_inputs",
    "parse_input_csv",
    "prepare",
    "read_manifest",
    "summarize_splits",
    "verify_manifest",
    "wait_for_dataset",
]
