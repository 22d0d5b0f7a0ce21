"""``DATASET_REGISTRY`` and ``build_dataset(cfg)``."""

from dassl.utils import Registry

DATASET_REGISTRY = Registry("DATASET")


def build_dataset(cfg):
    """Instantiate the dataset class registered under ``cfg.DATASET.NAME``."""
    if cfg.VERBOSE:
        print("Loading dataset: {}".format(cfg.DATASET.NAME))
    return DATASET_REGISTRY.build(cfg.DATASET.NAME, "DATASET.NAME", "dataset", "datasets", cfg)
