"""Helpers for the dataset tests: config objects and tiny image trees in the real layouts.

(Not named conftest.py: other test folders have one, and ``from conftest import`` would be ambiguous.)
"""

import io
import json
import os
import sys

from PIL import Image

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from dassl.config import get_cfg_default  # noqa: E402
from yacs.config import CfgNode as CN  # noqa: E402

_buffer = io.BytesIO()
Image.new("RGB", (4, 4), (200, 30, 30)).save(_buffer, format="JPEG")
JPEG_BYTES = _buffer.getvalue()


def add_image_folder_keys(cfg):
    """The DATASET.IMAGE_FOLDER node with train.py's defaults (used until train.py provides them)."""
    if "IMAGE_FOLDER" in cfg.DATASET:
        return
    node = CN()
    node.DIR = ""
    node.LAYOUT = "auto"
    node.SPLIT_FILE = "split.json"
    node.TRAIN_RATIO = 0.5
    node.VAL_RATIO = 0.2
    node.SPLIT_SEED = 1
    node.CLASSNAMES = []
    node.TEMPLATE = "a photo of a {}."
    cfg.DATASET.IMAGE_FOLDER = node


def make_cfg(root, name, num_shots=-1, seed=1, subsample="all"):
    cfg = get_cfg_default()
    try:
        from train import extend_cfg

        extend_cfg(cfg)
    except ImportError:
        pass
    add_image_folder_keys(cfg)
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.DATASET.NUM_SHOTS = num_shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.SEED = seed
    cfg.VERBOSE = False
    return cfg


def write_image(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(JPEG_BYTES)
    return path


def write_text(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


def class_tree(image_dir, folders, n_per_class, ext=".jpg"):
    """``image_dir/<folder>/img<i>.jpg``; returns ``{folder: [paths]}``."""
    out = {}
    for folder in folders:
        out[folder] = [write_image(os.path.join(image_dir, folder, f"img{i:03d}{ext}")) for i in range(n_per_class)]
    return out


def load(root, name, **kwargs):
    """Build a dataset through the registry, as DataManager does."""
    from dassl.data.datasets import build_dataset

    register_datasets()
    return build_dataset(make_cfg(root, name, **kwargs))


def register_datasets():
    import datasets  # noqa: F401  (its __init__ imports, hence registers, every reader)


def per_class_counts(items):
    counts = {}
    for item in items:
        counts[item.label] = counts.get(item.label, 0) + 1
    return counts

