"""DPL's two stages under torch.distributed: 2 CPU processes (gloo), as torchrun would start them."""
import os
import re
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from clip.tiny import save_tiny_clip
from dpl_helpers import TINY_SIZES, run_train, search_argv, subnet_argv


def worker(rank, world_size, port, argv, result_dir):
    torch.set_num_threads(1)  # forked from a parent whose OpenMP pool may be live
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    trainer = run_train(argv)
    torch.save({k: v.detach().clone() for k, v in trainer.model.prompt_learner.state_dict().items()},
               os.path.join(result_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(argv, result_dir):
    mp.start_processes(worker, args=(2, free_port(), [str(a) for a in argv], str(result_dir)), nprocs=2, join=True,
                       start_method="fork")
    return [torch.load(str(result_dir / f"rank{r}.pt"), weights_only=True) for r in range(2)]


def logged_accuracy(path):
    return float(re.findall(r"^\* accuracy: ([0-9.]+)%", path.read_text(), flags=re.M)[-1])


@pytest.mark.slow
def test_search_and_subnet_under_two_processes(tmp_path):
    clip_path = save_tiny_clip(str(tmp_path / "clip.pt"), "ViT", seed=0, **TINY_SIZES)
    root = str(tmp_path / "data")
    run_train(["--no-train"] + subnet_argv(root, clip_path, tmp_path / "warmup", "TRAINER.TRAINERSUBNET.PROMPT_CONFIG",
                                            _config(tmp_path)))  # generates Toy before forking

    search = tmp_path / "search"
    ranks = run_two_processes(search_argv(root, clip_path, search), tmp_path)
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key  # alphas and prompts identical on both ranks
    np.testing.assert_array_equal(np.load(search / "alpha_e2_img.npy"), ranks[0]["alphas_img"].numpy())
    files = sorted(os.listdir(search))
    assert files.count("log.txt") == 1 and not any(f.startswith("log.txt-") for f in files)
    assert {"alpha_e2_img.npy", "alpha_e2_txt.npy", "searched_config.json", "convergence.png"} <= set(files)

    train = tmp_path / "train"
    config = str(search / "searched_config.json")
    ranks = run_two_processes(subnet_argv(root, clip_path, train, "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config), tmp_path)
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    distributed_accuracy = logged_accuracy(train / "log.txt")
    assert "* total: 28" in (train / "log.txt").read_text().split("Finish training")[1]  # whole split, once

    single = tmp_path / "single_eval"
    run_train(["--eval-only", "--model-dir", str(train), "--load-epoch", "2"]
              + subnet_argv(root, clip_path, single, "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config))
    assert logged_accuracy(single / "log.txt") == distributed_accuracy


def _config(tmp_path):
    path = tmp_path / "warmup.json"
    path.write_text('{"image": {"prompt_lengths": [1, 0]}, "text": {"prompt_lengths": [1, 0, 0]}}')
    return str(path)
