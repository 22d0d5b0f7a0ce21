"""``DATASET_REGISTRY`` and ``build_dataset(cfg)``."""

from dassl.utils import Registry

from .joined import build_joined_dataset, split_dataset_names

DATASET_REGISTRY = Registry("DATASET")


def build_dataset(cfg):
    """Instantiate the dataset registered under ``cfg.DATASET.NAME``.

    Several names separated by commas ("A,B") give a ``JoinedDataset``: each name is built
    with a copy of ``cfg`` whose DATASET.NAME is that name alone.
    """
    if cfg.VERBOSE:
        print("Loading dataset: {}".format(cfg.DATASET.NAME))
    names = split_dataset_names(cfg.DATASET.NAME)
    if len(names) > 1:
        return build_joined_dataset(cfg, names, build_dataset)
    return DATASET_REGISTRY.build(cfg.DATASET.NAME, "DATASET.NAME", "dataset", "datasets", cfg)
