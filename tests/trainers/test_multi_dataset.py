"""CoOp on two datasets at once (a comma-separated DATASET.NAME), with both label spaces.

The second dataset is an ImageFolder of two classes made of Toy images, so Toy (4 classes) and it
(2 classes) join into 6 classes: Toy's labels 0-3, the folder's 4-5.
"""
import re

import pytest
import torch

from dpl_helpers import image_folder_from_toy, run_train

TWO = ("DATASET.NAME", "Toy,ImageFolder")
COOP = ("TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", "4", "TRAINER.COOP.CSC", "True",
        "OPTIM.NAME", "adam", "OPTIM.LR", "0.003", "TRAIN.CHECKPOINT_FREQ", "1")


@pytest.fixture
def two_datasets(make_argv, toy_root, tmp_path, run_train):
    """make_argv for CoOp on Toy + an ImageFolder (built from the generated Toy images)."""
    run_train(make_argv("ZeroshotCLIP", "TRAINER.ZSCLIP.PREC", "fp32", flags=("--eval-only",)))  # makes Toy
    folder = tmp_path / "shapes2"
    image_folder_from_toy(toy_root, str(folder))

    def _argv(*opts, **kwargs):
        return make_argv("CoOp", *TWO, "DATASET.IMAGE_FOLDER.DIR", str(folder), *COOP, *opts, **kwargs)

    return _argv


def predictions(trainer):
    """(labels, predicted labels, dataset index) over the test split, from model_inference."""
    trainer.set_model_mode("eval")
    labels, preds, datasets = [], [], []
    with torch.no_grad():
        for batch in trainer.test_loader:
            image, label = trainer.parse_batch_test(batch)
            preds.append(trainer.model_inference(image).argmax(dim=1))
            labels.append(label)
            datasets.append(batch["dataset"])
    return torch.cat(labels), torch.cat(preds), torch.cat(datasets)


def logged_accuracies(log):
    return {name: float(acc) for name, acc in re.findall(r"\* accuracy on (\w+): ([\d.]+)%", log)}


@pytest.mark.parametrize("label_space", ["concatenated", "per_task"])
def test_coop_trains_on_two_datasets_and_reports_each(two_datasets, tmp_path, label_space):
    out = tmp_path / label_space
    trainer = run_train(two_datasets("DATASET.LABEL_SPACE", label_space, "OPTIM.MAX_EPOCH", "2", output_dir=out))
    assert trainer.num_classes == 6 and trainer.dm.dataset.class_offsets == [0, 4]
    assert trainer.model.prompt_learner.ctx.shape[0] == 6  # one prompt per class of both datasets

    labels, preds, datasets = predictions(trainer)
    assert set(labels[datasets == 1].tolist()) == {4, 5}
    if label_space == "per_task":  # each sample is classified among its own dataset's classes
        assert ((preds >= 4) == (datasets == 1)).all()
    logged = logged_accuracies((out / "log.txt").read_text())
    for index, name in enumerate(["Toy", "ImageFolder"]):
        mine = datasets == index
        expected = 100.0 * (preds[mine] == labels[mine]).float().mean().item()
        assert logged[name] == pytest.approx(expected, abs=0.05), name


def test_per_task_training_loss_is_cross_entropy_within_the_own_dataset(two_datasets, make_cfg, tmp_path):
    import train
    from dassl.engine import build_trainer

    argv = two_datasets("DATASET.LABEL_SPACE", "per_task", output_dir=tmp_path / "loss")
    trainer = build_trainer(train.setup_cfg(train.get_parser().parse_args(argv)))
    batch = next(b for b in trainer.train_loader_x if (b["dataset"] == 1).any() and (b["dataset"] == 0).any())
    image, label = trainer.parse_batch_train(batch)
    with torch.no_grad():
        logits = trainer.model.head.logits(trainer.model.forward_features(image))
    own = [(0, 4), (4, 6)]
    expected = torch.stack([
        torch.nn.functional.cross_entropy(logits[i, slice(*own[d])][None], label[i:i + 1] - own[d][0])
        for i, d in enumerate(batch["dataset"].tolist())
    ]).mean()
    for group in trainer.optim.param_groups:
        group["lr"] = 0.0
    trainer.batch_idx, trainer.num_batches = 0, 10
    assert trainer.forward_backward(batch)["loss_ce"] == pytest.approx(expected.item(), abs=1e-5)


class _Killed(Exception):
    pass


def test_a_killed_multi_dataset_run_resumes_exactly(two_datasets, tmp_path, monkeypatch):
    from trainers.coop import CoOp

    reference = run_train(two_datasets("OPTIM.MAX_EPOCH", "2", output_dir=tmp_path / "whole"))
    original = CoOp.forward_backward

    def forward_backward(self, batch):
        if (self.epoch, self.batch_idx) == (1, 1):
            raise _Killed()
        return original(self, batch)

    monkeypatch.setattr(CoOp, "forward_backward", forward_backward)
    argv = two_datasets("OPTIM.MAX_EPOCH", "2", output_dir=tmp_path / "killed")
    with pytest.raises(_Killed):
        run_train(argv)
    monkeypatch.setattr(CoOp, "forward_backward", original)
    resumed = run_train(argv)  # the same command again
    assert "resume" in (tmp_path / "killed" / "log.txt").read_text().lower()
    assert torch.equal(resumed.model.prompt_learner.ctx, reference.model.prompt_learner.ctx)
