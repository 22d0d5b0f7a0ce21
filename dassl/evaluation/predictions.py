"""Predictions as data: ``<OUTPUT_DIR>/predictions_<split>.npz``, written, gathered and read.

With ``TEST.SAVE_PREDICTIONS True`` the engine writes, after the final evaluation of a training
run and after ``--eval-only`` (never after the per-epoch validation of ``best_val``), one file
per evaluated split (``split`` = "test" or "val"), which ``np.load`` reads without pickles:

    logits      (N, C) float32   the model's output for each sample: what the evaluator saw
    labels      (N,)   int64     true labels
    impaths     (N,)   str       image paths
    classnames  (C,)   str       classnames[k] is the name of label k

N is the size of the split and rows follow the split's order (``dm.dataset.test`` / ``.val``),
each sample exactly once, also under torchrun: every rank collects its own shard, the shards
are gathered once onto rank 0, put back in order by the batches' ``index``, and rank 0 writes
the file atomically (temporary file in the same folder, then rename).
"""

import os.path as osp
import zipfile

import numpy as np

from dassl.utils import barrier, gather_object, is_main_process, mkdir_if_missing
from dassl.utils.torchtools import _atomic_write

__all__ = ["PREDICTION_KEYS", "predictions_path", "PredictionCollector", "save_predictions", "load_predictions"]

PREDICTION_KEYS = ("logits", "labels", "impaths", "classnames")


def predictions_path(output_dir, split):
    return osp.join(output_dir, "predictions_{}.npz".format(split))


class PredictionCollector:
    """Logits, labels, image paths and split positions of the batches this process evaluates.

    ``process(batch, logits, labels)`` after each batch; ``save(path, num_samples, classnames)``
    once at the end, on every rank (it gathers).
    """

    def __init__(self):
        self._indices = []  # positions in the split, one array per batch
        self._logits = []
        self._labels = []
        self._impaths = []

    def process(self, batch, logits, labels):
        """``batch``: the loader's dict (``index``, ``impath``); ``logits`` (batch, C); ``labels`` (batch,)."""
        if "index" not in batch or "impath" not in batch:
            raise KeyError(
                "TEST.SAVE_PREDICTIONS needs the test batches' 'index' and 'impath' entries (DatasetWrapper "
                "provides them); this loader's batches have {}. Use a dataset wrapper that returns them, or set "
                "TEST.SAVE_PREDICTIONS False.".format(sorted(batch.keys())))
        self._indices.append(np.asarray(batch["index"], dtype=np.int64).reshape(-1))
        self._logits.append(logits.detach().float().cpu().numpy())
        self._labels.append(labels.detach().cpu().numpy().astype(np.int64))
        self._impaths.extend(str(path) for path in batch["impath"])

    def _shard(self):
        if not self._indices:  # a rank with no samples (split smaller than the world)
            return None
        return (np.concatenate(self._indices), np.concatenate(self._logits), np.concatenate(self._labels),
                list(self._impaths))

    def gather(self, num_samples):
        """``(logits, labels, impaths)`` of the whole split in its order on rank 0; None on other ranks.

        A sample seen twice (a sampler that pads its shards) is kept once; a split whose
        ``num_samples`` positions are not all covered is an error.
        """
        shards = gather_object(self._shard())  # the only collective
        if shards is None:
            return None
        shards = [shard for shard in shards if shard is not None]
        if not shards:
            raise RuntimeError("No predictions were collected: the data loader gave no batch.")
        indices = np.concatenate([shard[0] for shard in shards])
        logits = np.concatenate([shard[1] for shard in shards])
        labels = np.concatenate([shard[2] for shard in shards])
        impaths = np.asarray([path for shard in shards for path in shard[3]], dtype=np.str_)
        positions, first = np.unique(indices, return_index=True)  # sorted by position in the split
        if len(positions) != num_samples or not np.array_equal(positions, np.arange(num_samples)):
            raise RuntimeError(
                "The predictions cover {} distinct positions of a split of {} samples (positions {}..{}); "
                "expected each of 0..{} once. The test sampler must visit every sample of the split "
                "(DATALOADER.TEST.SAMPLER SequentialSampler does).".format(
                    len(positions), num_samples, positions.min(), positions.max(), num_samples - 1))
        return logits[first], labels[first], impaths[first]

    def save(self, path, num_samples, classnames):
        """Gather (every rank calls this), write ``path`` on rank 0, wait for it; returns ``path``."""
        gathered = self.gather(num_samples)
        if is_main_process():
            logits, labels, impaths = gathered
            save_predictions(path, logits, labels, impaths, classnames)
            print("Predictions saved to {}".format(path))
        barrier()  # no rank returns before the file exists
        return path


