"""SUN397: ``sun397/SUN397/<letter>/<scene>[/<sub>]/*.jpg``, ``ClassName.txt``, ``Training_01.txt``,
``Testing_01.txt`` + ``split_zhou_SUN397.json``."""

import os

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .common import CoOpDataset, require, split_trainval


@DATASET_REGISTRY.register()
class SUN397(CoOpDataset):
    dataset_dir = "sun397"
    image_subdir = "SUN397"
    split_name = "split_zhou_SUN397.json"

    def make_split(self):
        classnames_file = require(os.path.join(self.dataset_dir, "ClassName.txt"), "ClassName.txt", "SUN397")
        with open(classnames_file, "r") as f:
            # lines like "/a/abbey"; the leading "/" is dropped
            folders = [line.strip()[1:] for line in f if line.strip()]
        folder2label = {folder: label for label, folder in enumerate(folders)}
        trainval = self.read_partition(folder2label, "Training_01.txt")
        test = self.read_partition(folder2label, "Testing_01.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_partition(self, folder2label, text_file):
        filepath = require(os.path.join(self.dataset_dir, text_file), "a partition file", "SUN397")
        items = []
        with open(filepath, "r") as f:
            for line in f:
                if not line.strip():
                    continue
                relpath = line.strip()[1:]
                folder = os.path.dirname(relpath)
                # "a/apartment_building/outdoor" -> "outdoor apartment_building": drop the
                # letter, qualifiers such as indoor/outdoor first
                classname = " ".join(folder.split("/")[1:][::-1])
                items.append(
                    Datum(
                        impath=os.path.join(self.image_dir, relpath),
                        label=folder2label[folder],
                        classname=classname,
                    )
                )
        return items
