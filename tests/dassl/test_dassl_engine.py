"""End-to-end runs of a tiny trainer (EngineTestLinear, tests/dassl/dassl_test_trainer.py) on Toy via train.py."""

import os
import re

import pytest
import torch

from dassl_test_utils import toy_argv
from dassl_test_trainer import MODEL_NAME, EngineTestLinear


def read_log(output_dir):
    return open(os.path.join(output_dir, "log.txt")).read()


def test_training_learns_and_writes_logs_and_checkpoints(toy_root, tmp_path, run_train):
    out = tmp_path / "run"
    trainer = run_train(toy_argv(toy_root, out, "OPTIM.MAX_EPOCH", "5", "OPTIM.LR", "0.01",
                                 "TRAIN.CHECKPOINT_FREQ", "2", "TEST.FINAL_MODEL", "best_val"))
    losses = trainer.loss_history
    assert len(losses) == 5 * 6  # 48 train images, batch 8
    assert sum(losses[-6:]) / 6 < 0.5 * sum(losses[:6]) / 6  # last epoch vs first epoch
    log = read_log(out)
    test_acc = float(re.findall(r"\* accuracy: ([\.\deE+-]+)%", log.split("Finish training")[1])[0])
    assert test_acc > 50.0  # chance is 25% on 4 classes
    for line in ("Loading trainer: EngineTestLinear", "Loading dataset: Toy", "Loading evaluator: Classification",
                 "Evaluate on the *val* set", "Finish training", "Deploy the model with the best val performance",
                 "Evaluate on the *test* set", "=> result", "* macro_f1: ", "Elapsed: ", "** System info **"):
        assert line in log, line
    assert re.search(r"epoch \[5/5\] batch \[6/6\] time [\d.]+ \([\d.]+\) data [\d.]+ \([\d.]+\) "
                     r"loss [\d.]+ \([\d.]+\) acc [\d.]+ \([\d.]+\) lr [\d.]+e[-+]\d+ eta \d+:\d\d:\d\d", log)

    ckpt_dir = out / MODEL_NAME
    files = set(os.listdir(ckpt_dir))
    assert {"model.pth.tar-2", "model.pth.tar-4", "model.pth.tar-5", "model-best.pth.tar", "checkpoint"} <= files
    assert "model.pth.tar-1" not in files and "model.pth.tar-3" not in files
    assert (ckpt_dir / "checkpoint").read_text() == "model.pth.tar-5\n"
    last = torch.load(str(ckpt_dir / "model.pth.tar-5"), weights_only=True)
    assert last["epoch"] == 5 and last["val_result"] is None
    best = torch.load(str(ckpt_dir / "model-best.pth.tar"), weights_only=True)
    assert best["val_result"] > 25.0
    # the best model was deployed for the final test
    assert torch.equal(best["state_dict"]["1.weight"], trainer.model[1].weight.detach())


class StopTraining(Exception):
    pass


def test_resumed_run_equals_uninterrupted_run(toy_root, tmp_path, run_train, monkeypatch):
    opts = ("OPTIM.MAX_EPOCH", "3", "OPTIM.LR", "0.01", "TRAIN.CHECKPOINT_FREQ", "1")
    full = tmp_path / "full"
    run_train(toy_argv(toy_root, full, *opts))

    # Interrupted run: killed right after epoch 1 was checkpointed ...
    part = tmp_path / "part"

    def die_at_epoch_2(self):
        if self.epoch == 1:
            raise StopTraining()

    monkeypatch.setattr(EngineTestLinear, "before_epoch", die_at_epoch_2)
    with pytest.raises(StopTraining):
        run_train(toy_argv(toy_root, part, *opts))
    assert sorted(os.listdir(part / MODEL_NAME)) == ["checkpoint", "model.pth.tar-1"]
    monkeypatch.undo()

    # ... then started again (fresh seeding and model init, as a new process would) with --resume
    trainer = run_train(toy_argv(toy_root, part, *opts, flags=("--resume", str(part))))
    assert trainer.start_epoch == 1
    assert "Found checkpoint at" in open(os.path.join(part, sorted(
        f for f in os.listdir(part) if f.startswith("log.txt-"))[0])).read()

    a = torch.load(str(full / MODEL_NAME / "model.pth.tar-3"), weights_only=True)
    b = torch.load(str(part / MODEL_NAME / "model.pth.tar-3"), weights_only=True)
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]
    assert a["scheduler"]["_last_lr"] == b["scheduler"]["_last_lr"]
    for key, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][key]["momentum_buffer"])


def test_eval_only_loads_the_requested_epoch(toy_root, tmp_path, run_train):
    out = tmp_path / "train"
    trained = run_train(toy_argv(toy_root, out, "OPTIM.MAX_EPOCH", "2", "TRAIN.CHECKPOINT_FREQ", "1"))
    del trained
    evaluated = run_train(toy_argv(toy_root, tmp_path / "eval", flags=(
        "--eval-only", "--model-dir", str(out), "--load-epoch", "1")))
    expected = torch.load(str(out / MODEL_NAME / "model.pth.tar-1"), weights_only=True)["state_dict"]
    assert torch.equal(evaluated.model[1].weight.detach(), expected["1.weight"])
    log = read_log(tmp_path / "eval")
    assert "(epoch=1, val_result=None)" in log and "* accuracy:" in log and "Finish training" not in log
    with pytest.raises(FileNotFoundError, match="model.pth.tar-7"):
        run_train(toy_argv(toy_root, tmp_path / "eval2", flags=(
            "--eval-only", "--model-dir", str(out), "--load-epoch", "7")))


def test_unknown_trainer_lists_registered_names(toy_root, tmp_path, run_train):
    with pytest.raises(ValueError, match=r"EngineTestLineare.*\[EngineTestLinear\].*Registered trainers:.*'EngineTestLinear'"):
        run_train(toy_argv(toy_root, tmp_path, trainer="EngineTestLineare"))


def test_trainer_without_models_can_test(toy_root, tmp_path, run_train, monkeypatch):
    """Zero-shot style: nothing registered, load_model('') is a no-op and test() works."""

    class Constant(torch.nn.Module):
        def forward(self, x):  # always predicts class 0
            return torch.nn.functional.one_hot(torch.zeros(x.shape[0], dtype=torch.long), 4).float()

    def build_model(self):
        self.model = Constant()

    monkeypatch.setattr(EngineTestLinear, "build_model", build_model)
    trainer = run_train(toy_argv(toy_root, tmp_path, flags=("--eval-only",)))
    assert trainer.get_model_names() == [] and trainer.resume_model_if_exist(str(tmp_path)) == 0
    assert "load_model() is skipped" in read_log(tmp_path) and "* accuracy: 25.0%" in read_log(tmp_path)
