"""torch.distributed with 2 CPU processes (gloo): sharding, gathering (each item counted once), gradient averaging,
the gathered predictions file."""

import contextlib
import io
import os
import re
import socket
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from dassl.config import get_cfg_default
from dassl.evaluation import Classification, PerDatasetClassification
from dassl.utils import average_gradients, gather_object, get_rank, get_world_size, is_main_process

N_ITEMS, N_CLASSES = 11, 3


def fake_prediction(i):
    """Label and predicted class of item ``i`` (a fixed, imperfect classifier)."""
    return i % N_CLASSES, (i * 7 + i // 4) % N_CLASSES


# Classes 0-1 are dataset "A", class 2 is dataset "B"
JOINED = SimpleNamespace(dataset_names=["A", "B"], class_offsets=[0, 2], num_classes_per_dataset=[2, 1])


def evaluate(indices, per_dataset=False):
    """(results, counts, counts per dataset, printed text) of the evaluator over ``indices``."""
    cfg = get_cfg_default()
    evaluator = PerDatasetClassification(cfg, dataset=JOINED) if per_dataset else Classification(cfg)
    labels = torch.tensor([fake_prediction(i)[0] for i in indices])
    preds = torch.tensor([fake_prediction(i)[1] for i in indices])
    evaluator.process(torch.nn.functional.one_hot(preds, N_CLASSES).float(), labels)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        results = dict(evaluator.evaluate())
    return results, evaluator.counts, getattr(evaluator, "counts_per_dataset", None), printed.getvalue()


def worker(rank, world_size, port, result_dir):
    torch.set_num_threads(1)  # forked from a parent whose OpenMP pool may be live: stay single-threaded
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from dassl.data.samplers import build_sampler
    from dassl.utils.dist import init_distributed_from_env

    assert init_distributed_from_env(use_cuda=False)
    eval_indices = list(build_sampler("SequentialSampler", data_source=list(range(N_ITEMS))))
    train_sampler = build_sampler("RandomSampler", cfg=get_cfg_default(), data_source=list(range(N_ITEMS)))
    param = torch.nn.Parameter(torch.zeros(2))
    param.grad = torch.full((2,), float(rank + 1))
    average_gradients([param])
    torch.save({"rank": get_rank(), "world": get_world_size(), "main": is_main_process(),
                "eval_indices": eval_indices, "eval": evaluate(eval_indices),
                "eval_per_dataset": evaluate(eval_indices, per_dataset=True),
                "train_sampler": type(train_sampler).__name__, "grad": param.grad.clone()},
               os.path.join(result_dir, "rank{}.pt".format(rank)))
    torch.distributed.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_eval_counts_every_item_once(tmp_path):
    # fork: the children reuse the imported torch instead of importing it again (CPU only, no CUDA state)
    mp.start_processes(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    ranks = [torch.load(str(tmp_path / "rank{}.pt".format(r)), weights_only=True) for r in range(2)]
    assert [r["main"] for r in ranks] == [True, False] and ranks[1]["world"] == 2
    shards = [r["eval_indices"] for r in ranks]
    assert sorted(shards[0] + shards[1]) == list(range(N_ITEMS))  # no padding, no duplicates
    # absolute counts, straight from fake_prediction: an evaluator counting an item twice fails here
    pairs = [fake_prediction(i) for i in range(N_ITEMS)]
    correct = sum(label == pred for label, pred in pairs)
    correct_a = sum(label == pred for label, pred in pairs if label < 2)
    correct_b = sum(label == pred for label, pred in pairs if label == 2)
    per_dataset = {"A": {"total": 8, "correct": correct_a}, "B": {"total": 3, "correct": correct_b}}
    whole_split = evaluate(range(N_ITEMS))[0]  # single-process reference
    for r in ranks:
        results, counts, _, _ = r["eval"]
        assert results == pytest.approx(whole_split)
        assert counts == {"total": N_ITEMS, "correct": correct}
        results, counts, counts_per_dataset, _ = r["eval_per_dataset"]
        assert counts == {"total": N_ITEMS, "correct": correct} and counts_per_dataset == per_dataset
        assert results["accuracy/A"] == pytest.approx(100 * correct_a / 8)
        assert results["accuracy/B"] == pytest.approx(100 * correct_b / 3)
        assert r["train_sampler"] == "DistributedSampler"
        assert torch.equal(r["grad"], torch.full((2,), 1.5))
    printed = ranks[0]["eval_per_dataset"][3]
    assert "* total: 11\n" in printed and "* accuracy on B: {:.1f}% (total: 3, correct: {})".format(
        100 * correct_b / 3, correct_b) in printed
    assert ranks[1]["eval"][3] == ranks[1]["eval_per_dataset"][3] == ""  # only rank 0 prints


def test_single_process_helpers():
    assert (get_rank(), get_world_size(), is_main_process()) == (0, 1, True)
    assert gather_object({"a": 1}) == [{"a": 1}]
    param = torch.nn.Parameter(torch.zeros(1))
    param.grad = torch.ones(1)
    average_gradients([param])
    assert param.grad.item() == 1.0


def train_worker(rank, world_size, port, argv, result_dir):
    torch.set_num_threads(1)  # forked from a parent whose OpenMP pool may be live: stay single-threaded
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import sys

    import train
    from dassl.utils import Logger

    old_stdout = sys.stdout
    try:
        trainer = train.main(train.get_parser().parse_args(argv))
    finally:
        if isinstance(sys.stdout, Logger):
            sys.stdout.close()
        sys.stdout = old_stdout
    with torch.no_grad():  # this rank's model on the whole test split, item by item, in split order
        wrapper = trainer.test_loader.dataset
        test_logits = trainer.model(torch.stack([wrapper[i]["img"] for i in range(len(wrapper))]))
    torch.save({"weight": trainer.model[1].weight.detach().clone(), "batches": trainer.num_batches,
                "test_logits": test_logits, "test_impaths": [item.impath for item in trainer.dm.dataset.test],
                "test_labels": [item.label for item in trainer.dm.dataset.test]},
               os.path.join(result_dir, "train{}.pt".format(rank)))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_training_run(toy_root, tmp_path):
    import train
    from dassl_test_utils import TOY_YAML, toy_argv
    from dassl.data.datasets import build_dataset
    from dassl_test_trainer import MODEL_NAME

    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    cfg.merge_from_file(TOY_YAML)
    cfg.DATASET.ROOT = toy_root
    build_dataset(cfg)  # generate Toy before forking
    out = tmp_path / "ddp"
    argv = toy_argv(toy_root, out, "OPTIM.MAX_EPOCH", "2", "OPTIM.LR", "0.01", "TEST.SAVE_PREDICTIONS", "True")
    mp.start_processes(train_worker, args=(2, free_port(), argv, str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    ranks = [torch.load(str(tmp_path / "train{}.pt".format(r)), weights_only=True) for r in range(2)]
    assert ranks[0]["batches"] == 3  # 48 images / 2 ranks / batch 8
    assert torch.equal(ranks[0]["weight"], ranks[1]["weight"])  # averaged gradients keep replicas equal
    assert sorted(os.listdir(out)) == [MODEL_NAME, "log.txt", "predictions_test.npz", "run_complete.json",
                                    "run_settings.json"]  # one log and one record: rank 0 only
    assert sorted(os.listdir(out / MODEL_NAME)) == ["checkpoint", "model.pth.tar-2"]
    log = (out / "log.txt").read_text()
    assert "* total: 28" in log.split("Finish training")[1]  # the whole test split, each image once

    # Each rank evaluated every other image; the file has the whole split once, in its order.
    saved = np.load(str(out / "predictions_test.npz"), allow_pickle=False)
    assert saved["impaths"].tolist() == ranks[0]["test_impaths"] and saved["labels"].tolist() == ranks[0]["test_labels"]
    np.testing.assert_allclose(saved["logits"], ranks[0]["test_logits"].numpy(), rtol=1e-5, atol=1e-5)
    accuracy = float(re.findall(r"\* accuracy: ([\d.]+)%", log.split("Finish training")[1])[0])
    assert 100.0 * (saved["logits"].argmax(1) == saved["labels"]).mean() == pytest.approx(accuracy, abs=0.05)
