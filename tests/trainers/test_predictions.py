"""TEST.SAVE_PREDICTIONS end to end: CoOp on Toy with a tiny random CLIP, through train.py, then
tools/parse_results.py on the file. The argmax of the saved logits gives the accuracy the log prints."""

import os
import re

import numpy as np
import pytest

from dpl_helpers import TOY_YAML, run_train

FAST_OPTS = ["INPUT.SIZE", "(32, 32)", "INPUT.TRANSFORMS", "['normalize']", "DATALOADER.NUM_WORKERS", "0",
             "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATASET.NUM_SHOTS", "4", "OPTIM.MAX_EPOCH", "1",
             "TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.PREC", "fp32", "USE_CUDA", "False",
             "TEST.SAVE_PREDICTIONS", "True"]


def printed_accuracy(output_dir):
    log = open(os.path.join(output_dir, "log.txt")).read()
    return float(re.findall(r"^\* accuracy: ([\d.]+)%", log, flags=re.M)[-1])


def saved_accuracy(path):
    saved = np.load(path, allow_pickle=False)
    return 100.0 * float((saved["logits"].argmax(axis=1) == saved["labels"]).mean()), saved


def test_coop_training_and_eval_only_save_the_predictions_the_log_reports(tmp_path, capsys):
    from clip.tiny import save_tiny_clip
    from tools import parse_results

    clip_path = save_tiny_clip(str(tmp_path / "tiny_vit.pt"), arch="ViT")
    common = ["--root", tmp_path / "data", "--trainer", "CoOp", "--seed", "1", "--dataset-config-file", TOY_YAML]
    train_dir = tmp_path / "train"
    trainer = run_train(common + ["--output-dir", train_dir] + FAST_OPTS + ["MODEL.BACKBONE.PATH", clip_path])
    path = str(train_dir / "predictions_test.npz")
    accuracy, saved = saved_accuracy(path)
    assert accuracy == pytest.approx(printed_accuracy(train_dir), abs=0.05)  # the log prints one decimal
    assert saved["logits"].shape == (len(trainer.dm.dataset.test), 4)
    assert saved["impaths"].tolist() == [item.impath for item in trainer.dm.dataset.test]
    assert saved["classnames"].tolist() == trainer.dm.dataset.classnames

    eval_dir = tmp_path / "eval"
    run_train(common + ["--output-dir", eval_dir, "--eval-only", "--model-dir", train_dir, "--load-epoch", "1"]
              + FAST_OPTS + ["MODEL.BACKBONE.PATH", clip_path])
    eval_accuracy, eval_saved = saved_accuracy(str(eval_dir / "predictions_test.npz"))
    assert eval_accuracy == pytest.approx(printed_accuracy(eval_dir), abs=0.05)
    np.testing.assert_allclose(eval_saved["logits"], saved["logits"], rtol=1e-4, atol=1e-4)  # same prompts

    capsys.readouterr()
    assert parse_results.main(["--predictions", path]) == 0
    assert "| {:.2f} |".format(accuracy) in capsys.readouterr().out
