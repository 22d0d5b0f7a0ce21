"""OxfordPets: ``oxford_pets/images/*.jpg``, ``annotations/{trainval,test}.txt`` + ``split_zhou_OxfordPets.json``."""

import os

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .common import CoOpDataset, require, split_trainval


@DATASET_REGISTRY.register()
class OxfordPets(CoOpDataset):
    dataset_dir = "oxford_pets"
    image_subdir = "images"
    split_name = "split_zhou_OxfordPets.json"

    def make_split(self):
        trainval = self.read_annotations("trainval.txt")
        test = self.read_annotations("test.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_annotations(self, split_file):
        """Lines ``<Breed_Name>_<n> <class id from 1> <species> <breed id>``; class name = breed, lower case."""
        filepath = require(
            os.path.join(self.dataset_dir, "annotations", split_file),
            "the annotation file (or the split file split_zhou_OxfordPets.json)",
            "OxfordPets",
        )
        items = []
        with open(filepath, "r") as f:
            for line in f:
                if not line.strip():
                    continue
                imname, class_id, _species, _breed_id = line.split()
                breed = "_".join(imname.split("_")[:-1]).lower()
                impath = os.path.join(self.image_dir, imname + ".jpg")
                items.append(Datum(impath=impath, label=int(class_id) - 1, classname=breed))
        return items
