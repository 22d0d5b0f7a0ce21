"""Several datasets at once (DATASET.NAME "A,B"): JoinedDataset, loaders, restrict helper, per-dataset evaluator."""

import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import dassl_test_datasets  # noqa: F401  (registers TinyA: 3 classes 4/2/3 per class, TinyB: 2 classes 5/0/2)
from dassl.config import get_cfg_default
from dassl.data import DataManager
from dassl.data.datasets import (
    Datum,
    JoinedDataset,
    build_dataset,
    dataset_index_of_label,
    restrict_logits_to_dataset,
)
from dassl.evaluation import EVALUATOR_REGISTRY, Classification, PerDatasetClassification, build_evaluator


def tiny_cfg(root, name="TinyA, TinyB", **dataset_overrides):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    for key, value in dataset_overrides.items():
        setattr(cfg.DATASET, key, value)
    cfg.INPUT.SIZE = (8, 8)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 4
    cfg.DATALOADER.TEST.BATCH_SIZE = 5
    cfg.USE_CUDA = False
    cfg.OUTPUT_DIR = str(root)
    return cfg


def test_joined_dataset_through_data_manager(tmp_path, capsys):
    dm = DataManager(tiny_cfg(tmp_path))
    joined = dm.dataset
    assert isinstance(joined, JoinedDataset)
    assert joined.dataset_names == ["TinyA", "TinyB"]
    assert joined.class_offsets == [0, 3] and joined.num_classes_per_dataset == [3, 2]
    assert dm.num_classes == joined.num_classes == 5 and dm.num_source_domains == 2
    assert joined.classnames == ["ant", "bee", "cat", "dog", "elk"]
    assert dm.lab2cname == {0: "ant", 1: "bee", 2: "cat", 3: "dog", 4: "elk"}

    source_a, source_b = joined.datasets
    for split, sizes in (("train_x", (12, 10)), ("test", (9, 4))):
        items = getattr(joined, split)
        sources = getattr(source_a, split) + getattr(source_b, split)
        assert len(items) == sum(sizes) == len(sources)
        assert joined.count_per_dataset(split) == {"TinyA": sizes[0], "TinyB": sizes[1]}
        for item, source in zip(items, sources):
            k = 0 if source in getattr(source_a, split) else 1
            assert item is not source and item.impath == source.impath and item.classname == source.classname
            assert (item.label, item.domain, item.dataset, item.dataset_label) == (
                joined.class_offsets[k] + source.label, k, k, source.label)
        # the sources are untouched: own labels, domain 0, stock Datum attributes only
        assert [s.label for s in getattr(source_b, split)] == sorted(s.label for s in getattr(source_b, split))
        assert max(s.label for s in getattr(source_b, split)) == 1
        assert all(s.domain == 0 and sorted(vars(s)) == ["_classname", "_domain", "_impath", "_label"]
                   for s in sources)

    # TinyB has no val: the joined val holds TinyA's only, and still gets a loader
    assert source_b.val == [] and len(joined.val) == 6 and {d.dataset for d in joined.val} == {0}
    assert dm.val_loader is not None and len(dm.val_loader.dataset) == 6

    labels, datasets, domains = [], [], []
    for batch in dm.test_loader:
        labels += batch["label"].tolist()
        datasets += batch["dataset"].tolist()
        domains += batch["domain"].tolist()
    assert labels == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4]
    assert datasets == domains == [0] * 9 + [1] * 4

    seen = []
    for batch in dm.train_loader_x:
        seen += list(zip(batch["label"].tolist(), batch["dataset"].tolist()))
    assert len(seen) == 20  # 22 images, batch 4, last incomplete batch dropped
    assert all(dataset == (1 if label >= 3 else 0) for label, dataset in seen)
    assert {label for label, _ in seen} <= set(range(5))

    out = capsys.readouterr().out
    assert "Loading dataset: TinyA, TinyB\nLoading dataset: TinyA\nLoading dataset: TinyB\n" in out
    assert ("Dataset    TinyA, TinyB\n# classes  5 (TinyA 3, TinyB 2)\n# train_x  22 (TinyA 12, TinyB 10)\n"
            "# val      6 (TinyA 6, TinyB 0)\n# test     13 (TinyA 9, TinyB 4)\n") in out


def test_single_name_is_not_joined(tmp_path):
    dataset = build_dataset(tiny_cfg(tmp_path, name="TinyB"))
    assert type(dataset).__name__ == "TinyB" and not hasattr(dataset, "class_offsets")
    assert [d.dataset for d in dataset.test] == [0] * 4
    assert [d.dataset_label for d in dataset.test] == [d.label for d in dataset.test]


