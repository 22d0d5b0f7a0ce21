"""TEST.SAVE_PREDICTIONS: predictions_<split>.npz after the final evaluation and --eval-only, in split order,
written atomically (dassl/evaluation/predictions.py)."""

import os
import re

import numpy as np
import pytest
import torch

from dassl.evaluation.predictions import PredictionCollector, load_predictions, save_predictions
from dassl_test_utils import toy_argv


def logged_accuracy(output_dir):
    """The last '* accuracy: X%' of log.txt (the final evaluation)."""
    log = open(os.path.join(output_dir, "log.txt")).read()
    return float(re.findall(r"^\* accuracy: ([\d.]+)%", log, flags=re.M)[-1])


def predictions_files(output_dir):
    return sorted(name for name in os.listdir(output_dir) if name.startswith("predictions_"))


@torch.no_grad()
def model_logits(trainer, items):
    """The trainer's logits for ``items`` (Datum), computed here image by image."""
    trainer.set_model_mode("eval")
    loader = trainer.test_loader
    images = torch.stack([loader.dataset[i]["img"] for i in range(len(items))])
    assert [loader.dataset.data_source[i].impath for i in range(len(items))] == [d.impath for d in items]
    return trainer.model_inference(images).numpy()


def check_split_file(path, trainer, items, accuracy):
    """Contents: the split's samples in its order, dtypes that load without pickle, the evaluator's accuracy."""
    saved = dict(np.load(path, allow_pickle=False))
    assert sorted(saved) == ["classnames", "impaths", "labels", "logits"]
    n, c = len(items), trainer.num_classes
    assert saved["logits"].shape == (n, c) and saved["logits"].dtype == np.float32
    assert saved["labels"].dtype == np.int64 and saved["impaths"].dtype.kind == "U"
    assert saved["classnames"].dtype.kind == "U"
    assert saved["labels"].tolist() == [d.label for d in items]
    assert saved["impaths"].tolist() == [d.impath for d in items]
    assert saved["classnames"].tolist() == list(trainer.dm.dataset.classnames)
    correct = int((saved["logits"].argmax(1) == saved["labels"]).sum())
    assert correct == trainer.evaluator.counts["correct"] and n == trainer.evaluator.counts["total"]
    assert 100.0 * correct / n == pytest.approx(accuracy, abs=0.05)  # the log prints one decimal
    return saved


def test_final_evaluation_writes_test_predictions_but_per_epoch_validation_does_not(toy_root, tmp_path, run_train):
    out = tmp_path / "run"
    trainer = run_train(toy_argv(toy_root, out, "OPTIM.MAX_EPOCH", "2", "TEST.FINAL_MODEL", "best_val",
                                 "TEST.SAVE_PREDICTIONS", "True"))
    assert "Evaluate on the *val* set" in open(out / "log.txt").read()  # validated every epoch ...
    assert predictions_files(out) == ["predictions_test.npz"]  # ... but only the final test is saved
    saved = check_split_file(str(out / "predictions_test.npz"), trainer, trainer.dm.dataset.test,
                             logged_accuracy(out))
    # the logits are the deployed (best) model's, row i for the i-th test item
    np.testing.assert_allclose(saved["logits"], model_logits(trainer, trainer.dm.dataset.test), rtol=1e-5, atol=1e-5)
    assert "Predictions saved to {}".format(out / "predictions_test.npz") in open(out / "log.txt").read()


def test_eval_only_writes_the_evaluated_split_and_nothing_by_default(toy_root, tmp_path, run_train):
    train_dir = tmp_path / "train"
    run_train(toy_argv(toy_root, train_dir, "OPTIM.MAX_EPOCH", "1"))
    assert predictions_files(train_dir) == []  # TEST.SAVE_PREDICTIONS defaults to False

    eval_dir = tmp_path / "eval"
    trainer = run_train(toy_argv(toy_root, eval_dir, "TEST.SAVE_PREDICTIONS", "True", "TEST.SPLIT", "val",
                                 flags=("--eval-only", "--model-dir", str(train_dir), "--load-epoch", "1")))
    assert predictions_files(eval_dir) == ["predictions_val.npz"]
    check_split_file(str(eval_dir / "predictions_val.npz"), trainer, trainer.dm.dataset.val, logged_accuracy(eval_dir))


