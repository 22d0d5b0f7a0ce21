"""``DataManager`` (dataset + transforms + loaders), ``DatasetWrapper``, ``build_data_loader``
and ``capped_num_workers``."""

import os

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import Compose, Normalize, Resize, ToTensor

from dassl.utils import read_image

from .datasets import build_dataset
from .samplers import build_sampler
from .transforms import INTERPOLATION_MODES, build_transform

__all__ = ["build_data_loader", "capped_num_workers", "available_cpus", "DataManager", "DatasetWrapper"]

_REPORTED_CAPS = set()  # (requested, cap) pairs already logged, so each is said once per process


def available_cpus():
    """CPU cores this process may run on (its affinity mask where the OS has one, else ``cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def capped_num_workers(requested):
    """``DATALOADER.NUM_WORKERS`` capped at the cores available: more worker processes than cores
    only add start-up time and memory (each worker holds a copy of the dataset lists). Says so
    once in the log when it caps."""
    cap = available_cpus()
    if requested <= cap:
        return requested
    if (requested, cap) not in _REPORTED_CAPS:
        _REPORTED_CAPS.add((requested, cap))
        print("DATALOADER.NUM_WORKERS is {} but this process may use {}: using {} data-loading workers".format(
            requested, "1 CPU core" if cap == 1 else "{} CPU cores".format(cap), cap))
    return cap


def build_data_loader(
    cfg,
    sampler_type="SequentialSampler",
    data_source=None,
    batch_size=64,
    n_domain=0,
    n_ins=2,
    tfm=None,
    is_train=True,
    dataset_wrapper=None,
):
    """A DataLoader over ``data_source`` (a list of Datum) with the named sampler.

    Training loaders drop the last incomplete batch when there is at least one full batch.
    """
    sampler = build_sampler(
        sampler_type, cfg=cfg, data_source=data_source, batch_size=batch_size, n_domain=n_domain, n_ins=n_ins
    )
    if dataset_wrapper is None:
        dataset_wrapper = DatasetWrapper
    data_loader = DataLoader(
        dataset_wrapper(cfg, data_source, transform=tfm, is_train=is_train),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=capped_num_workers(cfg.DATALOADER.NUM_WORKERS),
        drop_last=is_train and len(sampler) >= batch_size,
        pin_memory=(torch.cuda.is_available() and cfg.USE_CUDA),
    )
    assert len(data_loader) > 0, "The data loader is empty: {} items, batch size {}".format(
        len(data_source), batch_size)
    return data_loader


class DataManager:
    """Builds the dataset named by ``cfg.DATASET.NAME``, its transforms and its four loaders.

    A comma-separated name ("A,B") gives a ``JoinedDataset`` (see ``datasets/joined.py``).

    Attributes: ``dataset``, ``train_loader_x``, ``train_loader_u`` (None unless the dataset
    has unlabelled data), ``val_loader`` (None without a val split), ``test_loader``;
    properties ``num_classes``, ``num_source_domains``, ``lab2cname``.
    """

    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None):
        dataset = build_dataset(cfg)

        if custom_tfm_train is None:
            tfm_train = build_transform(cfg, is_train=True)
        else:
            print("* Using custom transform for training")
            tfm_train = custom_tfm_train
        if custom_tfm_test is None:
            tfm_test = build_transform(cfg, is_train=False)
        else:
            print("* Using custom transform for testing")
            tfm_test = custom_tfm_test

        loader_x = cfg.DATALOADER.TRAIN_X
        train_loader_x = build_data_loader(
            cfg,
            sampler_type=loader_x.SAMPLER,
            data_source=dataset.train_x,
            batch_size=loader_x.BATCH_SIZE,
            n_domain=loader_x.N_DOMAIN,
            n_ins=loader_x.N_INS,
            tfm=tfm_train,
            is_train=True,
            dataset_wrapper=dataset_wrapper,
        )

        train_loader_u = None
        if dataset.train_u:
            loader_u = cfg.DATALOADER.TRAIN_X if cfg.DATALOADER.TRAIN_U.SAME_AS_X else cfg.DATALOADER.TRAIN_U
            train_loader_u = build_data_loader(
                cfg,
                sampler_type=loader_u.SAMPLER,
                data_source=dataset.train_u,
                batch_size=loader_u.BATCH_SIZE,
                n_domain=loader_u.N_DOMAIN,
                n_ins=loader_u.N_INS,
                tfm=tfm_train,
                is_train=True,
                dataset_wrapper=dataset_wrapper,
            )

        def eval_loader(data_source):
            return build_data_loader(
                cfg,
                sampler_type=cfg.DATALOADER.TEST.SAMPLER,
                data_source=data_source,
                batch_size=cfg.DATALOADER.TEST.BATCH_SIZE,
                tfm=tfm_test,
                is_train=False,
                dataset_wrapper=dataset_wrapper,
            )

        val_loader = eval_loader(dataset.val) if dataset.val else None
        test_loader = eval_loader(dataset.test)

        self._num_classes = dataset.num_classes
        # A joined dataset's domains are its datasets
        joined_names = getattr(dataset, "dataset_names", None)
        self._num_source_domains = len(joined_names) if joined_names else len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = dataset.lab2cname

        self.dataset = dataset
        self.train_loader_x = train_loader_x
        self.train_loader_u = train_loader_u
        self.val_loader = val_loader
        self.test_loader = test_loader

        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self):
        return self._num_classes

    @property
    def num_source_domains(self):
        return self._num_source_domains

    @property
    def lab2cname(self):
        return self._lab2cname

    def show_dataset_summary(self, cfg):
        """Dataset's table; for a joined dataset each count is followed by its per-dataset parts."""
        dataset = self.dataset
        names = getattr(dataset, "dataset_names", None)

        def count(total, parts):
            if not names:
                return "{:,}".format(total)
            return "{:,} ({})".format(total, ", ".join("{} {:,}".format(n, c) for n, c in zip(names, parts)))

        def split_row(split):
            items = getattr(dataset, split)
            parts = list(dataset.count_per_dataset(split).values()) if names else None
            return ["# " + split, count(len(items), parts)]

        rows = [["Dataset", cfg.DATASET.NAME]]
        if cfg.DATASET.SOURCE_DOMAINS:
            rows.append(["Source", str(cfg.DATASET.SOURCE_DOMAINS)])
        if cfg.DATASET.TARGET_DOMAINS:
            rows.append(["Target", str(cfg.DATASET.TARGET_DOMAINS)])
        rows.append(["# classes", count(self.num_classes, getattr(dataset, "num_classes_per_dataset", None))])
        rows.append(split_row("train_x"))
        if dataset.train_u:
            rows.append(split_row("train_u"))
        if dataset.val:
            rows.append(split_row("val"))
        rows.append(split_row("test"))
        print(format_simple_table(rows))


