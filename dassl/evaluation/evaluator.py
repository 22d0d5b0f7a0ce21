"""Evaluators: accumulate (logits, labels) batches, then print and return metrics."""

import inspect
import os.path as osp
from collections import OrderedDict, defaultdict

import numpy as np
import torch

from dassl.data.datasets.joined import dataset_index_of_label, is_joined_dataset
from dassl.utils import Registry, all_gather_object, check_availability, is_main_process

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator", "EvaluatorBase", "Classification", "PerDatasetClassification"]

EVALUATOR_REGISTRY = Registry("EVALUATOR")


def build_evaluator(cfg, **kwargs):
    """The evaluator named by TEST.EVALUATOR, built with ``(cfg, **kwargs)``.

    The engine passes ``lab2cname`` and ``dataset``. On a joined dataset (DATASET.NAME "A,B")
    the default "Classification" becomes "PerDatasetClassification", which adds per-dataset
    accuracy. ``dataset`` is left out for evaluators whose ``__init__`` cannot take it.
    """
    name = cfg.TEST.EVALUATOR
    dataset = kwargs.get("dataset")
    if name == "Classification" and is_joined_dataset(dataset):
        name = "PerDatasetClassification"
        print('The data joins {} datasets ({}): evaluator "PerDatasetClassification" instead of the default '
              '"Classification" (same metrics plus accuracy per dataset)'.format(
                  len(dataset.dataset_names), ", ".join(dataset.dataset_names)))
    check_availability(name, EVALUATOR_REGISTRY.registered_names())
    if cfg.VERBOSE:
        print("Loading evaluator: {}".format(name))
    evaluator_class = EVALUATOR_REGISTRY.get(name)
    if "dataset" in kwargs and not _accepts_keyword(evaluator_class, "dataset"):
        kwargs = {key: value for key, value in kwargs.items() if key != "dataset"}
    return evaluator_class(cfg, **kwargs)