def test_a_failed_write_leaves_the_previous_file_and_no_partial_one(tmp_path, monkeypatch):
    path = str(tmp_path / "predictions_test.npz")
    logits = np.eye(3, dtype=np.float32)
    save_predictions(path, logits, [0, 1, 2], ["a.png", "b.png", "c.png"], ["x", "y", "z"])

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_predictions(path, 2 * logits, [2, 1, 0], ["c.png", "b.png", "a.png"], ["x", "y", "z"])
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["predictions_test.npz"]  # no temporary file left
    assert load_predictions(path)["labels"].tolist() == [0, 1, 2]  # the previous file, intact

    with pytest.raises(ValueError, match="2 columns but the dataset has 3 class names"):
        save_predictions(str(tmp_path / "bad.npz"), logits[:, :2], [0, 1, 2], ["a", "b", "c"], ["x", "y", "z"])
    assert not os.path.exists(tmp_path / "bad.npz")


def fake_batch(indices):
    """A loader batch of the split positions ``indices``: logits one-hot on ``index % 3``, label ``index % 2``."""
    index = torch.tensor(indices)
    return ({"index": index, "impath": ["img{}.png".format(i) for i in indices]},
            torch.nn.functional.one_hot(index % 3, 3).float(), index % 2)


def test_collector_restores_the_split_order_and_drops_padded_repeats():
    collector = PredictionCollector()
    for indices in ([4, 1], [3, 0, 2], [0, 4]):  # any order; 0 and 4 twice, as a padding sampler repeats them
        collector.process(*fake_batch(indices))
    logits, labels, impaths = collector.gather(num_samples=5)
    assert impaths.tolist() == ["img{}.png".format(i) for i in range(5)]
    assert labels.tolist() == [0, 1, 0, 1, 0] and logits.argmax(1).tolist() == [0, 1, 2, 0, 1]
    with pytest.raises(RuntimeError, match="cover 5 distinct positions of a split of 6 samples"):
        collector.gather(num_samples=6)

    with pytest.raises(KeyError, match="'index' and 'impath'"):
        PredictionCollector().process({"img": None}, torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))


def test_loading_a_file_that_is_not_a_predictions_file_says_what_it_found(tmp_path):
    text = tmp_path / "log.txt"
    text.write_text("* accuracy: 70.0%\n")
    single = tmp_path / "logits.npy"
    np.save(single, np.zeros((2, 3), dtype=np.float32))
    missing = tmp_path / "missing.npz"
    np.savez(missing, logits=np.zeros((2, 3), dtype=np.float32), labels=np.zeros(2, dtype=np.int64))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, logits=np.zeros((2, 3), dtype=np.float32), labels=np.zeros(2, dtype=np.int64),
             impaths=np.array(["a", "b"], dtype=object), classnames=np.array(["x", "y", "z"]))
    short = tmp_path / "short.npz"
    np.savez(short, logits=np.zeros((2, 3), dtype=np.float32), labels=np.array([0, 5]),
             impaths=np.array(["a", "b"]), classnames=np.array(["x", "y", "z"]))
    for path, found in ((text, "not an .npz"), (single, "a single .npy array"),
                        (missing, r"missing: \['impaths', 'classnames'\]"), (pickled, "needs pickle"),
                        (short, "labels from 0 to 5 for 3 classes")):
        with pytest.raises(ValueError, match="is not a predictions file.*TEST.SAVE_PREDICTIONS True; found .*" + found):
            load_predictions(str(path))
    with pytest.raises(FileNotFoundError, match="TEST.SAVE_PREDICTIONS True"):
        load_predictions(str(tmp_path / "nothing.npz"))
