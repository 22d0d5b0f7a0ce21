"""Small file-system, JSON, seeding and environment helpers."""

import difflib
import errno
import functools
import json
import os
import os.path as osp
import random
import sys
import time
import urllib.request
import warnings

import numpy as np
import PIL
import torch
from PIL import Image

from ..errors import MissingFileError, UnknownNameError, UnreadableImageError

__all__ = [
    "mkdir_if_missing",
    "check_isfile",
    "read_json",
    "write_json",
    "set_random_seed",
    "download_url",
    "read_image",
    "collect_env_info",
    "listdir_nohidden",
    "get_most_similar_str_to_a_from_b",
    "check_availability",
    "tolist_if_not",
    "plural",
]


def mkdir_if_missing(dirname):
    """Create ``dirname`` (and parents); a concurrent creation is not an error."""
    if osp.exists(dirname):
        return
    try:
        os.makedirs(dirname)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise


def check_isfile(fpath):
    """True when ``fpath`` is an existing file; otherwise warn and return False."""
    isfile = osp.isfile(fpath)
    if not isfile:
        warnings.warn('No file found at "{}"'.format(fpath))
    return isfile


def read_json(fpath):
    with open(fpath, "r") as f:
        return json.load(f)


def write_json(obj, fpath):
    """Write ``obj`` as indented JSON, creating the parent folder."""
    parent = osp.dirname(fpath)
    if parent:
        mkdir_if_missing(parent)
    with open(fpath, "w") as f:
        json.dump(obj, f, indent=4, separators=(",", ": "))


def set_random_seed(seed):
    """Seed Python, NumPy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def download_url(url, dst):
    """Download ``url`` to ``dst`` with a one-line progress report."""
    parent = osp.dirname(dst)
    if parent:
        mkdir_if_missing(parent)
    start = time.time()

    def report(count, block_size, total_size):
        done = count * block_size
        speed = done / max(time.time() - start, 1e-6) / 1024
        percent = min(100, done * 100 // max(total_size, 1))
        sys.stdout.write("\r...{}%, {} MB, {} KB/s".format(percent, done // (1024 * 1024), int(speed)))
        sys.stdout.flush()

    urllib.request.urlretrieve(url, dst, report)
    sys.stdout.write("\n")


def read_image(path):
    """Open an image file as an RGB PIL image; errors name the file."""
    if not osp.exists(path):
        raise MissingFileError(
            'Image not found: "{}". Check DATASET.ROOT and the split file that lists it.'.format(path))
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except Exception as e:
        raise UnreadableImageError('Cannot read image "{}" ({}: {}). The file may be corrupt; '
                      "delete or replace it.".format(path, type(e).__name__, e)) from e


@functools.lru_cache(maxsize=1)
def collect_env_info():
    """torch's environment report plus the Pillow version; never raises.

    Cached: the report shells out (pip, conda, nvidia-smi) and takes seconds, and the
    environment does not change within a process.
    """
    try:
        from torch.utils.collect_env import get_pretty_env_info

        info = get_pretty_env_info()
    except Exception as e:  # it shells out (pip, conda, nvidia-smi) and may fail in sandboxes
        info = "PyTorch version: {} (full environment report unavailable: {})".format(torch.__version__, e)
    info += "\n        Pillow ({})".format(PIL.__version__)
    return info


def listdir_nohidden(path, sort=False):
    """Entries of ``path`` not starting with '.', sorted only when ``sort``."""
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    if sort:
        items.sort()
    return items


def get_most_similar_str_to_a_from_b(a, b):
    """The string in ``b`` most similar to ``a``, ignoring case (later candidates win ties)."""
    best, best_score = b[0] if b else None, -1.0
    for candidate in b:
        score = difflib.SequenceMatcher(None, a.lower(), candidate.lower()).ratio()
        if score >= best_score:
            best, best_score = candidate, score
    return best


def check_availability(requested, available):
    """Raise UnknownNameError (a ValueError) listing ``available`` when ``requested`` is not one of them."""
    available = list(available)
    if requested not in available:
        closest = get_most_similar_str_to_a_from_b(requested, available)
        raise UnknownNameError(
            "The requested one is expected to belong to {}, but got [{}] "
            "(do you mean [{}]?)".format(available, requested, closest)
        )


def tolist_if_not(x):
    if not isinstance(x, list):
        x = [x]
    return x


def plural(count, singular, plural_form=None):
    """``plural(1, "block")`` -> "1 block", ``plural(2, "block")`` -> "2 blocks" (for log lines).

    ``plural_form`` for irregular words: ``plural(3, "class", "classes")``. Numbers of 1,000 and
    more get thousands separators.
    """
    word = singular if count == 1 else (plural_form or singular + "s")
    number = "{:,}".format(count) if isinstance(count, int) else str(count)
    return "{} {}".format(number, word)
