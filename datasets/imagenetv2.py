"""ImageNetV2 (matched frequency), test only: ``imagenetv2/imagenetv2-matched-frequency-format-val/<i>/*.jpeg``
where folder ``i`` holds class ``i`` of ImageNet (the i-th line of classnames.txt)."""

import os

from dassl.data.datasets import DATASET_REGISTRY, Datum
from dassl.utils import listdir_nohidden

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    dataset_dir = "imagenetv2"
    image_subdir = "imagenetv2-matched-frequency-format-val"

    def read_data(self, classnames):
        items = []
        for label, classname in enumerate(classnames.values()):
            class_dir = os.path.join(self.image_dir, str(label))
            for imname in listdir_nohidden(class_dir, sort=True):
                items.append(Datum(impath=os.path.join(class_dir, imname), label=label, classname=classname))
        return items

    def rows_in(self, classnames):
        return list(range(len(classnames)))  # folder i is the i-th class of classnames.txt