def _accepts_keyword(cls, keyword):
    """Whether ``cls(...)`` takes ``keyword`` (by name or through ``**kwargs``)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return any(p.kind == p.VAR_KEYWORD or (p.name == keyword and p.kind != p.POSITIONAL_ONLY) for p in params)


class EvaluatorBase:
    def __init__(self, cfg):
        self.cfg = cfg

    def reset(self):
        raise NotImplementedError

    def process(self, mo, gt):
        raise NotImplementedError

    def evaluate(self):
        raise NotImplementedError


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Accuracy, error rate and macro-F1 (per-class accuracy and confusion matrix optional).

    Under torch.distributed each rank sees its own shard (no padded duplicates, see
    ``EvalDistributedSampler``); ``evaluate()`` gathers the shards once, so every rank returns
    metrics over the whole split, and only rank 0 prints and saves. After ``evaluate()``,
    ``counts`` holds ``{"total": ..., "correct": ...}`` of the whole split.
    """

    def __init__(self, cfg, lab2cname=None, dataset=None, **kwargs):
        super().__init__(cfg)
        self._lab2cname = lab2cname
        self._dataset = dataset
        self._per_class_res = None
        self.counts = None
        # A dataset may name its benchmark's metric (``dataset.metric``, e.g. ELEVATER's tasks).
        self._metric = getattr(dataset, "metric", "accuracy")
        if cfg.TEST.PER_CLASS_RESULT:
            assert lab2cname is not None, "TEST.PER_CLASS_RESULT needs lab2cname (label -> class name)"
        self.reset()

    def reset(self):
        self._correct = 0
        self._total = 0
        self._y_true = []
        self._y_pred = []
        if self.cfg.TEST.PER_CLASS_RESULT:
            self._per_class_res = defaultdict(list)

    def process(self, mo, gt):
        """``mo``: logits ``(batch, classes)``; ``gt``: labels ``(batch,)``."""
        pred = mo.max(1)[1]
        matches = pred.eq(gt).float()
        self._correct += int(matches.sum().item())
        self._total += gt.shape[0]
        self._y_true.extend(gt.detach().cpu().tolist())
        self._y_pred.extend(pred.detach().cpu().tolist())
        if self._per_class_res is not None:
            for label, hit in zip(gt.detach().cpu().tolist(), matches.cpu().tolist()):
                self._per_class_res[label].append(int(hit))

    def _gather(self):
        """(y_true, y_pred) over every rank (just ours single-process)."""
        parts = all_gather_object((self._y_true, self._y_pred))
        y_true = [y for part in parts for y in part[0]]
        y_pred = [y for part in parts for y in part[1]]
        return np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)

    def evaluate(self):
        y_true, y_pred = self._gather()  # the only collective: subclasses work on these arrays
        results, lines = self._summarize(y_true, y_pred)
        if is_main_process():
            print("\n".join(lines))
            if self.cfg.TEST.COMPUTE_CMAT:
                cmat = confusion_matrix(y_true, y_pred, normalize_rows=True)
                save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
                torch.save(cmat, save_path)
                print("Confusion matrix is saved to {}".format(save_path))
        return results

    def _summarize(self, y_true, y_pred):
        """``(results, printed lines)`` of the gathered split; results start with "accuracy"."""
        total = len(y_true)
        correct = int((y_true == y_pred).sum())
        self.counts = {"total": total, "correct": correct}
        acc = 100.0 * correct / max(total, 1)
        err = 100.0 - acc
        macro_f1 = 100.0 * macro_f1_score(y_true, y_pred)

        results = OrderedDict()
        results["accuracy"] = acc
        results["error_rate"] = err
        results["macro_f1"] = macro_f1
        lines = [
            "=> result",
            "* total: {:,}".format(total),
            "* correct: {:,}".format(correct),
            "* accuracy: {:.1f}%".format(acc),
            "* error: {:.1f}%".format(err),
            "* macro_f1: {:.1f}%".format(macro_f1),
        ]

        if self._per_class_res is not None:
            lines.append("=> per-class result")
            accs = []
            for label in sorted(set(y_true.tolist())):
                hits = y_pred[y_true == label] == label
                n, n_correct = len(hits), int(hits.sum())
                class_acc = 100.0 * n_correct / n
                accs.append(class_acc)
                lines.append("* class: {} ({})\ttotal: {:,}\tcorrect: {:,}\tacc: {:.1f}%".format(
                    label, self._lab2cname.get(label, "?"), n, n_correct, class_acc))
            mean_acc = float(np.mean(accs)) if accs else 0.0
            lines.append("* average: {:.1f}%".format(mean_acc))
            results["perclass_accuracy"] = mean_acc
        if not is_joined_dataset(self._dataset):
            add_dataset_metric(results, lines, self._metric, y_true, y_pred)
        return results, lines


