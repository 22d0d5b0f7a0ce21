"""ELEVATER image-classification tasks (the 20 targets of MVLPT), read from the ecosystem's layout.

On disk (what ELEVATER's toolkit / ``vision_datasets.DatasetHub`` downloads into its root)::

    <DATASET.ROOT>/<DATASET.ELEVATER.DIR>/<root_folder>/   e.g. classification/cifar_10_20211007/
        train.txt  test.txt  [val.txt]  labels.txt          "iris" format: one image per line,
        train.zip  val.zip   ...                            "<zip>@<member> <label>[,<label>...]"
    or  train.json  test.json + images.zip                  "coco" format: images / annotations /
                                                            categories (ids from 1)

Each task's dataset info (root folder, index file per split, label map, format, multi-label or
not, ELEVATER metric) is the table ``TASKS`` below, re-typed from the toolkit's
``vision_datasets.json``; ``DATASET.ELEVATER.INFO_FILE`` points at another dataset-info JSON
(a list of such entries, e.g. a newer toolkit's) that wins over the table. Images stored as
``a.zip@member`` are extracted on first use, one file at a time, into ``<root_folder>/a/member``
(a tree already unzipped there is used as is), so only the images a run needs are unpacked.

Few-shot data follow MVLPT's target pipeline (docs/DATASETS.md#elevater):

* K per class from the ELEVATER **train** split (``DATASET.NUM_SHOTS``), drawn with the release's
  sampler (vision_datasets 0.2's ``sample_few_shot_subset``): the index-file order shuffled by
  ``random.Random(SEED)``, then walked once, taking an image while its classes are short of K;
* K > 1 (and K <= 0, all images): the first ceil(0.2 * n_c) sampled images of each class c are the
  val split, the rest train (5 shots = 4 + 1, 20 = 16 + 4); ELEVATER's own val split is not used;
* K = 1: val is the train set itself (the release's defect D10b); ``ONE_SHOT_VAL disjoint`` takes
  instead the next unused image of each class in the same shuffled order, so train is unchanged;
* test: the whole ELEVATER test split.

Labels are single in this engine: a multi-label image (VOC-2007) gets its lowest class index as
label (the class MVLPT's argmax of the renormalised multi-hot target picks) while sampling and the
val hold-out use all its labels. Each dataset carries ``metric`` (ELEVATER's metric of the task).

Each task is registered as its own dataset (``ElevaterCifar10``, ...), so ``DATASET.NAME`` can
join several ("ElevaterCifar10,ElevaterMNIST"); ``Elevater`` reads the task named by
``DATASET.ELEVATER.TASK`` (any entry of the info file).
"""

import json
import math
import os
import random
import tempfile
import zipfile
from collections import namedtuple

from dassl.data.datasets import DATASET_REGISTRY, Datum, DatasetBase
from dassl.utils import ConfigError, MissingFileError

from .common import DOCS, dataset_root

OPTIONS = {
    "DATASET.ELEVATER": {
        "DIR": ("", "the ELEVATER root (the toolkit's download folder), relative to DATASET.ROOT or absolute; "
                    "empty = DATASET.ROOT itself"),
        "INFO_FILE": ("", "a dataset-info JSON (list of vision_datasets entries) that wins over the built-in task "
                          "table; relative to the ELEVATER root or absolute"),
        "TASK": ("", "dataset Elevater only: the ELEVATER name of the task to read (e.g. cifar-10)"),
        "ONE_SHOT_VAL": ("train", "1 shot: val = the train set (train, the release's D10b) or the next unused image "
                                  "of each class (disjoint)"),
        "VAL_RATIO": (0.2, "share of each class's few-shot images held out as val (ceil), K != 1"),
    },
}

ANCHOR = f"{DOCS}#elevater"
ONE_SHOT_VAL_MODES = ("train", "disjoint")
SPLITS = ("train", "val", "test")

# name: ELEVATER's; dataset: our registered name; metric: ELEVATER's (mean_per_class,
# 11point_mAP, roc_auc or accuracy); coop: the CoOp dataset it also is ("" if none).
Task = namedtuple("Task", "name dataset root_folder format multilabel index labelmap metric coop")


def _iris(name, dataset, folder, train="train.txt", val="", test="test.txt", labelmap="labels.txt",
          metric="accuracy", coop="", multilabel=False):
    index = {"train": train, "test": test}
    if val:
        index["val"] = val
    return Task(name, dataset, "classification/" + folder, "iris", multilabel, index, labelmap, metric, coop)


