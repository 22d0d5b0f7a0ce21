"""``DATASET_REGISTRY``, ``build_dataset(cfg)`` and ``canonical_dataset_name``.

Dataset names are looked up case-insensitively: ``caltech101`` and ``Caltech101`` are one dataset,
and ``build_dataset`` writes the registered spelling back into ``cfg.DATASET.NAME`` so that the
log, the per-dataset results and the predictions all carry that one name.
"""

from dassl.errors import UnknownNameError
from dassl.utils import Registry

from .joined import build_joined_dataset, split_dataset_names

DATASET_REGISTRY = Registry("DATASET")


def canonical_dataset_name(name, registered=None):
    """The registered spelling of ``name`` ("caltech101" -> "Caltech101"; "toy, imagefolder" ->
    "Toy,ImageFolder"). A name that matches no registered one (in any case) is returned as it is,
    so that building it gives the registry's "did you mean" error. An exact match wins over a
    case-insensitive one; two registered names equal but for case make the latter ambiguous (an error).
    """
    registered = DATASET_REGISTRY.registered_names() if registered is None else list(registered)
    by_lower = {}
    for registered_name in registered:
        by_lower.setdefault(registered_name.lower(), []).append(registered_name)

    def one(part):
        if part in registered:
            return part
        matches = by_lower.get(part.lower(), [])
        if len(matches) > 1:
            raise UnknownNameError(
                'DATASET.NAME "{}" matches the datasets {} equally (names are compared ignoring case); '
                "write one of them exactly.".format(part, matches))
        return matches[0] if matches else part

    return ",".join(one(part) for part in split_dataset_names(name))


def set_dataset_name(cfg, name):
    """``cfg.DATASET.NAME = name``, also on a frozen config (which stays frozen)."""
    frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.DATASET.NAME = name
    if frozen:
        cfg.freeze()


def build_dataset(cfg):
    """Instantiate the dataset registered under ``cfg.DATASET.NAME`` (any case).

    The name is first replaced in ``cfg`` by its registered spelling (``canonical_dataset_name``).
    Several names separated by commas ("A,B") give a ``JoinedDataset``: each name is built
    with a copy of ``cfg`` whose DATASET.NAME is that name alone.
    """
    canonical = canonical_dataset_name(cfg.DATASET.NAME)
    if canonical != ",".join(split_dataset_names(cfg.DATASET.NAME)):  # spelt differently, not only spaced
        print('DATASET.NAME "{}" is the registered dataset "{}": using that name'.format(cfg.DATASET.NAME, canonical))
        set_dataset_name(cfg, canonical)
    if cfg.VERBOSE:
        print("Loading dataset: {}".format(cfg.DATASET.NAME))
    names = split_dataset_names(cfg.DATASET.NAME)
    if len(names) > 1:
        return build_joined_dataset(cfg, names, build_dataset)
    return DATASET_REGISTRY.build(cfg.DATASET.NAME, "DATASET.NAME", "dataset", "datasets", cfg)
