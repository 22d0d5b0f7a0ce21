"""What every CoOp-family dataset does the same way, written once.

* split files ``split_zhou_<Name>.json``: ``{"train"|"val"|"test": [[relpath, label, classname], ...]}``
  with paths relative to the dataset's image folder (CoOp's format, so published files work as is);
* a split rebuilt from the original files when the published one is missing is saved as
  ``split_rebuilt_<Name>.json`` (never under the published name), its few-shot subsets in
  ``split_fewshot_rebuilt/``, and every run that uses it says that results are not comparable
  with the papers'; the published file takes precedence as soon as it is there;
* ``read_and_split_data``: a folder of class sub-folders cut into 50% train / 20% val / 30% test;
* few-shot subsets cached in ``<dataset_dir>/split_fewshot/shot_<K>-seed_<S>.pkl``;
* the validation set (``DATASET.VAL_SPLIT``): the dataset's own, or a seeded per-class hold-out
  from the train split (``train_holdout``, ``holdout_val``);
* base/new classes (``DATASET.SUBSAMPLE_CLASSES``);
* ``CoOpDataset``: the base class, so that a dataset file says only where its images are and how
  its classes are named.

Random draws go through Python's global ``random`` in the same order as CoOp's readers, so with
the same seed the same images are picked.
"""

import math
import os
import pickle
import random
import tempfile
from collections import defaultdict

from dassl.data.datasets import Datum, DatasetBase, log_warning
from dassl.utils import ConfigError, MissingFileError, listdir_nohidden, plural, read_json, write_json

DOCS = "docs/DATASETS.md"
PUBLISHED_PREFIX = "split_zhou_"
REBUILT_PREFIX = "split_rebuilt_"
FEWSHOT_DIR = "split_fewshot"
REBUILT_FEWSHOT_DIR = "split_fewshot_rebuilt"
VAL_SPLITS = ("dataset", "train_holdout")


def rebuilt_split_name(split_name):
    """``split_zhou_Caltech101.json`` -> ``split_rebuilt_Caltech101.json``: a rebuilt split never
    takes the published file's name, so it cannot be mistaken for it (by us or by CoOp's readers)."""
    if split_name.startswith(PUBLISHED_PREFIX):
        return REBUILT_PREFIX + split_name[len(PUBLISHED_PREFIX):]
    return REBUILT_PREFIX + split_name


def rebuilt_split_warning(dataset_name, rebuilt_path, published_path):
    return (
        f"{dataset_name} uses the split {rebuilt_path}, rebuilt at random from the original files because the "
        f"published split {published_path} is missing: it is NOT the published split, so results are not "
        f"comparable with the papers'. Download the published file (scripts/download_data.py, {DOCS}); once it "
        f"is there it is used instead."
    )


def dataset_root(cfg):
    """Absolute ``DATASET.ROOT`` (``~`` expanded; empty means the current directory)."""
    return os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))


def require(path, what, dataset_name, hint=""):
    """Return ``path`` if it exists, else raise an error a person can act on."""
    if os.path.exists(path):
        return path
    anchor = dataset_name.lower()
    message = (
        f"{dataset_name}: expected {what} at {path}, but it does not exist. "
        f"Check DATASET.ROOT (--root) and lay the files out as described in {DOCS}#{anchor}"
    )
    if hint:
        message += f"; {hint}"
    raise MissingFileError(message + ".")


def load_matlab(filepath):
    """Read a ``.mat`` annotation file (OxfordFlowers, StanfordCars) with scipy.

    scipy is needed only to rebuild a split from the original annotations; with the published
    split files it is never imported.
    """
    try:
        from scipy.io import loadmat
    except ImportError as error:
        raise ImportError(
            f"reading {filepath} needs scipy (pip install scipy); alternatively download the "
            f"published split file, which makes the .mat files unnecessary (see {DOCS})"
        ) from error
    return loadmat(filepath)


def read_split(filepath, path_prefix):
    """Read a CoOp split file; image paths in it are relative to ``path_prefix``."""
    print(f"Reading split from {filepath}")
    try:
        split = read_json(filepath)
        rows = {name: split[name] for name in ("train", "val", "test")}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"Cannot read the split file {filepath} ({type(error).__name__}: {error}); expected CoOp's JSON "
            f'{{"train": [[path, label, class name], ...], "val": [...], "test": [...]}}. Replace it with the '
            f"published file ({DOCS})."
        ) from error

    def to_items(rows):
        return [
            Datum(impath=os.path.join(path_prefix, relpath), label=int(label), classname=classname)
            for relpath, label, classname in rows
        ]

    return to_items(rows["train"]), to_items(rows["val"]), to_items(rows["test"])


