"""ImageNet-A, test only: ``imagenet-adversarial/imagenet-a/<wnid>/*.jpg`` (a 200-class subset, labels 0..199)."""

from dassl.data.datasets import DATASET_REGISTRY

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetVariant):
    dataset_dir = "imagenet-adversarial"
    image_subdir = "imagenet-a"
