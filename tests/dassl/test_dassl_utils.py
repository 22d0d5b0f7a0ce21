"""dassl.utils: registry, files, logger, meters, RNG state, pretrained weights."""

import os
import random
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from dassl.utils import (
    AverageMeter,
    Logger,
    MetricMeter,
    Registry,
    check_availability,
    check_isfile,
    count_num_param,
    get_rng_state,
    listdir_nohidden,
    load_pretrained_weights,
    mkdir_if_missing,
    read_image,
    read_json,
    set_rng_state,
    setup_logger,
    write_json,
)


def test_registry_decorator_duplicate_and_unknown():
    reg = Registry("THING")

    @reg.register()
    class Alpha:
        pass

    def beta():
        pass

    reg.register(beta)
    assert reg.get("Alpha") is Alpha and reg.registered_names() == ["Alpha", "beta"]
    with pytest.raises(KeyError, match='already registered in "THING"'):
        reg.register(beta)
    with pytest.raises(KeyError, match=r"Gamma.*registered:.*Alpha.*beta"):
        reg.get("Gamma")


def test_check_availability_suggests_closest():
    with pytest.raises(ValueError, match=r"\[CoOp\]"):
        check_availability("Coop", ["CoOp", "CoCoOp", "ZeroshotCLIP"])


def test_files_and_json(tmp_path):
    folder = tmp_path / "a" / "b"
    mkdir_if_missing(str(folder))
    mkdir_if_missing(str(folder))  # existing folder is fine
    (folder / ".hidden").write_text("x")
    (folder / "z.txt").write_text("x")
    (folder / "y.txt").write_text("x")
    assert listdir_nohidden(str(folder), sort=True) == ["y.txt", "z.txt"]
    path = str(tmp_path / "new" / "obj.json")
    write_json({"train": [["a.jpg", 0, "cat"]]}, path)
    assert read_json(path) == {"train": [["a.jpg", 0, "cat"]]}
    assert check_isfile(path)
    with pytest.warns(UserWarning, match="No file found"):
        assert not check_isfile(str(tmp_path / "missing"))


def test_read_image_errors_name_the_file(tmp_path):
    good = tmp_path / "good.png"
    Image.new("L", (4, 4)).save(good)
    assert read_image(str(good)).mode == "RGB"
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(IOError, match="broken.jpg"):
        read_image(str(bad))
    with pytest.raises(IOError, match="absent.jpg"):
        read_image(str(tmp_path / "absent.jpg"))


def test_setup_logger_tees_and_never_overwrites(tmp_path):
    old = sys.stdout
    try:
        setup_logger(str(tmp_path))
        print("first run")
        sys.stdout.flush()
        setup_logger(str(tmp_path))  # second run in the same folder
        print("second run")
        sys.stdout.flush()
    finally:
        if isinstance(sys.stdout, Logger):
            sys.stdout.close()
        sys.stdout = old
    logs = sorted(os.listdir(tmp_path))
    assert logs[0] == "log.txt" and len(logs) == 2 and logs[1].startswith("log.txt-")
    assert (tmp_path / "log.txt").read_text() == "first run\n"
    assert (tmp_path / logs[1]).read_text() == "second run\n"
    print("console still works")  # the real stdout was not closed


def test_meters():
    meter = AverageMeter()
    meter.update(2.0)
    meter.update(torch.tensor(4.0), n=3)
    assert meter.val == 4.0 and meter.avg == pytest.approx(3.5)
    metrics = MetricMeter()
    metrics.update({"loss": 1.0, "acc": 50.0})
    metrics.update({"loss": torch.tensor(3.0), "acc": 100.0})
    assert str(metrics) == "loss 3.0000 (2.0000) acc 100.0000 (75.0000)"
    with pytest.raises(TypeError, match="must be a dictionary"):
        metrics.update(1.0)


def test_rng_state_round_trip_restores_every_generator():
    state = get_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_pretrained_weights_keep_matching_tensors(tmp_path, capsys):
    src = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    dst = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 5))  # second layer differs in size
    path = str(tmp_path / "w.pth")
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, path)
    load_pretrained_weights(dst, path)
    assert torch.equal(dst[0].weight, src[0].weight)
    out = capsys.readouterr().out
    assert "Successfully loaded" in out and "1.weight" in out
    assert count_num_param(dst) == 4 * 3 + 3 + 3 * 5 + 5
    assert count_num_param(params=[dst[0].weight]) == 12