def _coco(name, dataset, folder, train, val, test, metric="accuracy"):
    index = {"train": train, "test": test}
    if val:
        index["val"] = val
    return Task(name, dataset, "classification/" + folder, "coco", False, index, "", metric, "")


# The 20 tasks of ELEVATER's image-classification benchmark (facts of the toolkit's dataset info).
TASKS = [
    _iris("caltech-101", "ElevaterCaltech101", "caltech_101_20211007", metric="mean_per_class", coop="Caltech101"),
    _iris("cifar-10", "ElevaterCifar10", "cifar_10_20211007"),
    _iris("cifar-100", "ElevaterCifar100", "cifar100_20200721", train="train_images.txt", test="test_images.txt"),
    _iris("country211", "ElevaterCountry211", "country211_20210924", val="valid.txt"),
    _iris("dtd", "ElevaterDTD", "dtd_20211007", val="val.txt", coop="DescribableTextures"),
    _iris("eurosat_clip", "ElevaterEuroSAT", "eurosat_clip_20210930", val="val.txt", coop="EuroSAT"),
    _iris("fer-2013", "ElevaterFER2013", "fer_2013_20211008", val="val.txt"),
    _iris("fgvc-aircraft-2013b-variants102", "ElevaterFGVCAircraft", "fgvc_aircraft_2013b_variants102_20211007",
          val="val.txt", metric="mean_per_class", coop="FGVCAircraft"),
    _iris("food-101", "ElevaterFood101", "food_101_20211007", coop="Food101"),
    _iris("gtsrb", "ElevaterGTSRB", "gtsrb_20210923", val="val.txt", labelmap="labelmap.txt"),
    _coco("hateful-memes", "ElevaterHatefulMemes", "hateful_memes_20211014", "train_meta.json", "", "test_meta.json",
          metric="roc_auc"),
    _coco("kitti-distance", "ElevaterKITTIDistance", "kitti_distance_20210923", "train_meta.json",
          "validation_meta.json", "test_meta.json"),
    _iris("mnist", "ElevaterMNIST", "mnist_20211008"),
    _iris("oxford-flower-102", "ElevaterFlowers102", "oxford_flower_102_20211007", val="val.txt",
          metric="mean_per_class", coop="OxfordFlowers"),
    _iris("oxford-iiit-pets", "ElevaterOxfordPets", "oxford_iiit_pets_20211007", metric="mean_per_class",
          coop="OxfordPets"),
    _iris("patch-camelyon", "ElevaterPatchCamelyon", "patch_camelyon_20211007", val="val.txt"),
    _iris("rendered-sst2", "ElevaterRenderedSST2", "rendered_sst2_20210924", val="valid.txt"),
    _coco("resisc45_clip", "ElevaterRESISC45", "resisc45_clip_20210924", "train.json", "val.json", "test.json"),
    _iris("stanford-cars", "ElevaterStanfordCars", "stanford_cars_20211007", coop="StanfordCars"),
    _iris("voc-2007-classification", "ElevaterVOC2007", "voc2007_20211007", train="train_ic.txt", val="val_ic.txt",
          test="test_ic.txt", metric="11point_mAP", multilabel=True),
]
TASKS_BY_NAME = {task.name: task for task in TASKS}


# ----------------------------------------------------------------------- dataset info
def task_from_info(entry):
    """A ``Task`` from one vision_datasets dataset-info entry (``{"name", "type", "root_folder", ...}``)."""
    name = entry.get("name", "?")
    try:
        kind = entry["type"].lower()
        index = {split: entry[split]["index_path"] for split in SPLITS if split in entry}
        root_folder = entry.get("root_folder", "")
    except (KeyError, TypeError, AttributeError) as error:
        raise ConfigError(
            f"ELEVATER: the dataset-info entry of {name} lacks {error}; expected vision_datasets' fields "
            f'"type", "root_folder" and "train"/"test" each with an "index_path" ({ANCHOR}).'
        ) from error
    if kind not in ("classification_multiclass", "classification_multilabel",
                    "image_classification_multiclass", "image_classification_multilabel"):
        raise ConfigError(f'ELEVATER: {name} has type "{entry["type"]}"; only image classification is supported.')
    known = TASKS_BY_NAME.get(name)
    return Task(
        name=name,
        dataset=known.dataset if known else "Elevater",
        root_folder=root_folder,
        format=entry.get("format", "iris").lower(),
        multilabel=kind.endswith("multilabel"),
        index=index,
        labelmap=entry.get("labelmap", ""),
        metric=known.metric if known else entry.get("metric", "accuracy"),
        coop=known.coop if known else "",
    )


