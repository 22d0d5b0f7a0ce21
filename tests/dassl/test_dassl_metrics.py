"""compute_accuracy and the Classification evaluator (PerDatasetClassification: test_dassl_joined.py)."""

import numpy as np
import pytest
import torch

from dassl.config import get_cfg_default
from dassl.evaluation import build_evaluator
from dassl.metrics import compute_accuracy, compute_distance_matrix


def test_compute_accuracy_top_k():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.8, 0.15, 0.05], [0.2, 0.3, 0.5], [0.5, 0.3, 0.2]])
    labels = torch.tensor([2, 0, 0, 2])
    top1, top2, top3 = compute_accuracy(logits, labels, topk=(1, 2, 3))
    assert top1.shape == (1,)
    assert (top1.item(), top2.item(), top3.item()) == (25.0, 50.0, 100.0)
    assert compute_accuracy((logits, None), labels)[0].item() == 25.0


def test_distance_matrix():
    a, b = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert torch.allclose(compute_distance_matrix(a, b), torch.tensor([[4.0], [5.0]]))
    assert torch.allclose(compute_distance_matrix(a[1:], b, metric="cosine"), torch.tensor([[1.0]]))


def macro_f1_reference(y_true, y_pred):
    scores = []
    for c in np.unique(y_true):
        tp = np.sum((y_pred == c) & (y_true == c))
        precision = tp / max(np.sum(y_pred == c), 1)
        recall = tp / np.sum(y_true == c)
        scores.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return 100 * np.mean(scores)


def test_classification_prints_and_returns_metrics(tmp_path, capsys):
    cfg = get_cfg_default()
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.TEST.PER_CLASS_RESULT = True
    cfg.TEST.COMPUTE_CMAT = True
    names = {0: "cat", 1: "dog", 2: "owl", 3: "eel"}
    evaluator = build_evaluator(cfg, lab2cname=names)
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=1200)
    y_pred = np.where(rng.random(1200) < 0.6, y_true, rng.integers(0, 4, size=1200))
    for start in range(0, 1200, 100):
        logits = torch.nn.functional.one_hot(torch.from_numpy(y_pred[start:start + 100]), 4).float()
        evaluator.process(logits, torch.from_numpy(y_true[start:start + 100]))
    results = evaluator.evaluate()

    acc = 100 * np.mean(y_true == y_pred)
    assert list(results)[:3] == ["accuracy", "error_rate", "macro_f1"]
    assert results["accuracy"] == pytest.approx(acc) and results["error_rate"] == pytest.approx(100 - acc)
    assert results["macro_f1"] == pytest.approx(macro_f1_reference(y_true, y_pred))
    out = capsys.readouterr().out
    assert "=> result\n* total: 1,200\n* correct: {:,}\n* accuracy: {:.1f}%\n".format(
        int(np.sum(y_true == y_pred)), acc) in out
    class_accs = []
    for c in range(4):
        total, correct = int(np.sum(y_true == c)), int(np.sum((y_true == c) & (y_pred == c)))
        class_accs.append(100 * correct / total)
        assert "* class: {} ({})\ttotal: {:,}\tcorrect: {:,}\tacc: {:.1f}%\n".format(
            c, names[c], total, correct, class_accs[-1]) in out
    assert out.count("* class: ") == 4 and "* average: {:.1f}%\n".format(np.mean(class_accs)) in out
    assert results["perclass_accuracy"] == pytest.approx(np.mean(class_accs))
    assert evaluator.counts == {"total": 1200, "correct": int(np.sum(y_true == y_pred))}
    cmat = torch.load(str(tmp_path / "cmat.pt"), weights_only=False)
    assert cmat.shape == (4, 4) and np.allclose(cmat.sum(1), 1.0)

    evaluator.reset()
    evaluator.process(torch.eye(3), torch.tensor([0, 1, 1]))
    assert evaluator.evaluate()["accuracy"] == pytest.approx(200 / 3)
    assert evaluator.counts == {"total": 3, "correct": 2}  # reset forgot the 1,200 before
