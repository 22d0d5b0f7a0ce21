"""ImageNet (``imagenet/images/{train,val}/<wnid>/*.JPEG`` + ``classnames.txt``) and the base of its
test-only variants (ImageNetV2, ImageNetSketch, ImageNetA, ImageNetR), which reuse its class names.

The val set is the test set and doubles as validation set (CoOp's protocol). Reading 1.3M paths is
slow, so the lists are cached in ``imagenet/preprocessed.pkl`` (``{"train": [...], "test": [...]}``).
"""

import os
from collections import OrderedDict

from tqdm import tqdm

from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum
from dassl.utils import ConfigError, is_main_process, listdir_nohidden

from .common import DOCS, CoOpDataset, dump_pickle_atomically, dataset_root, load_pickle, require


def read_classnames(text_file):
    """``classnames.txt`` lines ``<wnid> <class name>`` -> ordered ``{wnid: class name}``."""
    classnames = OrderedDict()
    with open(text_file, "r") as f:
        for line in f:
            if line.strip():
                wnid, classname = line.strip().split(" ", 1)
                classnames[wnid] = classname
    return classnames


def class_folders(image_dir):
    """The wnid folders in sorted order (label order); only directories: the variants ship a README.txt."""
    return sorted(f.name for f in os.scandir(image_dir) if f.is_dir() and not f.name.startswith("."))


def read_class_folders(image_dir, classnames, dataset_name):
    """``image_dir/<wnid>/<image>`` -> items labelled by the position of the wnid folder in sorted order."""
    folders = class_folders(image_dir)
    unknown = [folder for folder in folders if folder not in classnames]
    if unknown:
        raise ConfigError(
            f"{dataset_name}: class folders {unknown[:5]} in {image_dir} are not in classnames.txt; "
            f"use the classnames.txt of ImageNet described in {DOCS}#imagenet"
        )
    items = []
    # the first ImageNet run reads 1.3M paths, one class folder at a time (bar after one second)
    bar = tqdm(folders, desc=f"{dataset_name}: reading {image_dir}", unit="class", delay=1,
               disable=not is_main_process())
    for label, folder in enumerate(bar):
        folder_dir = os.path.join(image_dir, folder)
        for imname in listdir_nohidden(folder_dir, sort=True):
            items.append(Datum(impath=os.path.join(folder_dir, imname), label=label, classname=classnames[folder]))
    return items


@DATASET_REGISTRY.register()
class ImageNet(CoOpDataset):
    dataset_dir = "imagenet"
    image_subdir = "images"

    def read_splits(self):
        self.preprocessed = os.path.join(self.dataset_dir, "preprocessed.pkl")
        if os.path.exists(self.preprocessed):
            preprocessed = load_pickle(self.preprocessed, "ImageNet cache")
            return preprocessed["train"], None, preprocessed["test"]

        text_file = require(
            os.path.join(self.dataset_dir, "classnames.txt"),
            "classnames.txt (CLIP's ImageNet class names)",
            "ImageNet",
        )
        classnames = read_classnames(text_file)
        train = read_class_folders(
            require(os.path.join(self.image_dir, "train"), "the training images", "ImageNet"), classnames, "ImageNet"
        )
        test = read_class_folders(
            require(os.path.join(self.image_dir, "val"), "the validation images", "ImageNet"), classnames, "ImageNet"
        )
        dump_pickle_atomically({"train": train, "test": test}, self.preprocessed)
        return train, None, test


class ImageNetVariant(DatasetBase):
    """A test-only ImageNet variant: ``<dataset_dir>/<image_subdir>/<wnid>/*`` and ImageNet's class names.

    ``classnames.txt`` is read from the variant's folder if there is one (CoOp's layout), else
    from ``<ROOT>/imagenet/``. Labels index the variant's own classes in sorted order, so the
    200-class ImageNet-A/-R get labels 0..199.
    """

    dataset_dir = ""
    image_subdir = ""

    def __init__(self, cfg):
        name = type(self).__name__
        root = dataset_root(cfg)
        self.dataset_dir = os.path.join(root, type(self).dataset_dir)
        self.image_dir = os.path.join(self.dataset_dir, self.image_subdir)
        require(self.image_dir, "the image folder", name)

        own_file = os.path.join(self.dataset_dir, "classnames.txt")
        text_file = own_file if os.path.exists(own_file) else os.path.join(root, "imagenet", "classnames.txt")
        require(text_file, f"ImageNet's classnames.txt (or a copy at {own_file})", name)
        parent = read_classnames(text_file)
        data = self.read_data(parent)
        super().__init__(train_x=data, test=data)
        # Where each class of the variant sits in classnames.txt, by label: the rows of a head over
        # ImageNet's classes that belong to this variant (DePT's release keeps those rows of its head).
        self.parent_rows = self.rows_in(parent)
        self.num_parent_classes = len(parent)

    def read_data(self, classnames):
        return read_class_folders(self.image_dir, classnames, type(self).__name__)

    def rows_in(self, classnames):
        """The position in ``classnames`` (classnames.txt) of each of the variant's labels."""
        position = {wnid: row for row, wnid in enumerate(classnames)}
        return [position[wnid] for wnid in class_folders(self.image_dir)]
