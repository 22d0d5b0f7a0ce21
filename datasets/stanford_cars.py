"""StanfordCars: ``stanford_cars/{cars_train,cars_test}/*.jpg``, ``devkit/``, ``cars_test_annos_withlabels.mat``
+ ``split_zhou_StanfordCars.json`` (its paths are relative to ``stanford_cars/`` itself)."""

import os

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .common import CoOpDataset, load_matlab, require, split_trainval


@DATASET_REGISTRY.register()
class StanfordCars(CoOpDataset):
    dataset_dir = "stanford_cars"
    image_subdir = ""
    split_name = "split_zhou_StanfordCars.json"

    def make_split(self):
        meta_file = os.path.join(self.dataset_dir, "devkit", "cars_meta.mat")
        trainval = self.read_annotations(
            "cars_train", os.path.join(self.dataset_dir, "devkit", "cars_train_annos.mat"), meta_file
        )
        test = self.read_annotations(
            "cars_test", os.path.join(self.dataset_dir, "cars_test_annos_withlabels.mat"), meta_file
        )
        train, val = split_trainval(trainval)
        return train, val, test

    def read_annotations(self, image_subdir, anno_file, meta_file):
        annotations = load_matlab(require(anno_file, "an annotation file", "StanfordCars"))["annotations"][0]
        class_names = load_matlab(require(meta_file, "the class-name file", "StanfordCars"))["class_names"][0]
        items = []
        for annotation in annotations:
            impath = os.path.join(self.dataset_dir, image_subdir, str(annotation["fname"][0]))
            label = int(annotation["class"][0, 0]) - 1
            # "AM General Hummer SUV 2000" -> "2000 AM General Hummer SUV": the year reads first
            words = str(class_names[label][0]).split(" ")
            classname = " ".join([words[-1]] + words[:-1])
            items.append(Datum(impath=impath, label=label, classname=classname))
        return items