def test_name_list_errors(tmp_path):
    with pytest.raises(ValueError, match=r'Unknown dataset "Nope".*Registered datasets:.*TinyA'):
        build_dataset(tiny_cfg(tmp_path, name="TinyA,Nope"))
    with pytest.raises(ValueError, match="empty entry"):
        build_dataset(tiny_cfg(tmp_path, name="TinyA,,TinyB"))
    with pytest.raises(ValueError, match=r"\['TinyA'\] more than once"):
        build_dataset(tiny_cfg(tmp_path, name="TinyA,TinyB,TinyA"))
    with pytest.raises(ValueError, match=r'"concatenated".*"per_task".*got "per-task"'):
        build_dataset(tiny_cfg(tmp_path, LABEL_SPACE="per-task"))
    assert build_dataset(tiny_cfg(tmp_path, LABEL_SPACE="per_task")).class_offsets == [0, 3]


def test_frozen_cfg_is_left_as_it_was(tmp_path):
    cfg = tiny_cfg(tmp_path, name="TinyB,TinyA")
    cfg.freeze()
    joined = build_dataset(cfg)
    assert cfg.DATASET.NAME == "TinyB,TinyA" and cfg.is_frozen()
    assert joined.class_offsets == [0, 2] and joined.classnames == ["dog", "elk", "ant", "bee", "cat"]


def test_datum_dataset_fields_and_old_pickles(tmp_path):
    split = dassl_test_datasets.tiny_split(str(tmp_path), "TinyA")
    path = split["train"][0].impath
    joined = Datum(impath=path, label=7, domain=1, classname="ant", dataset=1, dataset_label=2)
    again = pickle.loads(pickle.dumps(joined))
    assert (again.label, again.domain, again.dataset, again.dataset_label) == (7, 1, 1, 2)
    assert "dataset=1, dataset_label=2" in repr(again)
    # A pickle made by stock Dassl: only the four stock attributes in __dict__
    old = Datum.__new__(Datum)
    old.__dict__.update(_impath=path, _label=4, _domain=0, _classname="ant")
    assert (old.dataset, old.dataset_label) == (0, 4)
    plain = Datum(impath=path, label=3)
    plain._label += 2  # users mutate the private fields; dataset_label follows
    assert (plain.dataset, plain.dataset_label) == (0, 5) and "dataset=" not in repr(plain)


def test_restrict_logits_to_dataset():
    offsets, sizes = [0, 3, 5], [3, 2, 4]
    logits = torch.arange(18, dtype=torch.float32).reshape(2, 9)
    out = restrict_logits_to_dataset(logits, torch.tensor([1, 2]), offsets, sizes)
    inf = float("-inf")
    assert torch.equal(out[0], torch.tensor([inf, inf, inf, 3.0, 4.0, inf, inf, inf, inf]))
    assert torch.equal(out[1], torch.tensor([inf] * 5 + [14.0, 15.0, 16.0, 17.0]))
    assert torch.equal(logits, torch.arange(18, dtype=torch.float32).reshape(2, 9))  # input untouched
    assert torch.equal(restrict_logits_to_dataset(logits, [0, 0], offsets, sizes)[:, 3:],
                       torch.full((2, 6), inf))
    one = restrict_logits_to_dataset(logits, 2, offsets, sizes)  # one dataset for every row
    assert torch.isinf(one[:, :5]).all() and torch.equal(one[:, 5:], logits[:, 5:])
    # per-task cross-entropy: a softmax over the own dataset's classes only
    label = torch.tensor([4, 6])
    loss = torch.nn.functional.cross_entropy(out, label, reduction="none")
    expected = torch.stack([torch.nn.functional.cross_entropy(logits[0:1, 3:5], torch.tensor([1])),
                            torch.nn.functional.cross_entropy(logits[1:2, 5:9], torch.tensor([1]))])
    assert torch.allclose(loss, expected)
    with pytest.raises(ValueError, match="logits have 8 classes but the joined datasets have 9"):
        restrict_logits_to_dataset(logits[:, :8], 0, offsets, sizes)


def test_dataset_index_of_label():
    assert dataset_index_of_label(torch.tensor([0, 2, 3, 4, 5, 8]), [0, 3, 5]).tolist() == [0, 0, 1, 1, 2, 2]
    assert dataset_index_of_label(np.array([4, 0, 7]), [0, 3, 5]).tolist() == [1, 0, 2]


JOINED = SimpleNamespace(dataset_names=["TinyA", "TinyB"], class_offsets=[0, 3], num_classes_per_dataset=[3, 2])
# TinyA (labels 0-2): 10 samples, 7 right (one wrong guess is a TinyB class); TinyB (3-4): 4 samples, 1 right
Y_TRUE = [0, 0, 1, 1, 2, 2, 0, 1, 2, 2, 3, 3, 4, 4]
Y_PRED = [0, 0, 1, 1, 2, 2, 0, 0, 3, 1, 3, 4, 3, 0]