def format_simple_table(rows):
    """Two-column table in tabulate's "simple" style without a header (no tabulate needed)."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(2)]
    rule = "  ".join("-" * w for w in widths)
    lines = [rule] + ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows] + [rule]
    return "\n".join(lines)


class DatasetWrapper(Dataset):
    """Turns a list of Datum into dicts ``{"img", "label", "domain", "dataset", "impath", "index"}``.

    ``dataset`` is the index of the item's dataset in a joined dataset (0 otherwise), so a
    trainer can restrict each sample's logits to its own dataset's classes.

    ``transform`` may be one callable (key ``img``) or a list (keys ``img``, ``img2``, ...);
    with ``DATALOADER.K_TRANSFORMS > 1`` (training) each key holds a list of K views.
    ``DATALOADER.RETURN_IMG0`` adds ``img0``, the image only resized (and normalised).
    """

    def __init__(self, cfg, data_source, transform=None, is_train=False):
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0
        if self.k_tfm > 1 and transform is None:
            raise ValueError(
                "Cannot augment the image {} times because transform is None".format(self.k_tfm))
        interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
        to_tensor = [Resize(list(cfg.INPUT.SIZE), interpolation=interp), ToTensor()]
        if "normalize" in cfg.INPUT.TRANSFORMS:
            to_tensor.append(Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
        self.to_tensor = Compose(to_tensor)

    def __len__(self):
        return len(self.data_source)

    def __getitem__(self, idx):
        item = self.data_source[idx]
        output = {"label": item.label, "domain": item.domain, "dataset": getattr(item, "dataset", 0),
                  "impath": item.impath, "index": idx}
        img0 = read_image(item.impath)
        if self.transform is not None:
            if isinstance(self.transform, (list, tuple)):
                for i, tfm in enumerate(self.transform):
                    key = "img" if i == 0 else "img{}".format(i + 1)
                    output[key] = self._transform_image(tfm, img0)
            else:
                output["img"] = self._transform_image(self.transform, img0)
        else:
            output["img"] = img0
        if self.return_img0:
            output["img0"] = self.to_tensor(img0)
        return output

    def _transform_image(self, tfm, img0):
        views = [tfm(img0) for _ in range(self.k_tfm)]
        return views[0] if len(views) == 1 else views
