"""Checkpoint files: names, plain content (weights_only), atomic writes, resume."""

import os

import pytest
import torch
import torch.nn as nn

from dassl.config import get_cfg_default
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import get_rng_state, load_checkpoint, resume_from_checkpoint, save_checkpoint


def make_model_optim_sched():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    cfg = get_cfg_default()
    cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH = "sgd", 0.002, 10
    cfg.OPTIM.LR_SCHEDULER, cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE = "cosine", 1, "constant"
    optim = build_optimizer(model, cfg.OPTIM)
    sched = build_lr_scheduler(optim, cfg.OPTIM)
    return model, optim, sched


def train_steps(model, optim, sched, epochs):
    for _ in range(epochs):
        loss = model(torch.ones(4, 3)).pow(2).sum()
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()


def state_of(model, optim, sched, epoch, val_result=None):
    return {"state_dict": model.state_dict(), "epoch": epoch, "optimizer": optim.state_dict(),
            "scheduler": sched.state_dict(), "val_result": val_result, "rng_state": get_rng_state()}


def test_save_writes_named_file_pointer_and_best_copy(tmp_path):
    model, optim, sched = make_model_optim_sched()
    train_steps(model, optim, sched, 2)
    save_checkpoint(state_of(model, optim, sched, 2), str(tmp_path), is_best=True)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model-best.pth.tar", "model.pth.tar-2"]
    assert (tmp_path / "checkpoint").read_text() == "model.pth.tar-2\n"
    # Plain data only: torch's safe loader reads it (warmup scheduler state included)
    ckpt = torch.load(str(tmp_path / "model.pth.tar-2"), weights_only=True)
    assert set(ckpt) == {"state_dict", "epoch", "optimizer", "scheduler", "val_result", "rng_state"}
    assert isinstance(ckpt["scheduler"]["successor"], dict)
    torch.load(str(tmp_path / "model-best.pth.tar"), weights_only=True)


def test_module_prefix_is_stripped(tmp_path):
    model = nn.DataParallel(nn.Linear(2, 2))
    save_checkpoint({"state_dict": model.state_dict(), "epoch": 1}, str(tmp_path), model_name="m.pth")
    assert set(load_checkpoint(str(tmp_path / "m.pth"))["state_dict"]) == {"weight", "bias"}


def test_failed_save_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    model, optim, sched = make_model_optim_sched()
    save_checkpoint(state_of(model, optim, sched, 1), str(tmp_path), model_name="model.pth.tar-1")
    before = sorted(os.listdir(tmp_path))
    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(state_of(model, optim, sched, 2), str(tmp_path))
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(state_of(model, optim, sched, 1), str(tmp_path), model_name="model.pth.tar-1")
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(os.listdir(tmp_path)) == before  # no temp files, no model.pth.tar-2
    assert (tmp_path / "checkpoint").read_text() == "model.pth.tar-1\n"
    torch.load(str(tmp_path / "model.pth.tar-1"), weights_only=True)  # old file intact


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="None"):
        load_checkpoint(None)
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_checkpoint(str(tmp_path / "nothing.pth"))


def test_resume_restores_model_optimizer_scheduler_and_continues_lr(tmp_path):
    # Uninterrupted reference: 6 epochs
    ref_model, ref_optim, ref_sched = make_model_optim_sched()
    train_steps(ref_model, ref_optim, ref_sched, 3)
    save_checkpoint(state_of(ref_model, ref_optim, ref_sched, 3), str(tmp_path))
    train_steps(ref_model, ref_optim, ref_sched, 3)

    model, optim, sched = make_model_optim_sched()
    epoch = resume_from_checkpoint(str(tmp_path), model, optim, sched)
    assert epoch == 3
    train_steps(model, optim, sched, 3)
    assert optim.param_groups[0]["lr"] == ref_optim.param_groups[0]["lr"]
    assert sched.get_last_lr() == ref_sched.get_last_lr()
    assert torch.equal(model.weight, ref_model.weight)


def test_legacy_scheduler_state_with_successor_object_loads():
    """Stock Dassl stored the successor scheduler object itself; the live successor takes its state."""
    model, optim, sched = make_model_optim_sched()
    train_steps(model, optim, sched, 4)
    legacy = {k: v for k, v in sched.__dict__.items() if k != "optimizer"}  # what Dassl's state_dict() returned
    _, optim2, sched2 = make_model_optim_sched()
    optim2.load_state_dict(optim.state_dict())
    sched2.load_state_dict(legacy)
    assert sched2.successor is not legacy["successor"]
    train_steps(model, optim, sched, 1)
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert optim2.param_groups[0]["lr"] == optim.param_groups[0]["lr"]
