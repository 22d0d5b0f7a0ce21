"""OxfordFlowers: ``oxford_flowers/jpg/image_<n>.jpg``, ``imagelabels.mat``, ``cat_to_name.json``
+ ``split_zhou_OxfordFlowers.json``."""

import os
import random
from collections import defaultdict

from dassl.data.datasets import DATASET_REGISTRY, Datum
from dassl.utils import ConfigError, read_json

from .common import CoOpDataset, load_matlab, require


@DATASET_REGISTRY.register()
class OxfordFlowers(CoOpDataset):
    dataset_dir = "oxford_flowers"
    image_subdir = "jpg"
    split_name = "split_zhou_OxfordFlowers.json"

    def make_split(self):
        """50% train / 20% val / 30% test per class; class names from ``cat_to_name.json``."""
        label_file = require(
            os.path.join(self.dataset_dir, "imagelabels.mat"), "imagelabels.mat", "OxfordFlowers"
        )
        names_file = require(
            os.path.join(self.dataset_dir, "cat_to_name.json"), "cat_to_name.json", "OxfordFlowers"
        )
        # labels[i] is the 1-based class of image_<i+1>.jpg
        labels = load_matlab(label_file)["labels"][0]
        impaths_by_label = defaultdict(list)
        for i, label in enumerate(labels):
            impath = os.path.join(self.image_dir, f"image_{i + 1:05d}.jpg")
            impaths_by_label[int(label)].append(impath)

        lab2cname = read_json(names_file)
        print("Splitting data into 50% train, 20% val, and 30% test")
        train, val, test = [], [], []
        for label, impaths in impaths_by_label.items():
            random.shuffle(impaths)
            n_train = round(len(impaths) * 0.5)
            n_val = round(len(impaths) * 0.2)
            if min(n_train, n_val, len(impaths) - n_train - n_val) < 1:
                raise ConfigError(f"class {label} has only {len(impaths)} images, too few to split")
            classname = lab2cname[str(label)]

            def to_items(paths):
                return [Datum(impath=p, label=label - 1, classname=classname) for p in paths]

            train.extend(to_items(impaths[:n_train]))
            val.extend(to_items(impaths[n_train : n_train + n_val]))
            test.extend(to_items(impaths[n_train + n_val :]))
        return train, val, test
