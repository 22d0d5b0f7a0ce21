"""ImageNet-R, test only: ``imagenet-rendition/imagenet-r/<wnid>/*.jpg`` (a 200-class subset, labels 0..199)."""

from dassl.data.datasets import DATASET_REGISTRY

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetVariant):
    dataset_dir = "imagenet-rendition"
    image_subdir = "imagenet-r"
