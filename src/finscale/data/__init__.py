"""The market-data pipeline: sources → features → datasets (manifest) → windows and splits.

Knows nothing of Optuna or Kubernetes.
"""

from finscale.data.build import Built, Inputs, build_datasets, load_inputs
from finscale.data.dataset import Dataset, load_dataset
from finscale.data.labels import make_labels
from finscale.data.manifest import Manifest, ManifestEntry, read_manifest, verify_manifest
from finscale.data.normalization import Normalization, fit_normalization
from finscale.data.sources import Plausibility
from finscale.data.windows import Splits, Windows, make_windows, split_chronological, split_chunks

__all__ = [
    "Built",
    "Dataset",
    "Inputs",
    "Manifest",
    "ManifestEntry",
    "Normalization",
    "Plausibility",
    "Splits",
    "Windows",
    "build_datasets",
    "fit_normalization",
    "load_dataset",
    "load_inputs",
    "make_labels",
    "make_windows",
    "read_manifest",
    "split_chronological",
    "split_chunks",
    "verify_manifest",
]