def read_info_file(path):
    """``{name: Task}`` from a dataset-info JSON (a list of entries, or one entry)."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"ELEVATER: cannot read the dataset-info file {path} ({type(error).__name__}: {error}); expected "
            f"vision_datasets' JSON, a list of {{\"name\", \"type\", \"root_folder\", \"train\": {{\"index_path\"}}, "
            f"...}} entries ({ANCHOR})."
        ) from error
    entries = entries if isinstance(entries, list) else [entries]
    return {task.name: task for task in map(task_from_info, entries)}


# ----------------------------------------------------------------------- index files
def _missing(task, what, path, hint=""):
    return MissingFileError(
        f"ELEVATER {task.name}: expected {what} at {path}, but it does not exist. The task's files live in "
        f"<DATASET.ROOT>/<DATASET.ELEVATER.DIR>/{task.root_folder}/ as ELEVATER's toolkit downloads them "
        f"(index files, label map, zip files; {ANCHOR})" + (f"; {hint}" if hint else "") + "."
    )


def read_iris(task, task_dir, split):
    """``([(image path as listed, [labels])], class names)`` of an iris index file and label map."""
    index_path = os.path.join(task_dir, task.index[split])
    if not os.path.isfile(index_path):
        raise _missing(task, f"the {split} index file {task.index[split]} (the split's manifest)", index_path)
    rows = []
    with open(index_path, "r", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            # only the image path may contain spaces: the labels are after the last one
            path, _, labels = line.rpartition(" ")
            try:
                rows.append((path, [int(x) for x in labels.split(",")]))
            except ValueError:
                raise ConfigError(
                    f"ELEVATER {task.name}: line {number} of {index_path} is {line!r}; expected "
                    f'"<image path> <label>[,<label>...]" with integer labels from 0.'
                ) from None
    classnames = None
    if task.labelmap:
        labelmap_path = os.path.join(task_dir, task.labelmap)
        if not os.path.isfile(labelmap_path):
            raise _missing(task, f"the label map {task.labelmap} (one class name per line)", labelmap_path)
        with open(labelmap_path, "r", encoding="utf-8") as f:
            classnames = [line.strip() for line in f if line.strip()]
    if classnames is None:  # no label map: the class index is its name, as vision_datasets does
        classnames = [str(c) for c in range(1 + max(max(labels) for _, labels in rows))]
    return rows, classnames


def read_coco(task, task_dir, split):
    """``([(image path, [labels])], class names)`` of a coco classification file (category ids sorted)."""
    path = os.path.join(task_dir, task.index[split])
    if not os.path.isfile(path):
        raise _missing(task, f"the {split} annotation file {task.index[split]} (the split's manifest)", path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            coco = json.load(f)
        categories = sorted(coco["categories"], key=lambda c: c["id"])
        position = {c["id"]: k for k, c in enumerate(categories)}
        labels = {image["id"]: [] for image in coco["images"]}
        for annotation in coco["annotations"]:
            labels[annotation["image_id"]].append(position[annotation["category_id"]])
        rows = []
        for image in coco["images"]:
            name = image["file_name"]
            if image.get("zip_file") and "@" not in name:
                name = image["zip_file"] + "@" + name
            rows.append((name, labels[image["id"]]))
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"ELEVATER {task.name}: cannot read {path} ({type(error).__name__}: {error}); expected a coco file "
            f'with "images" (id, file_name), "annotations" (image_id, category_id) and "categories" (id, name).'
        ) from error
    return rows, [c["name"] for c in categories]


# ------------------------------------------------------------------------------ images
class ImageFiles:
    """Image paths as listed (``a.zip@member`` or relative) -> files on disk.

    A zip member is read from ``<task dir>/a/member`` when that file exists (the zip unpacked
    there), else extracted there from ``<task dir>/a.zip`` (temporary file, then rename: a killed
    run leaves no half-written image).
    """

    def __init__(self, task, task_dir):
        self.task, self.task_dir = task, task_dir
        self._zips = {}

    def resolve(self, listed):
        if "@" not in listed:
            path = os.path.join(self.task_dir, listed)
            if not os.path.isfile(path):
                raise _missing(self.task, "the image listed as " + listed, path)
            return path
        archive, member = listed.split("@", 1)
        member = member.lstrip("/")
        target = os.path.join(self.task_dir, os.path.splitext(archive)[0], *member.split("/"))
        if not os.path.isfile(target):
            self._extract(archive, member, target)
        return target

    def _extract(self, archive, member, target):
        if archive not in self._zips:
            zip_path = os.path.join(self.task_dir, archive)
            if not os.path.isfile(zip_path):
                raise _missing(self.task, f"the image archive {archive}", zip_path,
                               f"or its images unpacked into {os.path.splitext(zip_path)[0]}/")
            self._zips[archive] = zipfile.ZipFile(zip_path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, self._zips[archive].open(member) as data:
                out.write(data.read())
            os.replace(tmp, target)
        except KeyError:
            os.remove(tmp)
            raise _missing(self.task, f"the member {member} of {archive}",
                           os.path.join(self.task_dir, archive)) from None
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def close(self):
        for archive in self._zips.values():
            archive.close()
        self._zips = {}


# ----------------------------------------------------------------------- few-shot data
def sample_few_shot(rows, num_shots, seed, num_classes=None):
    """The release's few-shot sampler (vision_datasets 0.2 ``sample_few_shot_subset``) over ``rows``
    [(path, [labels])]: shuffled by ``random.Random(seed)``, walked once; an image is taken while
    its classes are short of ``num_shots`` (for several labels: while the fullest of them has at
    most 1.5 K, or the emptiest at most K / 2). Images without labels are dropped (the release
    keeps K of them as negatives; this engine has no "no class" label). ``num_classes``: of the label
    map (default: the largest label + 1). Returns ``(rows in the order taken, the shuffled order)``.
    """
    order = list(rows)
    random.Random(seed).shuffle(order)
    counts = {}
    if num_classes is None:
        num_classes = 1 + max(label for _, labels in rows for label in labels)
    taken = []
    for row in order:
        labels = row[1]
        if not labels:
            continue
        mine = [counts.get(label, 0) for label in labels]
        if min(mine) >= num_shots:
            continue
        if min(mine) <= num_shots / 2 or max(mine) <= 1.5 * num_shots:
            taken.append(row)
            for label in labels:
                counts[label] = counts.get(label, 0) + 1
        if all(counts.get(c, 0) >= num_shots for c in range(num_classes)):
            break
    return taken, order


def hold_out_val(rows, ratio):
    """The release's val hold-out from the few-shot rows: ``(train, val)``.

    Single label: the first ceil(ratio * n_c) rows of each class c. Several labels: repeatedly the
    first row holding the first class still short of its ceil(ratio * n_c) quota (rows taken count
    for all their classes).
    """
    counts = {}
    for _, labels in rows:
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    quota = {label: math.ceil(n * ratio) for label, n in counts.items()}
    val_index = set()
    if all(len(labels) == 1 for _, labels in rows):
        seen = {}
        for i, (_, labels) in enumerate(rows):
            seen[labels[0]] = seen.get(labels[0], 0) + 1
            if seen[labels[0]] <= quota[labels[0]]:
                val_index.add(i)
    else:
        while True:
            short = sorted(label for label, q in quota.items() if q > 0)
            if not short:
                break
            i = next((i for i, (_, labels) in enumerate(rows) if i not in val_index and short[0] in labels), None)
            if i is None:
                break
            val_index.add(i)
            for label in rows[i][1]:
                quota[label] = quota.get(label, 0) - 1
    train = [row for i, row in enumerate(rows) if i not in val_index]
    val = [row for i, row in enumerate(rows) if i in val_index]
    return train, val


def next_unused_per_class(order, used):
    """One row per class: the first in ``order`` not in ``used`` (1-shot ``ONE_SHOT_VAL disjoint``)."""
    used_paths = {path for path, _ in used}
    val, done = [], set()
    for row in order:
        label = min(row[1]) if row[1] else None
        if label is None or label in done or row[0] in used_paths:
            continue
        val.append(row)
        done.add(label)
    return val


def fewshot_splits(rows, num_shots, seed, one_shot_val="train", val_ratio=0.2, num_classes=None):
    """``(train, val)`` rows of the ELEVATER train split as MVLPT's single-task target pipeline."""
    if num_shots >= 1:
        sampled, order = sample_few_shot(rows, num_shots, seed, num_classes)
    else:
        sampled, order = list(rows), list(rows)
    if num_shots == 1:
        if one_shot_val == "train":
            return sampled, list(sampled)  # the release: val is the train set (D10b)
        return sampled, next_unused_per_class(order, sampled)
    return hold_out_val(sampled, val_ratio)


