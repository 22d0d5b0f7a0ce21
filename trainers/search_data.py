"""Data for DPL's search stage: validation batches for the alpha steps, and multi-dataset search.

* ``ValidationBatches``: the batches the alpha steps consume. ``cycle`` (default) walks through
  the whole shuffled val split and starts a new shuffled pass when it is exhausted; the batch of
  global step s is a pure function of (seed, s), so a resumed search sees exactly the batches an
  uninterrupted one would. ``first`` reproduces the official release, whose every alpha step
  uses the first batch of a sequential loader.
* ``build_search_data(trainer)``: ``DATASET.NAME`` may list several datasets separated by commas;
  their label spaces are concatenated (dataset k's labels are offset by the classes before it,
  and its items get domain k so accuracy can be reported per dataset).
"""
import copy
import math

import torch
from torch.utils.data import DataLoader, Sampler

from dassl.data import DataManager, DatasetWrapper
from dassl.data.data_manager import build_data_loader
from dassl.data.datasets import DatasetBase, build_dataset
from dassl.data.transforms import build_transform


class CyclingBatchSampler(Sampler):
    """Endless index batches over shuffled passes of ``n`` items, starting at global step ``start``."""

    def __init__(self, n, batch_size, seed, start=0, stride=1):
        self.n, self.batch_size, self.seed, self.start, self.stride = n, batch_size, seed, start, stride
        self.per_pass = math.ceil(n / batch_size)

    def batch_indices(self, step):
        pass_index, position = divmod(step, self.per_pass)
        generator = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + pass_index)
        order = torch.randperm(self.n, generator=generator)
        return order[position * self.batch_size : (position + 1) * self.batch_size].tolist()

    def __iter__(self):
        step = self.start
        while True:
            yield self.batch_indices(step)
            step += self.stride


class ValidationBatches:
    """Validation batches for alpha steps, addressed by the global iteration number."""

    def __init__(self, cfg, val_items, batch_size, mode, seed, rank=0, world_size=1):
        if not val_items:
            raise ValueError(
                f"The validation split of {cfg.DATASET.NAME} is empty, but DPL's search needs validation data "
                f"for its alpha steps. Use DATASET.NUM_SHOTS >= 1 (val then holds min(shots, 4) images per "
                f"class) or a dataset whose split file has a non-empty 'val' list."
            )
        self.mode = mode
        self.batch_size = int(batch_size)
        self.seed = 0 if seed is None or seed < 0 else int(seed)
        self.dataset = DatasetWrapper(cfg, val_items, transform=build_transform(cfg, is_train=False), is_train=False)
        self.num_workers = cfg.DATALOADER.NUM_WORKERS
        # Under torchrun, rank r of R takes batches r, R + r, 2R + r, ... of the same sequence.
        self.rank, self.world_size = rank, world_size
        self._iterator, self._next_step, self._first = None, None, None

    def _load(self, indices):
        return torch.utils.data.default_collate([self.dataset[i] for i in indices])

    def batch(self, step, device):
        """(images, labels) of the alpha step at global iteration ``step``."""
        step = step * self.world_size + self.rank
        if self.mode == "first":
            if self._first is None:
                self._first = self._load(range(min(self.batch_size, len(self.dataset))))
            batch = self._first
        else:
            if self._iterator is None or step != self._next_step:
                sampler = CyclingBatchSampler(
                    len(self.dataset), self.batch_size, self.seed, start=step, stride=self.world_size
                )
                # Its own generator: creating this iterator mid-run (on resume) must not draw from
                # the global RNG, or the training augmentations after it would differ.
                generator = torch.Generator().manual_seed(self.seed + step)
                loader = DataLoader(
                    self.dataset, batch_sampler=sampler, num_workers=self.num_workers, generator=generator
                )
                self._iterator = iter(loader)
            batch = next(self._iterator)
            self._next_step = step + self.world_size
        return batch["img"].to(device), batch["label"].to(device)


class MultiDataset(DatasetBase):
    """Several datasets as one: label spaces concatenated, domain k = k-th dataset."""

    def __init__(self, datasets, names):
        train_x, val, test, offset = [], [], [], 0
        for domain, dataset in enumerate(datasets):
            for split, target in ((dataset.train_x, train_x), (dataset.val, val), (dataset.test, test)):
                for item in split:
                    item = copy.copy(item)
                    item._label += offset
                    item._domain = domain
                    target.append(item)
            offset += dataset.num_classes
        super().__init__(train_x=train_x, val=val, test=test)
        self.dataset_names = list(names)
        self.class_offsets = [sum(d.num_classes for d in datasets[:k]) for k in range(len(datasets))]


def dataset_names(cfg):
    return [name.strip() for name in cfg.DATASET.NAME.split(",") if name.strip()]


class MultiDataManager(DataManager):
    """``DataManager`` for a comma-separated ``DATASET.NAME`` (one dataset per name)."""

    def __init__(self, cfg):
        names = dataset_names(cfg)
        datasets = []
        for name in names:
            sub_cfg = cfg.clone()
            sub_cfg.defrost()
            sub_cfg.DATASET.NAME = name
            datasets.append(build_dataset(sub_cfg))
        dataset = MultiDataset(datasets, names)
        tfm_train, tfm_test = build_transform(cfg, is_train=True), build_transform(cfg, is_train=False)
        loader_x, loader_test = cfg.DATALOADER.TRAIN_X, cfg.DATALOADER.TEST

        def eval_loader(items):
            return build_data_loader(
                cfg, loader_test.SAMPLER, items, loader_test.BATCH_SIZE, tfm=tfm_test, is_train=False
            )

        self.dataset = dataset
        self.train_loader_x = build_data_loader(
            cfg, loader_x.SAMPLER, dataset.train_x, loader_x.BATCH_SIZE, tfm=tfm_train, is_train=True
        )
        self.train_loader_u = None
        self.val_loader = eval_loader(dataset.val) if dataset.val else None
        self.test_loader = eval_loader(dataset.test)
        self._num_classes = dataset.num_classes
        self._num_source_domains = len(names)
        self._lab2cname = dataset.lab2cname
        print(f"Search over {len(names)} datasets: {', '.join(names)} ({dataset.num_classes} classes in all)")
        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)


def build_search_data(trainer):
    """``trainer.build_data_loader`` for the search: one dataset, or several joined.

    Sets the attributes Dassl's ``build_data_loader`` sets (no engine helper, so the trainer
    also runs on upstream Dassl).
    """
    cfg = trainer.cfg
    dm = MultiDataManager(cfg) if len(dataset_names(cfg)) > 1 else DataManager(cfg)
    trainer.train_loader_x, trainer.train_loader_u = dm.train_loader_x, dm.train_loader_u
    trainer.val_loader, trainer.test_loader = dm.val_loader, dm.test_loader
    trainer.num_classes, trainer.num_source_domains = dm.num_classes, dm.num_source_domains
    trainer.lab2cname, trainer.dm = dm.lab2cname, dm


def per_dataset_accuracy(dataset, y_true, y_pred):
    """{dataset name: accuracy in %} of a joined dataset, from the concatenated label ranges."""
    bounds = dataset.class_offsets + [dataset.num_classes]
    results = {}
    for name, low, high in zip(dataset.dataset_names, bounds[:-1], bounds[1:]):
        pairs = [(t, p) for t, p in zip(y_true, y_pred) if low <= t < high]
        if pairs:
            results[name] = 100.0 * sum(t == p for t, p in pairs) / len(pairs)
    return results
