"""Toy: coloured shapes generated on the fly, for tests and demos without downloads.

``<DATASET.ROOT>/toy/`` holds ``images/<class folder>/<n>.png`` (random position, size and
background noise), ``split_zhou_Toy.json`` (CoOp's split format) and ``toy_config.json`` (the
generation settings). It is generated once, seeded by ``DATASET.TOY.SEED``, into a temporary
folder that is renamed into place, so concurrent or interrupted runs never see half a dataset.
After that it is read like every CoOp dataset (few-shot caching, base/new classes).

Keys under ``DATASET.TOY`` (declared in ``OPTIONS`` below, documented in docs/DATASETS.md#toy):
``NUM_CLASSES`` (the first k of the classes below), ``IMAGES_PER_CLASS``, ``IMAGE_SIZE`` (pixels),
``SEED``. A root generated with other values is refused: use another ``DATASET.ROOT``.
"""

import json
import os
import random
import shutil
import tempfile

from PIL import Image, ImageDraw

from dassl.data.datasets import DATASET_REGISTRY
from dassl.utils import ConfigError, MissingFileError

from .common import CoOpDataset, read_and_split_data, save_split

OPTIONS = {
    "DATASET.TOY": {
        "NUM_CLASSES": (4, "number of classes, 1 to 8: the first k of red circle, green square, blue triangle, "
                           "yellow cross, magenta diamond, cyan ring, orange bar, white star"),
        "IMAGES_PER_CLASS": (24, "images generated per class (at least 4), split 50% train / 20% val / 30% test"),
        "IMAGE_SIZE": (32, "image side in pixels (at least 8)"),
        "SEED": (0, "seed of the generation (images and split); independent of SEED, which draws few-shot subsets"),
    },
}

# (class name, RGB colour, shape); a linear model on pixels can tell them apart by colour alone.
TOY_CLASSES = [
    ("red circle", (220, 30, 30), "circle"),
    ("green square", (30, 190, 60), "square"),
    ("blue triangle", (40, 70, 230), "triangle"),
    ("yellow cross", (235, 215, 30), "cross"),
    ("magenta diamond", (210, 40, 200), "diamond"),
    ("cyan ring", (30, 210, 220), "ring"),
    ("orange bar", (245, 140, 20), "bar"),
    ("white star", (250, 250, 250), "star"),
]
TRAIN_RATIO, VAL_RATIO = 0.5, 0.2  # test gets the rest
CONFIG_FILE = "toy_config.json"
SPLIT_FILE = "split_zhou_Toy.json"


def toy_settings(cfg):
    toy = cfg.DATASET.TOY
    if not 1 <= toy.NUM_CLASSES <= len(TOY_CLASSES):
        raise ConfigError(
            "DATASET.TOY.NUM_CLASSES must be between 1 and {}, got {}".format(len(TOY_CLASSES), toy.NUM_CLASSES))
    if toy.IMAGES_PER_CLASS < 4:
        raise ConfigError("DATASET.TOY.IMAGES_PER_CLASS must be at least 4 (train/val/test each need one), "
                          "got {}".format(toy.IMAGES_PER_CLASS))
    if toy.IMAGE_SIZE < 8:
        raise ConfigError("DATASET.TOY.IMAGE_SIZE must be at least 8 pixels, got {}".format(toy.IMAGE_SIZE))
    return {"num_classes": toy.NUM_CLASSES, "images_per_class": toy.IMAGES_PER_CLASS,
            "image_size": toy.IMAGE_SIZE, "seed": toy.SEED}


