"""FGVCAircraft (variants): ``fgvc_aircraft/images/*.jpg``, ``variants.txt``,
``images_variant_{train,val,test}.txt``. The official split is used as is; there is no split file."""

import os

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .common import CoOpDataset, require


@DATASET_REGISTRY.register()
class FGVCAircraft(CoOpDataset):
    dataset_dir = "fgvc_aircraft"
    image_subdir = "images"

    def read_splits(self):
        variants_file = require(os.path.join(self.dataset_dir, "variants.txt"), "variants.txt", "FGVCAircraft")
        with open(variants_file, "r") as f:
            variants = [line.strip() for line in f if line.strip()]
        variant2label = {variant: label for label, variant in enumerate(variants)}
        return tuple(
            self.read_list(variant2label, f"images_variant_{split}.txt") for split in ("train", "val", "test")
        )

    def read_list(self, variant2label, list_file):
        """Lines ``<image id> <variant name, may contain spaces>``."""
        filepath = require(os.path.join(self.dataset_dir, list_file), list_file, "FGVCAircraft")
        items = []
        with open(filepath, "r") as f:
            for line in f:
                if not line.strip():
                    continue
                image_id, variant = line.strip().split(" ", 1)
                impath = os.path.join(self.image_dir, image_id + ".jpg")
                items.append(Datum(impath=impath, label=variant2label[variant], classname=variant))
        return items