def save_split(train, val, test, filepath, path_prefix):
    """Write a split file in CoOp's format, image paths made relative to ``path_prefix``."""

    def to_rows(items):
        return [(os.path.relpath(item.impath, path_prefix), item.label, item.classname) for item in items]

    split = {"train": to_rows(train), "val": to_rows(val), "test": to_rows(test)}
    write_json(split, filepath)
    print(f"Saved split to {filepath}")


def split_trainval(trainval, p_val=0.2):
    """Cut an official train+val list into train and val, ``p_val`` of each class to val.

    Used where the original dataset gives only train/test (OxfordPets, StanfordCars, SUN397, UCF101).
    """
    print(f"Splitting trainval into {1 - p_val:.0%} train and {p_val:.0%} val")
    indices_by_label = defaultdict(list)
    for index, item in enumerate(trainval):
        indices_by_label[item.label].append(index)

    train, val = [], []
    for label, indices in indices_by_label.items():
        n_val = round(len(indices) * p_val)
        if n_val < 1:
            raise ConfigError(
                f"class {label} has {len(indices)} train+val images, too few to put {p_val:.0%} "
                f"of them in the val split; every class needs at least {math.ceil(0.5 / p_val)}"
            )
        random.shuffle(indices)
        val.extend(trainval[i] for i in indices[:n_val])
        train.extend(trainval[i] for i in indices[n_val:])
    return train, val


def read_and_split_data(image_dir, p_trn=0.5, p_val=0.2, ignored=(), new_cnames=None, rng=random):
    """Split a folder of class sub-folders (``image_dir/<class>/<image>``) per class.

    Labels follow the sorted folder names; ``new_cnames`` maps a folder name to a better class
    name; folders in ``ignored`` are skipped. ``rng`` defaults to the global ``random`` (CoOp's
    behaviour); pass a ``random.Random(seed)`` to split without touching the global state.
    """
    categories = sorted(c for c in listdir_nohidden(image_dir) if c not in ignored)
    new_cnames = new_cnames or {}
    print(f"Splitting into {p_trn:.0%} train, {p_val:.0%} val, and {1 - p_trn - p_val:.0%} test")

    train, val, test = [], [], []
    for label, category in enumerate(categories):
        category_dir = os.path.join(image_dir, category)
        # Sorted before shuffling so that a seed gives the same split on every file system
        images = [os.path.join(category_dir, name) for name in listdir_nohidden(category_dir, sort=True)]
        rng.shuffle(images)
        n_train = round(len(images) * p_trn)
        n_val = round(len(images) * p_val)
        n_test = len(images) - n_train - n_val
        if min(n_train, n_val, n_test) < 1:
            raise ConfigError(
                f"{category_dir} holds {len(images)} images; a {p_trn:.0%}/{p_val:.0%}/rest split "
                f"gives {n_train}/{n_val}/{n_test}, but each part needs at least one image. "
                "Add images to that class or remove the folder."
            )
        classname = new_cnames.get(category, category)

        def to_items(paths):
            return [Datum(impath=p, label=label, classname=classname) for p in paths]

        train.extend(to_items(images[:n_train]))
        val.extend(to_items(images[n_train : n_train + n_val]))
        test.extend(to_items(images[n_train + n_val :]))
    return train, val, test


def fewshot_cache_path(dataset_dir, num_shots, seed, folder=FEWSHOT_DIR):
    return os.path.join(dataset_dir, folder, f"shot_{num_shots}-seed_{seed}.pkl")


def load_pickle(filepath, what):
    """A cache this code wrote (``what`` names it in the error); a corrupt one is an error saying to delete it."""
    try:
        with open(filepath, "rb") as f:
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as error:
        raise ConfigError(
            f"Cannot read the {what} {filepath} ({type(error).__name__}: {error}). Delete it: it is rebuilt "
            f"on the next run."
        ) from error


