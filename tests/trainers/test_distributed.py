"""DPL's two stages under torch.distributed: 2 CPU processes (gloo), as torchrun would start them."""
import os
import re
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from clip.tiny import save_tiny_clip
from dpl_helpers import FAST_OPTS, TINY_SIZES, TOY_YAML, run_train, search_argv, subnet_argv


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


def shard_worker(rank, world_size, port, argv, result_dir):
    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    trainer = run_train(argv)
    encoded = []  # classes per text pass on this rank
    trainer.model.text_encoder.register_forward_pre_hook(lambda module, args: encoded.append(len(args[0])))
    trainer.set_model_mode("eval")
    with torch.no_grad():
        trainer.model(next(iter(trainer.test_loader))["img"][:2])
    state = {k: v.detach().clone() for k, v in trainer.model.prompt_learner.state_dict().items()}
    torch.save({"state": state, "shard": trainer.model.text_shard, "encoded": encoded},
               os.path.join(result_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("trainer", ["CoOp", "TrainerSubnet"])
def test_class_prompts_sharded_over_processes_train_as_unsharded(tmp_path, trainer):
    """MODEL.TEXT_SHARD_CLASSES: each of 2 processes encodes half of Toy's classes; the features are
    all-gathered with their gradients, so training ends on the prompts an unsharded run reaches."""
    clip_path = save_tiny_clip(str(tmp_path / "clip.pt"), "ViT", seed=0, **TINY_SIZES)
    root = str(tmp_path / "data")
    learn = ["OPTIM.NAME", "adam", "OPTIM.LR", "0.01", "OPTIM.WARMUP_EPOCH", "0"]

    def argv(out, shard):
        opts = learn + ["MODEL.TEXT_SHARD_CLASSES", shard]
        if trainer == "CoOp":
            return coop_argv(root, clip_path, out, *opts)
        return subnet_argv(root, clip_path, out, *opts, "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", _config(tmp_path),
                           epochs=1)

    initial = run_train(["--no-train"] + argv(tmp_path / "warmup", "False"))  # generates Toy before forking
    initial = initial.model.prompt_learner.state_dict()
    results = {}
    for shard in ("True", "False"):
        mp.start_processes(shard_worker, args=(2, free_port(), [str(a) for a in argv(tmp_path / shard, shard)],
                                               str(tmp_path)), nprocs=2, join=True, start_method="fork")
        results[shard] = [torch.load(str(tmp_path / f"rank{r}.pt"), weights_only=False) for r in range(2)]

    sharded, whole = results["True"], results["False"]
    assert [r["shard"] for r in sharded] == [(0, 2), (1, 2)] and whole[0]["shard"] is None
    n_classes = whole[0]["encoded"][0]
    assert [r["encoded"] for r in sharded] == [[n_classes // 2], [n_classes - n_classes // 2]]
    for key, value in whole[0]["state"].items():
        assert torch.equal(sharded[0]["state"][key], sharded[1]["state"][key]), key  # ranks agree
        torch.testing.assert_close(sharded[0]["state"][key], value, rtol=1e-4, atol=1e-5)
    assert any(not torch.allclose(v, initial[k], atol=1e-3) for k, v in whole[0]["state"].items())  # it trained


def coop_argv(root, clip_path, out, *opts):
    return ["--root", root, "--output-dir", out, "--seed", 1, "--trainer", "CoOp", "--dataset-config-file", TOY_YAML,
            *FAST_OPTS, "MODEL.BACKBONE.PATH", clip_path, "OPTIM.MAX_EPOCH", 1, "TRAINER.COOP.N_CTX", 4, *opts]
