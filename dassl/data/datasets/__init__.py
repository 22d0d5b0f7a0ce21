"""Dataset registry and base classes. No dataset is built in: users register theirs."""

from .base_dataset import Datum, DatasetBase
from .build import DATASET_REGISTRY, build_dataset

__all__ = ["DATASET_REGISTRY", "build_dataset", "Datum", "DatasetBase"]
