"""``build_transform``: the train / test image pipelines chosen by ``cfg.INPUT.TRANSFORMS``.

The engine fixes the order of the steps; the order of names in the config does not matter.
"""

import random

import numpy as np
import torch
from torchvision.transforms import (
    AutoAugment,
    AutoAugmentPolicy,
    CenterCrop,
    ColorJitter,
    Compose,
    GaussianBlur,
    InterpolationMode,
    Normalize,
    RandAugment,
    RandomApply,
    RandomCrop,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)
from torchvision.transforms import functional as TF

__all__ = ["AVAI_CHOICES", "INTERPOLATION_MODES", "build_transform"]

AVAI_CHOICES = [
    "random_flip",
    "random_resized_crop",
    "normalize",
    "instance_norm",
    "random_crop",
    "random_translation",
    "center_crop",  # accepted; has no effect in training (the test pipeline always crops)
    "cutout",
    "imagenet_policy",
    "cifar10_policy",
    "svhn_policy",
    "randaugment",
    "randaugment_fixmatch",
    "randaugment2",
    "gaussian_noise",
    "colorjitter",
    "randomgrayscale",
    "gaussian_blur",
]

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


class Random2DTranslation:
    """With p=0.5 plain resize to (H, W); else resize 1.125x larger and crop a random (H, W) window."""

    def __init__(self, height, width, p=0.5, interpolation=InterpolationMode.BILINEAR):
        self.height, self.width, self.p, self.interpolation = height, width, p, interpolation

    def __call__(self, img):
        if random.uniform(0, 1) > self.p:
            return TF.resize(img, [self.height, self.width], self.interpolation)
        new_h, new_w = int(round(self.height * 1.125)), int(round(self.width * 1.125))
        resized = TF.resize(img, [new_h, new_w], self.interpolation)
        top = int(round(random.uniform(0, new_h - self.height)))
        left = int(round(random.uniform(0, new_w - self.width)))
        return TF.crop(resized, top, left, self.height, self.width)