def dump_pickle_atomically(obj, filepath):
    """Write to a temporary file then rename, so a killed run never leaves a truncated cache."""
    folder = os.path.dirname(filepath)
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp_path, filepath)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def load_or_make_fewshot(dataset, dataset_dir, num_shots, seed, train, val=None, folder=FEWSHOT_DIR):
    """Return ``(train, val)`` reduced to ``num_shots`` images per class (val: ``min(K, 4)``).

    ``num_shots < 1`` returns them unchanged. The subsets are cached in
    ``<dataset_dir>/<folder>/shot_<K>-seed_<S>.pkl`` (``folder``: ``split_fewshot``, or
    ``split_fewshot_rebuilt`` for a rebuilt split) as ``{"train": [...], "val": [...]}``
    (only ``"train"`` when ``val`` is None, as CoOp's ImageNet), and read back on the next run so
    every method trained with the same seed sees the same images. ``dataset`` is the
    ``DatasetBase`` whose ``generate_fewshot_dataset`` draws the subsets.
    """
    if num_shots < 1:
        return train, val
    cache = fewshot_cache_path(dataset_dir, num_shots, seed, folder)
    if os.path.exists(cache):
        print(f"Loading preprocessed few-shot data from {cache}")
        data = load_pickle(cache, "few-shot cache")
        return data["train"], data.get("val", val)

    train = dataset.generate_fewshot_dataset(train, num_shots=num_shots, what="train set")
    data = {"train": train}
    if val is not None:
        val = dataset.generate_fewshot_dataset(val, num_shots=min(num_shots, 4), what="val set (min(K, 4) per class)")
        data["val"] = val
    print(f"Saving preprocessed few-shot data to {cache}")
    dump_pickle_atomically(data, cache)
    return train, val


def holdout_val(full_train, train, num_shots, seed, val_percent):
    """``(train, val)`` with val a seeded per-class hold-out from ``full_train`` (``DATASET.VAL_SPLIT train_holdout``).

    Few-shot (``num_shots >= 1``): ``train`` (the few-shot subset) is kept as it is, and val gets
    ``min(K, 4)`` images per class (CoOp's rule) drawn from that class's train images that are not
    in ``train``. Full data: ``round(val_percent * n)`` images (at least one) of each class move
    from train to val. Neither touches the test split. The draw uses its own ``random.Random(seed)``
    over the train split's order, so the same seed gives the same hold-out on every run, and the
    few-shot train draw (global ``random``) stays the one of ``VAL_SPLIT dataset``.
    """
    rng = random.Random(seed)
    taken = {item.impath for item in train} if num_shots >= 1 else set()
    by_label, classnames = defaultdict(list), {}
    for item in full_train:
        classnames.setdefault(item.label, item.classname)
        if item.impath not in taken:
            by_label[item.label].append(item)

    val, held_out, short = [], set(), []
    for label in sorted(classnames):
        candidates = by_label[label]
        if num_shots >= 1:
            wanted = min(num_shots, 4)
        else:  # keep at least one training image
            wanted = min(max(1, round(val_percent * len(candidates))), len(candidates) - 1)
        n_val = max(0, min(wanted, len(candidates)))
        if n_val < max(wanted, 1):
            short.append(f"{classnames[label]!r} ({len(candidates)} train images left, {n_val} held out)")
        chosen = rng.sample(candidates, n_val)
        val.extend(chosen)
        held_out.update(item.impath for item in chosen)
    if short:
        log_warning(
            f"DATASET.VAL_SPLIT train_holdout: {plural(len(short), 'class', 'classes')} of the train split "
            f"{'has' if len(short) == 1 else 'have'} too few images outside the training set for a full "
            f"hold-out: {', '.join(short[:10])}{' ...' if len(short) > 10 else ''}."
        )
    if num_shots < 1:
        train = [item for item in full_train if item.impath not in held_out]
    print(f"Validation set: {len(val):,} images held out from the train split (DATASET.VAL_SPLIT train_holdout)")
    return train, val


def subsample_classes(*splits, subsample="all"):
    """Keep the base (first ceil(n/2) sorted labels) or new (the rest) classes, relabelled from 0.

    Labels are taken from the first split (train). Returns the splits in the same order.
    """
    if subsample not in ("all", "base", "new"):
        raise ConfigError(f'DATASET.SUBSAMPLE_CLASSES must be "all", "base" or "new", got "{subsample}"')
    if subsample == "all":
        return splits

    labels = sorted({item.label for item in splits[0]})
    m = math.ceil(len(labels) / 2)
    selected = labels[:m] if subsample == "base" else labels[m:]
    relabel = {old: new for new, old in enumerate(selected)}
    print(f"SUBSAMPLE {subsample.upper()} CLASSES!")

    return tuple(
        [
            Datum(impath=item.impath, label=relabel[item.label], classname=item.classname)
            for item in split
            if item.label in relabel
        ]
        for split in splits
    )


