"""ImageFolder: a dataset defined by a YAML only (``configs/datasets/image_folder_example.yaml``).

Keys under ``DATASET.IMAGE_FOLDER`` (declared in ``OPTIONS`` below, documented in docs/DATASETS.md):

* ``DIR``: the folder, relative to ``DATASET.ROOT`` or absolute;
* ``LAYOUT``: ``"classes"`` (``DIR/<class>/<image>``), ``"splits"``
  (``DIR/{train,val,test}/<class>/<image>``, ``val`` optional) or ``"auto"`` (``splits`` when
  ``DIR/train`` and ``DIR/test`` exist);
* ``SPLIT_FILE``: for ``classes``, the split file inside ``DIR`` (CoOp's format). Read when it
  exists; otherwise the images are split per class with ``TRAIN_RATIO`` / ``VAL_RATIO`` / rest
  for test, shuffled with ``SPLIT_SEED``, and the split is saved there so later runs reuse it;
* ``CLASSNAMES``: ``["folder:class name", ...]``; folders not listed are named after the folder
  with ``_`` read as a space;
* ``TEMPLATE``: the prompt template (read by ``datasets.templates.template_for``).

Labels follow the sorted class-folder names. Few-shot subsets are cached in ``DIR/split_fewshot/``.
"""

import os
import random

from dassl.data.datasets import DATASET_REGISTRY, Datum
from dassl.utils import ConfigError, listdir_nohidden

from .common import DOCS, CoOpDataset, dataset_root, read_and_split_data, read_split, require, save_split

OPTIONS = {
    "DATASET.IMAGE_FOLDER": {
        "DIR": ("", "the image folder, relative to DATASET.ROOT or absolute"),
        "LAYOUT": ("auto", "classes (DIR/<class>/<image>), splits (DIR/{train,val,test}/<class>/<image>) or auto"),
        "SPLIT_FILE": ("split.json", "layout classes: CoOp-format split file inside DIR (written when missing)"),
        "TRAIN_RATIO": (0.5, "layout classes, no split file: share of each class's images for training"),
        "VAL_RATIO": (0.2, "layout classes, no split file: share for validation (the rest is test)"),
        "SPLIT_SEED": (1, "seed of the split when it is made"),
        "CLASSNAMES": ([], '"folder:class name" strings; other folders are named after the folder'),
        "TEMPLATE": ("a photo of a {}.", "the dataset's prompt template (one {} for the class name)"),
    },
}

FEWSHOT_DIR = "split_fewshot"
SPLITS = ("train", "val", "test")


def parse_classnames(entries, folders):
    """``["folder:name", ...]`` -> ``{folder: name}`` for every folder (default: ``_`` -> space)."""
    names = {folder: folder.replace("_", " ") for folder in folders}
    for entry in entries:
        folder, sep, name = entry.partition(":")
        if not sep or not folder.strip() or not name.strip():
            raise ConfigError(
                f'DATASET.IMAGE_FOLDER.CLASSNAMES entries must look like "folder:class name", got "{entry}"'
            )
        folder = folder.strip()
        if folder not in names:
            raise ConfigError(
                f'DATASET.IMAGE_FOLDER.CLASSNAMES names the folder "{folder}", but the class folders '
                f"are {sorted(names)}; fix the entry or the folder name"
            )
        names[folder] = name.strip()
    return names


def class_folders(folder):
    return sorted(
        name
        for name in listdir_nohidden(folder)
        if os.path.isdir(os.path.join(folder, name)) and name != FEWSHOT_DIR
    )