class Cutout:
    """Zero ``n_holes`` squares of side ``length`` in a (C, H, W) tensor (centres clipped at borders)."""

    def __init__(self, n_holes=1, length=16):
        self.n_holes, self.length = n_holes, length

    def __call__(self, img):
        h, w = img.shape[1], img.shape[2]
        mask = torch.ones(h, w, dtype=img.dtype)
        for _ in range(self.n_holes):
            y, x = int(np.random.randint(h)), int(np.random.randint(w))
            y1, y2 = max(0, y - self.length // 2), min(h, y + self.length // 2)
            x1, x2 = max(0, x - self.length // 2), min(w, x + self.length // 2)
            mask[y1:y2, x1:x2] = 0
        return img * mask


class GaussianNoise:
    """With probability ``p`` add N(mean, std) noise to a tensor."""

    def __init__(self, mean=0.0, std=0.15, p=0.5):
        self.mean, self.std, self.p = mean, std, p

    def __call__(self, img):
        if random.uniform(0, 1) > self.p:
            return img
        return img + torch.randn_like(img) * self.std + self.mean


class InstanceNormalization:
    """Per-image, per-channel (x - mean) / (std + 1e-8) on a (C, H, W) tensor."""

    def __call__(self, img):
        c = img.shape[0]
        flat = img.reshape(c, -1)
        mean = flat.mean(1).view(c, 1, 1)
        std = flat.std(1).view(c, 1, 1)
        return (img - mean) / (std + 1e-8)


def build_transform(cfg, is_train=True, choices=None):
    """A torchvision ``Compose`` mapping a PIL image to a (3, H, W) float tensor, or None.

    ``choices`` defaults to ``cfg.INPUT.TRANSFORMS``; every name must be in AVAI_CHOICES.
    """
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None
    if choices is None:
        choices = cfg.INPUT.TRANSFORMS
    for choice in choices:
        assert choice in AVAI_CHOICES, 'Unknown transform "{}" in INPUT.TRANSFORMS; expected one of {}'.format(
            choice, AVAI_CHOICES
        )
    if cfg.INPUT.INTERPOLATION not in INTERPOLATION_MODES:
        raise ValueError(
            'INPUT.INTERPOLATION must be one of {}, got "{}"'.format(list(INTERPOLATION_MODES), cfg.INPUT.INTERPOLATION)
        )
    target_size = "{}x{}".format(cfg.INPUT.SIZE[0], cfg.INPUT.SIZE[1])
    normalize = Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)
    if is_train:
        return _build_transform_train(cfg, choices, target_size, normalize)
    return _build_transform_test(cfg, choices, target_size, normalize)


def _build_transform_train(cfg, choices, target_size, normalize):
    print("Building transform_train")
    tfm = []
    interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    size = list(cfg.INPUT.SIZE)

    def add(line, step):
        print("+ " + line)
        tfm.append(step)

    if "random_crop" not in choices and "random_resized_crop" not in choices:
        add("resize to {}".format(target_size), Resize(size, interpolation=interp))
    if "random_translation" in choices:
        add("random translation", Random2DTranslation(size[0], size[1]))
    if "random_crop" in choices:
        add("random crop (padding = {})".format(cfg.INPUT.CROP_PADDING),
            RandomCrop(size, padding=cfg.INPUT.CROP_PADDING))
    if "random_resized_crop" in choices:
        scale = tuple(cfg.INPUT.RRCROP_SCALE)
        add("random resized crop (size={}, scale={})".format(tuple(size), scale),
            RandomResizedCrop(size, scale=scale, interpolation=interp))
    if "random_flip" in choices:
        add("random flip", RandomHorizontalFlip())
    # AutoAugment / RandAugment: torchvision's implementations stand in for Dassl's own policies.
    policies = {"imagenet_policy": AutoAugmentPolicy.IMAGENET, "cifar10_policy": AutoAugmentPolicy.CIFAR10,
                "svhn_policy": AutoAugmentPolicy.SVHN}
    for name, policy in policies.items():
        if name in choices:
            add("{} (torchvision AutoAugment)".format(name.replace("_", " ")),
                AutoAugment(policy, fill=[128, 128, 128]))
    if "randaugment" in choices:
        n, m = cfg.INPUT.RANDAUGMENT_N, cfg.INPUT.RANDAUGMENT_M
        add("randaugment (n={}, m={})".format(n, m), RandAugment(num_ops=n, magnitude=m))
    for name in ("randaugment_fixmatch", "randaugment2"):
        if name in choices:
            n = cfg.INPUT.RANDAUGMENT_N
            add("{} (n={}, torchvision RandAugment)".format(name, n), RandAugment(num_ops=n))
    if "colorjitter" in choices:
        b, c, s, h = (cfg.INPUT.COLORJITTER_B, cfg.INPUT.COLORJITTER_C, cfg.INPUT.COLORJITTER_S,
                      cfg.INPUT.COLORJITTER_H)
        add("color jitter", ColorJitter(brightness=b, contrast=c, saturation=s, hue=h))
    if "randomgrayscale" in choices:
        add("random gray scale", RandomGrayscale(p=cfg.INPUT.RGS_P))
    if "gaussian_blur" in choices:
        gb_k, gb_p = cfg.INPUT.GB_K, cfg.INPUT.GB_P
        add("gaussian blur (kernel={}, p={})".format(gb_k, gb_p), RandomApply([GaussianBlur(gb_k)], p=gb_p))
    add("to torch tensor of range [0, 1]", ToTensor())
    if "cutout" in choices:
        n, length = cfg.INPUT.CUTOUT_N, cfg.INPUT.CUTOUT_LEN
        add("cutout (n_holes={}, length={})".format(n, length), Cutout(n, length))
    if "normalize" in choices:
        add("normalization (mean={}, std={})".format(cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD), normalize)
    if "gaussian_noise" in choices:
        add("gaussian noise (mean={}, std={})".format(cfg.INPUT.GN_MEAN, cfg.INPUT.GN_STD),
            GaussianNoise(cfg.INPUT.GN_MEAN, cfg.INPUT.GN_STD))
    if "instance_norm" in choices:
        add("instance normalization", InstanceNormalization())
    return Compose(tfm)


def _build_transform_test(cfg, choices, target_size, normalize):
    print("Building transform_test")
    tfm = []
    interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]

    def add(line, step):
        print("+ " + line)
        tfm.append(step)

    add("resize the smaller edge to {}".format(max(cfg.INPUT.SIZE)), Resize(max(cfg.INPUT.SIZE), interpolation=interp))
    add("{} center crop".format(target_size), CenterCrop(list(cfg.INPUT.SIZE)))
    add("to torch tensor of range [0, 1]", ToTensor())
    if "normalize" in choices:
        add("normalization (mean={}, std={})".format(cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD), normalize)
    if "instance_norm" in choices:
        add("instance normalization", InstanceNormalization())
    return Compose(tfm)
