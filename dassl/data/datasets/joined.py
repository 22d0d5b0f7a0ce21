"""Several datasets as one: ``DATASET.NAME "A,B"`` joins their label spaces.

``build_dataset`` builds each name with its own copy of the config and hands the results to
``JoinedDataset``. Dataset k's labels are shifted by the classes of the datasets before it
(``class_offsets[k]``), so one classifier sees ``sum(num_classes_per_dataset)`` classes; each
item also records which dataset it came from (``Datum.dataset``, equal to ``Datum.domain``)
and its label there (``Datum.dataset_label``).

``DATASET.LABEL_SPACE`` says how trainers use that space: ``"concatenated"`` (one softmax over
every class of every dataset) or ``"per_task"`` (each sample's logits restricted to its own
dataset's classes, with ``restrict_logits_to_dataset``).
"""

import torch

from dassl.errors import ConfigError

from .base_dataset import Datum, DatasetBase

__all__ = [
    "LABEL_SPACES",
    "JoinedDataset",
    "split_dataset_names",
    "is_joined_dataset",
    "dataset_index_of_label",
    "restrict_logits_to_dataset",
]

LABEL_SPACES = ("concatenated", "per_task")


def split_dataset_names(name):
    """``"A, B"`` -> ``["A", "B"]``; ``"A"`` -> ``["A"]``. Empty or repeated entries are errors."""
    if "," not in name:
        return [name]
    names = [part.strip() for part in name.split(",")]
    if not all(names):
        raise ConfigError('DATASET.NAME "{}" has an empty entry; list datasets as "A,B" '
                          "(names separated by single commas).".format(name))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError('DATASET.NAME "{}" lists {} more than once; each dataset may appear only once '
                          "(its results are reported under its name).".format(name, repeated))
    return names


def check_label_space(label_space):
    if label_space not in LABEL_SPACES:
        raise ConfigError('DATASET.LABEL_SPACE must be "concatenated" (one softmax over the classes of all '
                          'datasets) or "per_task" (each sample\'s logits restricted to its own dataset), '
                          'got "{}".'.format(label_space))


def is_joined_dataset(dataset):
    """True for a ``JoinedDataset`` or anything exposing ``dataset_names`` and ``class_offsets``."""
    return getattr(dataset, "dataset_names", None) is not None and getattr(dataset, "class_offsets", None) is not None


class JoinedDataset(DatasetBase):
    """``datasets`` (built DatasetBase objects) under ``names`` as one dataset.

    Every split holds fresh Datum objects (the sources are left untouched): label =
    ``class_offsets[k]`` + label in dataset k, domain = dataset = k, dataset_label = the
    original label, class name kept. A split that no source has (e.g. no val) stays None.
    """

    def __init__(self, datasets, names):
        if len(datasets) != len(names):
            raise ValueError("JoinedDataset got {} datasets but {} names".format(len(datasets), len(names)))
        self.datasets = list(datasets)
        self.dataset_names = list(names)
        self.num_classes_per_dataset = [dataset.num_classes for dataset in datasets]
        self.class_offsets = [sum(self.num_classes_per_dataset[:k]) for k in range(len(datasets))]
        # domain k = dataset k (what DataManager.num_source_domains counts)
        self.domains = list(names)

        super().__init__(
            train_x=self._join("train_x"),
            train_u=self._join("train_u") or None,
            val=self._join("val") or None,
            test=self._join("test"),
        )
        # From the sources, not from train_x: a class without training images keeps its name.
        self._num_classes = sum(self.num_classes_per_dataset)
        self._lab2cname = {
            offset + label: classname
            for offset, dataset in zip(self.class_offsets, datasets)
            for label, classname in dataset.lab2cname.items()
        }
        self._classnames = [classname for dataset in datasets for classname in dataset.classnames]

    def _join(self, split):
        joined = []
        for k, (dataset, offset) in enumerate(zip(self.datasets, self.class_offsets)):
            for item in getattr(dataset, split) or []:
                joined.append(Datum(impath=item.impath, label=offset + item.label, domain=k,
                                    classname=item.classname, dataset=k, dataset_label=item.label))
        return joined

    def count_per_dataset(self, split):
        """``{name: number of items}`` of ``split`` ("train_x", "val", "test", ...)."""
        counts = {name: 0 for name in self.dataset_names}
        for item in getattr(self, split) or []:
            counts[self.dataset_names[item.dataset]] += 1
        return counts

    def restrict_logits(self, logits, dataset_index):
        """``restrict_logits_to_dataset`` with this dataset's class ranges."""
        return restrict_logits_to_dataset(logits, dataset_index, self.class_offsets, self.num_classes_per_dataset)


def build_joined_dataset(cfg, names, build_one):
    """Build each of ``names`` with ``build_one(sub_cfg)`` (sub_cfg: ``cfg`` with DATASET.NAME = name) and join them."""
    check_label_space(cfg.DATASET.LABEL_SPACE)
    datasets = []
    for name in names:
        sub_cfg = cfg.clone()
        sub_cfg.defrost()
        sub_cfg.DATASET.NAME = name
        if cfg.is_frozen():
            sub_cfg.freeze()
        datasets.append(build_one(sub_cfg))
    return JoinedDataset(datasets, names)


def dataset_index_of_label(labels, class_offsets):
    """Dataset index of each label of the concatenated label space.

    ``labels``: a tensor (any shape, same device out) or anything numpy can read (array out).
    """
    if torch.is_tensor(labels):
        offsets = torch.as_tensor(class_offsets, dtype=labels.dtype, device=labels.device)
        return torch.searchsorted(offsets, labels.contiguous(), right=True) - 1
    import numpy as np

    return np.searchsorted(np.asarray(class_offsets), np.asarray(labels), side="right") - 1


def restrict_logits_to_dataset(logits, dataset_index, class_offsets, num_classes_per_dataset):
    """``logits`` with the classes of every other dataset set to -inf (a new tensor).

    logits: ``(batch, classes)`` over the concatenated label space (or ``(classes,)``);
    dataset_index: one int for every row, or ``(batch,)`` (a tensor or a list), one per row.
    """
    num_classes = sum(num_classes_per_dataset)
    if logits.shape[-1] != num_classes:
        raise ValueError("logits have {} classes but the joined datasets have {} ({})".format(
            logits.shape[-1], num_classes, " + ".join(str(n) for n in num_classes_per_dataset)))
    index = torch.as_tensor(dataset_index, dtype=torch.long, device=logits.device)
    low = torch.as_tensor(class_offsets, dtype=torch.long, device=logits.device)[index]
    high = low + torch.as_tensor(num_classes_per_dataset, dtype=torch.long, device=logits.device)[index]
    classes = torch.arange(num_classes, device=logits.device)  # (classes,)
    if index.dim() == 1:  # one dataset per row: (batch, 1) bounds against (classes,)
        low, high = low.unsqueeze(1), high.unsqueeze(1)
    keep = (classes >= low) & (classes < high)  # (classes,) or (batch, classes)
    return logits.masked_fill(~keep, float("-inf"))