@DATASET_REGISTRY.register()
class ImageFolder(CoOpDataset):
    def __init__(self, cfg):
        self.options = cfg.DATASET.IMAGE_FOLDER
        self.split_name = self.options.SPLIT_FILE
        super().__init__(cfg)

    def locate(self, cfg):
        folder = self.options.DIR
        if not folder:
            raise ConfigError(
                "DATASET.IMAGE_FOLDER.DIR is empty: set it to the image folder (relative to DATASET.ROOT "
                f"or absolute), see configs/datasets/image_folder_example.yaml and {DOCS}"
            )
        return os.path.join(dataset_root(cfg), os.path.expanduser(folder))

    def layout(self):
        layout = self.options.LAYOUT
        if layout not in ("auto", "classes", "splits"):
            raise ConfigError(f'DATASET.IMAGE_FOLDER.LAYOUT must be "auto", "classes" or "splits", got "{layout}"')
        if layout == "auto":
            has_splits = all(os.path.isdir(os.path.join(self.dataset_dir, s)) for s in ("train", "test"))
            layout = "splits" if has_splits else "classes"
        return layout

    def read_splits(self):
        if self.layout() == "splits":
            return self.read_split_folders()
        return self.read_or_make_split()

    def read_split_folders(self):
        """``DIR/{train,val,test}/<class>/<image>``; classes (and labels) come from ``train/``."""
        train_dir = require(os.path.join(self.dataset_dir, "train"), "the train/ folder", "ImageFolder")
        require(os.path.join(self.dataset_dir, "test"), "the test/ folder", "ImageFolder")
        folders = class_folders(train_dir)
        names = parse_classnames(self.options.CLASSNAMES, folders)
        labels = {folder: label for label, folder in enumerate(folders)}

        splits = []
        for split in SPLITS:
            split_dir = os.path.join(self.dataset_dir, split)
            if not os.path.isdir(split_dir):  # only val/ may be missing: then no validation set
                splits.append([])
                continue
            items = []
            for folder in class_folders(split_dir):
                if folder not in labels:
                    raise ConfigError(
                        f"{os.path.join(split_dir, folder)} is a class that {train_dir} does not have; "
                        "every class needs training images"
                    )
                for imname in listdir_nohidden(os.path.join(split_dir, folder), sort=True):
                    impath = os.path.join(split_dir, folder, imname)
                    items.append(Datum(impath=impath, label=labels[folder], classname=names[folder]))
            splits.append(items)
        return tuple(splits)

    def read_or_make_split(self):
        """``DIR/<class>/<image>`` split by ``SPLIT_FILE``, made (seeded) and saved the first time."""
        folders = class_folders(self.dataset_dir)
        names = parse_classnames(self.options.CLASSNAMES, folders)
        if not os.path.exists(self.split_path):
            train, val, test = read_and_split_data(
                self.dataset_dir,
                p_trn=self.options.TRAIN_RATIO,
                p_val=self.options.VAL_RATIO,
                ignored=[FEWSHOT_DIR] + [f for f in listdir_nohidden(self.dataset_dir) if f not in folders],
                new_cnames=names,
                rng=random.Random(self.options.SPLIT_SEED),
            )
            save_split(train, val, test, self.split_path, self.dataset_dir)
            return train, val, test

        train, val, test = read_split(self.split_path, self.dataset_dir)
        split_folders = sorted({self.class_folder_of(item) for item in train})
        if split_folders != folders:
            raise ConfigError(
                f"{self.split_path} was made for the classes {split_folders}, but {self.dataset_dir} "
                f"now holds {folders}; delete the split file (and {FEWSHOT_DIR}/) to make a new split"
            )
        return tuple(self.renamed(split) for split in (train, val, test))

    def load_fewshot(self, cfg, train, val):
        # Split and few-shot files fix images and labels; class names always come from the current
        # CLASSNAMES, so renaming a class needs no new split.
        train, val = super().load_fewshot(cfg, train, val)
        return self.renamed(train), self.renamed(val)

    def renamed(self, items):
        classes_dir = os.path.join(self.dataset_dir, "train") if self.layout() == "splits" else self.dataset_dir
        names = parse_classnames(self.options.CLASSNAMES, class_folders(classes_dir))
        return [Datum(impath=i.impath, label=i.label, classname=names[self.class_folder_of(i)]) for i in items]

    def class_folder_of(self, item):
        """``DIR/<class>/x.jpg`` or ``DIR/<split>/<class>/x.jpg`` -> ``<class>``."""
        parts = os.path.relpath(item.impath, self.dataset_dir).split(os.sep)
        return parts[1] if self.layout() == "splits" else parts[0]
