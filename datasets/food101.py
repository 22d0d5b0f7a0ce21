"""Food101: ``food-101/images/<dish>/*.jpg`` + ``split_zhou_Food101.json``.

Class names are the folder names (``apple_pie``, ...), underscores kept as in CoOp.
"""

from dassl.data.datasets import DATASET_REGISTRY

from .common import CoOpDataset, read_and_split_data


@DATASET_REGISTRY.register()
class Food101(CoOpDataset):
    dataset_dir = "food-101"
    image_subdir = "images"
    split_name = "split_zhou_Food101.json"

    def make_split(self):
        return read_and_split_data(self.image_dir)
