"""``DATASET_REGISTRY`` and ``build_dataset(cfg)``."""

from dassl.utils import Registry, get_most_similar_str_to_a_from_b

DATASET_REGISTRY = Registry("DATASET")


def build_dataset(cfg):
    """Instantiate the dataset class registered under ``cfg.DATASET.NAME``."""
    avai_datasets = DATASET_REGISTRY.registered_names()
    if cfg.DATASET.NAME not in avai_datasets:
        closest = get_most_similar_str_to_a_from_b(cfg.DATASET.NAME, avai_datasets) if avai_datasets else None
        raise ValueError(
            'Unknown dataset "{}" (DATASET.NAME; do you mean [{}]?). Registered datasets: {}. A dataset is '
            "registered when its module is imported (train.py does `import datasets`).".format(
                cfg.DATASET.NAME, closest, avai_datasets
            )
        )
    if cfg.VERBOSE:
        print("Loading dataset: {}".format(cfg.DATASET.NAME))
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)