class CoOpDataset(DatasetBase):
    """A dataset with a fixed train/val/test split, cached few-shot subsets and base/new classes.

    A subclass says where its files are, relative to ``DATASET.ROOT``:

    * ``dataset_dir``: its folder (e.g. ``"oxford_pets"``);
    * ``image_subdir``: the image folder inside it; split-file paths are relative to it;
    * ``split_name``: ``split_zhou_<Name>.json`` inside ``dataset_dir``;

    and implements ``make_split()`` when the split can be rebuilt from the original files
    (otherwise a missing split file is an error), or overrides ``read_splits()`` when there is
    no split file at all. ``read_splits`` may return ``val=None``: the test split then doubles
    as validation set (ImageNet).
    """

    dataset_dir = ""
    image_subdir = ""
    split_name = ""

    def __init__(self, cfg):
        name = type(self).__name__
        self.dataset_dir = self.locate(cfg)
        self.image_dir = os.path.join(self.dataset_dir, self.image_subdir)
        self.split_path = os.path.join(self.dataset_dir, self.split_name) if self.split_name else ""
        # Set by read_splits when the split in use was rebuilt (not the published file)
        self.rebuilt_split_path = ""
        require(self.dataset_dir, "the dataset folder", name)
        require(self.image_dir, "the image folder", name)

        val_split = cfg.DATASET.VAL_SPLIT
        if val_split not in VAL_SPLITS:
            raise ConfigError(
                f'DATASET.VAL_SPLIT must be "dataset" (the dataset\'s own val split) or "train_holdout" (a seeded '
                f'per-class hold-out from the train split), got "{val_split}"'
            )
        train, val, test = self.read_splits()
        # Few-shot subsets of a rebuilt split live apart, so they never pass for the published split's
        self.split_fewshot_dir = os.path.join(
            self.dataset_dir, REBUILT_FEWSHOT_DIR if self.rebuilt_split_path else FEWSHOT_DIR
        )
        full_train = train
        train, val = self.load_fewshot(cfg, train, val)
        if val_split == "train_holdout":
            train, val = holdout_val(full_train, train, cfg.DATASET.NUM_SHOTS, cfg.SEED, cfg.DATASET.VAL_PERCENT)
        subsample = cfg.DATASET.SUBSAMPLE_CLASSES
        if val is None:
            train, test = subsample_classes(train, test, subsample=subsample)
            val = test
        else:
            train, val, test = subsample_classes(train, val, test, subsample=subsample)
        super().__init__(train_x=train, val=val, test=test)

    @property
    def split_is_published(self):
        """False when the split in use was rebuilt from the original files (see ``read_splits``)."""
        return not self.rebuilt_split_path

    def load_fewshot(self, cfg, train, val):
        return load_or_make_fewshot(
            self, self.dataset_dir, cfg.DATASET.NUM_SHOTS, cfg.SEED, train, val,
            folder=os.path.basename(self.split_fewshot_dir),
        )

    def locate(self, cfg):
        """Absolute path of the dataset folder."""
        return os.path.join(dataset_root(cfg), type(self).dataset_dir)

    def read_splits(self):
        """``(train, val, test)`` from the published split file, else from a rebuilt one.

        Order: the published ``split_zhou_<Name>.json``; else a ``split_rebuilt_<Name>.json`` of an
        earlier run; else the split is rebuilt from the original files (``make_split``) and saved
        under the rebuilt name. The last two warn in the log that results are not comparable.
        """
        if self.split_path and os.path.exists(self.split_path):
            return read_split(self.split_path, self.image_dir)
        name = type(self).__name__
        rebuilt_path = os.path.join(self.dataset_dir, rebuilt_split_name(self.split_name))
        if os.path.exists(rebuilt_path):
            self.rebuilt_split_path = rebuilt_path
            log_warning(rebuilt_split_warning(name, rebuilt_path, self.split_path))
            return read_split(rebuilt_path, self.image_dir)
        try:
            train, val, test = self.make_split()
        except FileNotFoundError as error:
            raise MissingFileError(
                f"{name}: the split file {self.split_path} does not exist, and the split "
                f"cannot be rebuilt from the original files either: {error}"
            ) from error
        save_split(train, val, test, rebuilt_path, self.image_dir)
        self.rebuilt_split_path = rebuilt_path
        log_warning(rebuilt_split_warning(name, rebuilt_path, self.split_path))
        return train, val, test

    def make_split(self):
        raise MissingFileError(f"download the split file as described in {DOCS}#{type(self).__name__.lower()}")
