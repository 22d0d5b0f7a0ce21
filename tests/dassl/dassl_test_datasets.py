"""Two tiny registered datasets for the multi-dataset tests: "TinyA" (3 classes) and "TinyB" (2 classes, no val).

Importing this module registers them; import it under this one name only. Images (8x8, one
colour per class) are written under ``<DATASET.ROOT>/<name>/`` on first use.
"""

import os

from PIL import Image

from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum

# name -> (class names, (train, val, test) images per class)
TINY_SPECS = {
    "TinyA": (["ant", "bee", "cat"], (4, 2, 3)),
    "TinyB": (["dog", "elk"], (5, 0, 2)),
}
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200)]


def tiny_split(root, name):
    """``{"train": [Datum], "val": [...], "test": [...]}`` of dataset ``name``, images created if missing."""
    classnames, sizes = TINY_SPECS[name]
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    split = {"train": [], "val": [], "test": []}
    for (split_name, items), per_class in zip(split.items(), sizes):
        for label, classname in enumerate(classnames):
            for i in range(per_class):
                path = os.path.join(folder, "{}_{}_{}.png".format(classname, split_name, i))
                if not os.path.isfile(path):
                    Image.new("RGB", (8, 8), COLOURS[(label + len(name)) % len(COLOURS)]).save(path)
                items.append(Datum(impath=path, label=label, classname=classname))
    return split


class _Tiny(DatasetBase):
    def __init__(self, cfg):
        split = tiny_split(cfg.DATASET.ROOT, type(self).__name__)
        super().__init__(train_x=split["train"], val=split["val"], test=split["test"])


@DATASET_REGISTRY.register()
class TinyA(_Tiny):
    pass


@DATASET_REGISTRY.register()
class TinyB(_Tiny):
    pass