def run_evaluator(evaluator, y_true=Y_TRUE, y_pred=Y_PRED, batch=4):
    for start in range(0, len(y_true), batch):
        logits = torch.nn.functional.one_hot(torch.tensor(y_pred[start:start + batch]), 5).float()
        evaluator.process(logits, torch.tensor(y_true[start:start + batch]))
    return evaluator.evaluate()


def test_per_dataset_classification_numbers(capsys):
    cfg = get_cfg_default()
    cfg.TEST.EVALUATOR = "PerDatasetClassification"
    evaluator = build_evaluator(cfg, lab2cname={}, dataset=JOINED)
    assert type(evaluator) is PerDatasetClassification
    results = run_evaluator(evaluator)
    assert list(results)[0] == "accuracy" and results["accuracy"] == pytest.approx(100 * 8 / 14)
    assert results["accuracy/TinyA"] == pytest.approx(70.0) and results["accuracy/TinyB"] == pytest.approx(25.0)
    assert results["mean_dataset_accuracy"] == pytest.approx(47.5)
    assert evaluator.counts == {"total": 14, "correct": 8}
    assert evaluator.counts_per_dataset == {"TinyA": {"total": 10, "correct": 7}, "TinyB": {"total": 4, "correct": 1}}
    out = capsys.readouterr().out
    assert ("=> result\n* total: 14\n* correct: 8\n* accuracy: 57.1%\n" in out)
    assert ("=> per-dataset result\n* accuracy on TinyA: 70.0% (total: 10, correct: 7)\n"
            "* accuracy on TinyB: 25.0% (total: 4, correct: 1)\n* mean over datasets: 47.5%\n") in out

    # a split without TinyB (e.g. val): TinyB is left out, not reported as 0%
    evaluator.reset()
    results = run_evaluator(evaluator, Y_TRUE[:10], Y_PRED[:10])
    assert "accuracy/TinyB" not in results and results["accuracy/TinyA"] == pytest.approx(70.0)
    assert evaluator.counts_per_dataset == {"TinyA": {"total": 10, "correct": 7}}


def test_default_evaluator_becomes_per_dataset_on_joined_data(capsys):
    cfg = get_cfg_default()
    assert type(build_evaluator(cfg, lab2cname={}, dataset=SimpleNamespace(num_classes=5))) is Classification
    evaluator = build_evaluator(cfg, lab2cname={}, dataset=JOINED)
    assert type(evaluator) is PerDatasetClassification and cfg.TEST.EVALUATOR == "Classification"
    out = capsys.readouterr().out
    assert out.count('evaluator "PerDatasetClassification" instead of the default "Classification"') == 1
    assert "Loading evaluator: PerDatasetClassification" in out


class OldStyleEvaluator(Classification):
    """An evaluator written for stock Dassl: its __init__ takes no ``dataset``."""

    def __init__(self, cfg, lab2cname=None):
        super().__init__(cfg, lab2cname=lab2cname)


def test_evaluator_without_dataset_argument_still_builds():
    EVALUATOR_REGISTRY.register(OldStyleEvaluator, force=True)
    cfg = get_cfg_default()
    cfg.TEST.EVALUATOR = "OldStyleEvaluator"
    assert type(build_evaluator(cfg, lab2cname={}, dataset=JOINED)) is OldStyleEvaluator


def test_engine_reports_each_dataset(tmp_path, capsys):
    from dassl_test_trainer import EngineTestLinear

    trainer = EngineTestLinear(tiny_cfg(tmp_path))
    assert type(trainer.evaluator) is PerDatasetClassification
    assert trainer.num_source_domains == 2 and trainer.num_classes == 5

    def always_dog(image):  # class 3, TinyB's first
        return torch.nn.functional.one_hot(torch.full((image.shape[0],), 3), 5).float()

    trainer.model_inference = always_dog
    assert trainer.test() == pytest.approx(100 * 2 / 13)  # the first result: overall accuracy
    assert trainer.evaluator.counts == {"total": 13, "correct": 2}
    assert trainer.evaluator.counts_per_dataset == {"TinyA": {"total": 9, "correct": 0},
                                                    "TinyB": {"total": 4, "correct": 2}}
    assert trainer.test(split="val") == 0.0
    assert trainer.evaluator.counts_per_dataset == {"TinyA": {"total": 6, "correct": 0}}
    out = capsys.readouterr().out
    assert ("* accuracy on TinyA: 0.0% (total: 9, correct: 0)\n"
            "* accuracy on TinyB: 50.0% (total: 4, correct: 2)\n") in out
