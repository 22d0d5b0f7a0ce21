"""dassl.optim: optimizers by name and LR schedules against hand-computed tables."""

import math
import warnings

import pytest
import torch

from dassl.config import get_cfg_default
from dassl.optim import build_lr_scheduler, build_optimizer

B, T = 0.002, 10  # base LR, MAX_EPOCH


def optim_cfg(**overrides):
    cfg = get_cfg_default()
    cfg.OPTIM.NAME, cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH = "sgd", B, T
    for key, value in overrides.items():
        setattr(cfg.OPTIM, key, value)
    return cfg.OPTIM


def lr_sequence(cfg, epochs=T):
    """LR in force during each epoch, stepping the scheduler once per epoch as the trainer does."""
    param = torch.nn.Parameter(torch.zeros(1))
    optim = build_optimizer([param], cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's deprecated `verbose` argument
        sched = build_lr_scheduler(optim, cfg)
    lrs = []
    for _ in range(epochs):
        lrs.append(optim.param_groups[0]["lr"])
        optim.step()
        sched.step()
    return lrs


def cosine(position):
    return B * (1 + math.cos(math.pi * position / T)) / 2


def test_cosine_with_constant_warmup_one_epoch():
    expected = [1e-5, B] + [cosine(e - 1) for e in range(2, T)]
    assert lr_sequence(optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="constant")) == \
        pytest.approx(expected, abs=1e-12)
    # spot values of the published table
    assert expected[2] == pytest.approx(0.00195106, abs=1e-8) and expected[9] == pytest.approx(0.000190983, abs=1e-9)


def test_cosine_with_constant_warmup_two_epochs():
    expected = [1e-5, 1e-5, B] + [cosine(e - 2) for e in range(3, T)]
    assert lr_sequence(optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=2, WARMUP_TYPE="constant")) == \
        pytest.approx(expected, abs=1e-12)


def test_cosine_with_linear_warmup():
    expected = [1e-5, B / 3, 2 * B / 3, B] + [cosine(e - 3) for e in range(4, T)]
    assert lr_sequence(optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=3, WARMUP_TYPE="linear",
                                 WARMUP_MIN_LR=1e-5)) == pytest.approx(expected, abs=1e-12)


def test_cosine_without_recount_is_anchored_at_base_lr():
    w = 1
    expected = [1e-5, B] + [B * (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * w / T))
                            for e in range(2, T)]
    assert lr_sequence(optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=w, WARMUP_TYPE="constant",
                                 WARMUP_RECOUNT=False)) == pytest.approx(expected, rel=1e-9)


def test_step_schedules():
    assert lr_sequence(optim_cfg(LR_SCHEDULER="single_step", STEPSIZE=(3,))) == pytest.approx(
        [B] * 3 + [B / 10] * 3 + [B / 100] * 3 + [B / 1000], rel=1e-9)
    assert lr_sequence(optim_cfg(LR_SCHEDULER="multi_step", STEPSIZE=(3, 6), WARMUP_EPOCH=2,
                                 WARMUP_TYPE="linear")) == pytest.approx(
        [1e-5, B / 2, B, B, B, B / 10, B / 10, B / 10, B / 100, B / 100], rel=1e-9)
    assert lr_sequence(optim_cfg(LR_SCHEDULER="cosine", MAX_EPOCH=5), epochs=5) == pytest.approx(
        [B * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)], rel=1e-9)


def test_bad_names_are_reported():
    with pytest.raises(ValueError, match="scheduler must be one of"):
        lr_sequence(optim_cfg(LR_SCHEDULER="poly"))
    with pytest.raises(ValueError, match="WARMUP_TYPE"):
        lr_sequence(optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="exp"))
    with pytest.raises(ValueError, match="optim must be one of"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], optim_cfg(NAME="lamb"))


@pytest.mark.parametrize("name,cls", [("adam", torch.optim.Adam), ("amsgrad", torch.optim.Adam),
                                      ("sgd", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop),
                                      ("radam", torch.optim.RAdam), ("adamw", torch.optim.AdamW)])
def test_optimizers_by_name(name, cls):
    model = torch.nn.Linear(2, 2)
    optim = build_optimizer(model, optim_cfg(NAME=name))
    assert isinstance(optim, cls) and optim.param_groups[0]["lr"] == B
    assert optim.param_groups[0]["weight_decay"] == 5e-4


def test_staged_lr_gives_new_layers_the_base_lr():
    model = torch.nn.Sequential()
    model.add_module("backbone", torch.nn.Linear(2, 2))
    model.add_module("head", torch.nn.Linear(2, 2))
    optim = build_optimizer(model, optim_cfg(STAGED_LR=True, NEW_LAYERS=("head",), BASE_LR_MULT=0.1))
    assert [g["lr"] for g in optim.param_groups] == pytest.approx([B * 0.1, B])
    assert optim.param_groups[1]["params"][0] is model.head.weight