# ----------------------------------------------------------------------------- dataset
class ElevaterDataset(DatasetBase):
    """One ELEVATER task; subclasses set ``task`` (``Elevater`` reads DATASET.ELEVATER.TASK)."""

    task = None

    def __init__(self, cfg):
        opts = cfg.DATASET.ELEVATER
        if opts.ONE_SHOT_VAL not in ONE_SHOT_VAL_MODES:
            raise ConfigError(f"DATASET.ELEVATER.ONE_SHOT_VAL is {opts.ONE_SHOT_VAL!r}; expected one of "
                              f"{list(ONE_SHOT_VAL_MODES)}.")
        if cfg.DATASET.SUBSAMPLE_CLASSES != "all":
            raise ConfigError("ELEVATER tasks are read with all their classes; set DATASET.SUBSAMPLE_CLASSES all.")
        root = os.path.join(dataset_root(cfg), os.path.expanduser(opts.DIR))
        task = self.resolve_task(cfg, root)
        self.metric = task.metric
        self.elevater_task = task
        task_dir = os.path.join(root, task.root_folder)
        if not os.path.isdir(task_dir):
            raise _missing(task, "the task folder", task_dir)
        read = read_coco if task.format == "coco" else read_iris

        train_rows, classnames = read(task, task_dir, "train")
        test_rows, _ = read(task, task_dir, "test")
        train_rows, val_rows = fewshot_splits(train_rows, cfg.DATASET.NUM_SHOTS, cfg.SEED,
                                              opts.ONE_SHOT_VAL, opts.VAL_RATIO, len(classnames))
        images = ImageFiles(task, task_dir)
        try:
            train, val, test = (self.to_items(r, classnames, images) for r in (train_rows, val_rows, test_rows))
        finally:
            images.close()
        print(f"ELEVATER {task.name}: {len(train)} train, {len(val)} val (from the train split), {len(test)} test "
              f"images; metric {task.metric}")
        super().__init__(train_x=train, val=val, test=test)
        # Every class of the label map, also one that is no image's (first) label.
        self._num_classes = len(classnames)
        self._classnames = list(classnames)
        self._lab2cname = dict(enumerate(classnames))

    def resolve_task(self, cfg, root):
        opts = cfg.DATASET.ELEVATER
        name = self.task.name if self.task is not None else opts.TASK
        if not name:
            raise ConfigError(
                "Dataset Elevater needs DATASET.ELEVATER.TASK, the ELEVATER name of the task (e.g. cifar-10), or use "
                f"a registered task ({', '.join(t.dataset for t in TASKS)}); see {ANCHOR}."
            )
        tasks = dict(TASKS_BY_NAME)
        if opts.INFO_FILE:
            info = os.path.join(root, os.path.expanduser(opts.INFO_FILE))
            if not os.path.isfile(info):
                raise MissingFileError(
                    f"ELEVATER: DATASET.ELEVATER.INFO_FILE is {opts.INFO_FILE!r}, but {info} does not exist; give "
                    f"the dataset-info JSON's path (relative to {root} or absolute).")
            tasks.update(read_info_file(info))
        if name not in tasks:
            raise ConfigError(f"ELEVATER: no task named {name!r}; known: {sorted(tasks)} ({ANCHOR}).")
        return tasks[name]

    @staticmethod
    def to_items(rows, classnames, images):
        items = []
        for path, labels in rows:
            label = min(labels)  # multi-label: the lowest class index (see the module docstring)
            if label >= len(classnames):
                raise ConfigError(f"ELEVATER: {path} has label {label}, but the label map has {len(classnames)} "
                                  "classes; the index file and the label map do not belong together.")
            items.append(Datum(impath=images.resolve(path), label=label, classname=classnames[label]))
        return items


@DATASET_REGISTRY.register()
class Elevater(ElevaterDataset):
    """Any ELEVATER classification task, named by DATASET.ELEVATER.TASK (built-in table or INFO_FILE)."""


# One registered dataset per task of the table (ElevaterCifar10, ...): only ``task`` differs.
for _task in TASKS:
    DATASET_REGISTRY.register(type(_task.dataset, (ElevaterDataset,), {
        "task": _task, "__module__": __name__, "__doc__": f"ELEVATER {_task.name} (metric {_task.metric})."}))
