"""Dataset registry and base classes. No dataset is built in: users register theirs.

A comma-separated ``DATASET.NAME`` ("A,B") builds every name and joins them (``joined.py``).
"""

from .base_dataset import Datum, DatasetBase, log_warning
from .build import DATASET_REGISTRY, build_dataset, canonical_dataset_name
from .joined import (
    LABEL_SPACES,
    JoinedDataset,
    dataset_index_of_label,
    is_joined_dataset,
    restrict_logits_to_dataset,
    split_dataset_names,
)

__all__ = [
    "DATASET_REGISTRY",
    "build_dataset",
    "canonical_dataset_name",
    "Datum",
    "DatasetBase",
    "log_warning",
    "JoinedDataset",
    "LABEL_SPACES",
    "split_dataset_names",
    "is_joined_dataset",
    "dataset_index_of_label",
    "restrict_logits_to_dataset",
]