def save_predictions(path, logits, labels, impaths, classnames):
    """Write the four arrays to ``path`` (a ``.npz``) atomically; its folder is created."""
    arrays = {
        "logits": np.asarray(logits, dtype=np.float32),
        "labels": np.asarray(labels, dtype=np.int64),
        "impaths": np.asarray(impaths, dtype=np.str_),
        "classnames": np.asarray(classnames, dtype=np.str_),
    }
    num_samples, num_classes = arrays["logits"].shape
    if arrays["labels"].shape != (num_samples,) or arrays["impaths"].shape != (num_samples,):
        raise ValueError("logits have {} rows but there are {} labels and {} image paths; expected one each "
                         "per row.".format(num_samples, arrays["labels"].shape, arrays["impaths"].shape))
    if arrays["classnames"].shape != (num_classes,):
        raise ValueError(
            "The logits have {} columns but the dataset has {} class names. The model must output one logit "
            "per class of the dataset (label k = column k).".format(num_classes, len(arrays["classnames"])))

    def write(tmp_path):
        with open(tmp_path, "wb") as f:  # a file object: np.savez appends no ".npz" to the name
            np.savez(f, **arrays)

    folder = osp.dirname(path)
    if folder:
        mkdir_if_missing(folder)
    _atomic_write(path, write)
    return path


def load_predictions(path):
    """``{key: array}`` for PREDICTION_KEYS, checked; ValueError naming what is wrong otherwise."""
    if not osp.isfile(path):
        raise FileNotFoundError("No predictions file at {}. Runs write <OUTPUT_DIR>/predictions_test.npz "
                                "(or predictions_val.npz) with TEST.SAVE_PREDICTIONS True.".format(path))
    if not zipfile.is_zipfile(path):  # an .npz is a zip archive
        with open(path, "rb") as f:
            start = f.read(6)
        what = "a single .npy array" if start == b"\x93NUMPY" else "a file that is not an .npz (zip) archive"
        raise _not_predictions(path, what)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise _not_predictions(path, "an archive numpy cannot read ({})".format(e)) from None
    with data:
        missing = [key for key in PREDICTION_KEYS if key not in data.files]
        if missing:
            raise _not_predictions(path, "arrays {} (missing: {})".format(sorted(data.files), missing))
        try:
            arrays = {key: data[key] for key in PREDICTION_KEYS}
        except ValueError as e:  # an object array: pickles are refused
            raise _not_predictions(path, "an array that needs pickle ({})".format(e)) from None
    _check_arrays(path, arrays)
    return arrays


def _check_arrays(path, arrays):
    logits, labels = arrays["logits"], arrays["labels"]
    if logits.ndim != 2 or logits.dtype.kind != "f":
        raise _not_predictions(path, "logits of shape {} and dtype {}".format(logits.shape, logits.dtype))
    num_samples, num_classes = logits.shape
    problems = []
    if labels.shape != (num_samples,) or labels.dtype.kind not in "iu":
        problems.append("labels of shape {} and dtype {}".format(labels.shape, labels.dtype))
    for key, length in (("impaths", num_samples), ("classnames", num_classes)):
        if arrays[key].shape != (length,) or arrays[key].dtype.kind != "U":
            problems.append("{} of shape {} and dtype {}".format(key, arrays[key].shape, arrays[key].dtype))
    if not problems and num_samples and (labels.min() < 0 or labels.max() >= num_classes):
        problems.append("labels from {} to {} for {} classes".format(labels.min(), labels.max(), num_classes))
    if problems:
        raise _not_predictions(path, "logits of shape {} with {}".format(logits.shape, ", ".join(problems)))


def _not_predictions(path, found):
    return ValueError(
        "{} is not a predictions file. Expected an .npz with logits (N x C, float), labels (N, int), impaths "
        "(N, str) and classnames (C, str), as a run writes to <OUTPUT_DIR>/predictions_<split>.npz with "
        "TEST.SAVE_PREDICTIONS True; found {}. Pass such a file (or rerun the evaluation with "
        "TEST.SAVE_PREDICTIONS True).".format(path, found))