@EVALUATOR_REGISTRY.register()
class PerDatasetClassification(Classification):
    """``Classification`` plus the accuracy of each dataset of a joined dataset (DATASET.NAME "A,B").

    A sample belongs to the dataset whose label range (``dataset.class_offsets``) holds its
    true label. Prints, after Classification's lines::

        => per-dataset result
        * accuracy on A: 81.2% (total: 96, correct: 78)
        * mean over datasets: 70.0%

    and adds ``results["accuracy/<name>"]`` per dataset and ``results["mean_dataset_accuracy"]``
    (overall accuracy stays the first entry); a dataset whose ``metric`` is "mean_per_class" also
    gets ``results["mean_per_class/<name>"]``. Datasets absent from the split are left out.
    ``counts_per_dataset`` holds ``{name: {"total": ..., "correct": ...}}`` after ``evaluate()``.
    Without a joined dataset, the whole split counts as one dataset named DATASET.NAME.
    """

    def __init__(self, cfg, lab2cname=None, dataset=None, **kwargs):
        super().__init__(cfg, lab2cname=lab2cname, dataset=dataset, **kwargs)
        if is_joined_dataset(dataset):
            self.dataset_names = list(dataset.dataset_names)
            self.class_offsets = list(dataset.class_offsets)
            sources = getattr(dataset, "datasets", [None] * len(self.dataset_names))
            self.metrics = [getattr(source, "metric", "accuracy") for source in sources]
        else:
            self.dataset_names = [cfg.DATASET.NAME or "dataset"]
            self.class_offsets = [0]
            self.metrics = ["accuracy"]  # the dataset's own metric is already in Classification's lines
        self.counts_per_dataset = None

    def _summarize(self, y_true, y_pred):
        results, lines = super()._summarize(y_true, y_pred)
        dataset_of_sample = dataset_index_of_label(y_true, self.class_offsets)
        self.counts_per_dataset = OrderedDict()
        lines.append("=> per-dataset result")
        accs = []
        for k, name in enumerate(self.dataset_names):
            mine = dataset_of_sample == k
            total = int(mine.sum())
            if total == 0:
                continue
            correct = int((y_true[mine] == y_pred[mine]).sum())
            acc = 100.0 * correct / total
            accs.append(acc)
            self.counts_per_dataset[name] = {"total": total, "correct": correct}
            results["accuracy/" + name] = acc
            lines.append("* accuracy on {}: {:.1f}% (total: {:,}, correct: {:,})".format(name, acc, total, correct))
            add_dataset_metric(results, lines, self.metrics[k], y_true[mine], y_pred[mine], name)
        mean_acc = float(np.mean(accs)) if accs else 0.0
        results["mean_dataset_accuracy"] = mean_acc
        lines.append("* mean over datasets: {:.1f}%".format(mean_acc))
        return results, lines


def mean_per_class_accuracy(y_true, y_pred):
    """Mean over the classes present in ``y_true`` of each class's accuracy, in % (ELEVATER's mean-per-class)."""
    labels = np.unique(y_true)
    if len(labels) == 0:
        return 0.0
    return 100.0 * float(np.mean([(y_pred[y_true == label] == label).mean() for label in labels]))


def add_dataset_metric(results, lines, metric, y_true, y_pred, name=""):
    """The dataset's own metric beside accuracy: ``results["mean_per_class" (+ "/<name>")]`` and a printed
    line; a metric that needs scores (ELEVATER's 11point_mAP, roc_auc) gets a line saying accuracy stands in."""
    if metric == "accuracy":
        return
    where = " on {}".format(name) if name else ""
    if metric == "mean_per_class":
        value = mean_per_class_accuracy(y_true, y_pred)
        results["mean_per_class" + ("/" + name if name else "")] = value
        lines.append("* mean_per_class{}: {:.1f}%".format(where, value))
    else:
        lines.append("* {}{}: not computed (needs scores); accuracy is reported instead".format(metric, where))


def confusion_matrix(y_true, y_pred, normalize_rows=False):
    """``(K, K)`` numpy array, rows = true label, K = largest label seen + 1."""
    k = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    cmat = np.zeros((k, k), dtype=np.float64)
    np.add.at(cmat, (y_true, y_pred), 1)
    if normalize_rows:
        row_sums = cmat.sum(axis=1, keepdims=True)
        cmat = np.divide(cmat, row_sums, out=np.zeros_like(cmat), where=row_sums > 0)
    return cmat


def macro_f1_score(y_true, y_pred):
    """Mean over the labels present in ``y_true`` of 2TP / (2TP + FP + FN) (sklearn's macro F1)."""
    labels = np.unique(y_true)
    if len(labels) == 0:
        return 0.0
    scores = []
    for label in labels:
        tp = np.sum((y_pred == label) & (y_true == label))
        fp = np.sum((y_pred == label) & (y_true != label))
        fn = np.sum((y_pred != label) & (y_true == label))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom > 0 else 0.0)
    return float(np.mean(scores))
