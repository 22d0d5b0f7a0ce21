"""DescribableTextures (DTD): ``dtd/images/<texture>/*.jpg`` + ``split_zhou_DescribableTextures.json``.

Class names are the folder names as they are (``banded``, ``bubbly``, ...).
"""

from dassl.data.datasets import DATASET_REGISTRY

from .common import CoOpDataset, read_and_split_data


@DATASET_REGISTRY.register()
class DescribableTextures(CoOpDataset):
    dataset_dir = "dtd"
    image_subdir = "images"
    split_name = "split_zhou_DescribableTextures.json"

    def make_split(self):
        return read_and_split_data(self.image_dir)