def draw_shape(draw, shape, box, colour):
    """Draw ``shape`` filling ``box`` = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour)
    elif shape == "cross":
        draw.rectangle((x0, cy - h / 6, x1, cy + h / 6), fill=colour)
        draw.rectangle((cx - w / 6, y0, cx + w / 6, y1), fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=max(2, int(w / 5)))
    elif shape == "bar":
        draw.rectangle((x0, cy - h / 5, x1, cy + h / 5), fill=colour)
    elif shape == "star":
        points = [(cx, y0), (cx + w / 8, cy - h / 8), (x1, cy), (cx + w / 8, cy + h / 8),
                  (cx, y1), (cx - w / 8, cy + h / 8), (x0, cy), (cx - w / 8, cy - h / 8)]
        draw.polygon(points, fill=colour)
    else:
        raise ValueError("Unknown toy shape: {}".format(shape))


def make_image(rng, shape, colour, size):
    """A ``size`` x ``size`` RGB image: dark noisy background, one shape at a random place and size."""
    img = Image.new("RGB", (size, size))
    img.putdata([tuple(rng.randint(0, 70) for _ in range(3)) for _ in range(size * size)])
    draw = ImageDraw.Draw(img)
    side = rng.randint(size // 3, (3 * size) // 4)
    x0 = rng.randint(0, size - side)
    y0 = rng.randint(0, size - side)
    draw_shape(draw, shape, (x0, y0, x0 + side - 1, y0 + side - 1), colour)
    return img


def class_folder(classname):
    """``"0_red_circle"``: the index prefix makes sorted folder order (= label order) the class order."""
    index = [name for name, _, _ in TOY_CLASSES].index(classname)
    return "{}_{}".format(index, classname.replace(" ", "_"))


def generate_toy(dataset_dir, settings):
    """Write images, split file and settings into ``dataset_dir`` (atomically: temp folder + rename)."""
    parent = os.path.dirname(dataset_dir)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".toy-tmp-", dir=parent)
    try:
        rng = random.Random(settings["seed"])
        image_dir = os.path.join(tmp_dir, "images")
        for classname, colour, shape in TOY_CLASSES[: settings["num_classes"]]:
            class_dir = os.path.join(image_dir, class_folder(classname))
            os.makedirs(class_dir)
            for i in range(settings["images_per_class"]):
                img = make_image(rng, shape, colour, settings["image_size"])
                img.save(os.path.join(class_dir, "{:03d}.png".format(i)))
        cnames = {class_folder(name): name for name, _, _ in TOY_CLASSES}
        train, val, test = read_and_split_data(
            image_dir, p_trn=TRAIN_RATIO, p_val=VAL_RATIO, new_cnames=cnames, rng=random.Random(settings["seed"]))
        save_split(train, val, test, os.path.join(tmp_dir, SPLIT_FILE), image_dir)
        with open(os.path.join(tmp_dir, CONFIG_FILE), "w") as f:
            json.dump(settings, f, indent=4)
        try:
            os.rename(tmp_dir, dataset_dir)
        except OSError:
            if not os.path.isfile(os.path.join(dataset_dir, CONFIG_FILE)):
                raise
            shutil.rmtree(tmp_dir)  # another process generated it first: keep theirs
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    print("Generated the Toy dataset in {}".format(dataset_dir))


@DATASET_REGISTRY.register()
class Toy(CoOpDataset):
    dataset_dir = "toy"
    image_subdir = "images"
    split_name = SPLIT_FILE

    def locate(self, cfg):
        """``<DATASET.ROOT>/toy``, generated first when missing."""
        if not cfg.DATASET.ROOT:
            raise ConfigError(
                "Toy: DATASET.ROOT (--root) is empty; expected a folder in which the generated dataset "
                "will live as <root>/toy/. Pass e.g. --root ./data")
        dataset_dir = os.path.join(os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT)), self.dataset_dir)
        settings = toy_settings(cfg)
        config_path = os.path.join(dataset_dir, CONFIG_FILE)
        if not os.path.exists(dataset_dir):
            generate_toy(dataset_dir, settings)
        elif not os.path.isfile(config_path):
            raise MissingFileError(
                "Toy: {} exists but has no {}, so it was not made by the Toy generator. "
                "Remove it or choose another DATASET.ROOT.".format(dataset_dir, CONFIG_FILE))
        with open(config_path, "r") as f:
            existing = json.load(f)
        if existing != settings:
            raise ConfigError(
                "Toy: {} was generated with {}, but DATASET.TOY asks for {}. Delete that folder to "
                "regenerate it, or use another DATASET.ROOT.".format(dataset_dir, existing, settings))
        return dataset_dir
