"""DPL's search over several datasets (DATASET.NAME "Toy,ElevaterCifar10") and ALPHA_LOSS task_mean.

The second dataset is an ELEVATER task in the ecosystem's layout (index file, label map, zip),
made of Toy images of two classes, so the search reads it through the same data layer as a
single-task run. Toy's val split (4 shots: 4 images x 4 classes) outweighs the ELEVATER one's
(ceil(0.2 x 4) = 1 image x 2 classes): the datasets are unbalanced, which is where the two alpha
losses differ.
"""
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dpl_helpers import run_train, search_argv

TWO = "Toy,ElevaterCifar10"


@pytest.fixture(scope="module")
def two_task_root(tmp_path_factory):
    """A data root with Toy (generated) and ElevaterCifar10 (two Toy classes in ELEVATER's layout)."""
    from datasets.elevater import TASKS_BY_NAME
    from datasets.toy import generate_toy

    root = tmp_path_factory.mktemp("multitask_data")
    generate_toy(str(root / "toy"), {"num_classes": 4, "images_per_class": 24, "image_size": 32, "seed": 0})
    task = TASKS_BY_NAME["cifar-10"]
    folder = root / task.root_folder
    folder.mkdir(parents=True)
    (folder / task.labelmap).write_text("airplane\nbird\n")
    sources = {c: sorted((root / "toy" / "images" / name).iterdir())
               for c, name in enumerate(["2_blue_triangle", "3_yellow_cross"])}
    for split, images in (("train", slice(0, 8)), ("test", slice(8, 12))):
        lines = []
        with zipfile.ZipFile(folder / f"{split}.zip", "w") as z:
            for c, paths in sources.items():
                for path in paths[images]:
                    member = f"{c}/{path.name}"
                    z.write(path, member)
                    lines.append(f"{split}.zip@{member} {c}")
        (folder / task.index[split]).write_text("\n".join(lines) + "\n")
    return str(root)


def multitask_argv(root, clip, out, *opts, epochs=1):
    return search_argv(root, clip, out, "DATASET.NAME", TWO, *opts, epochs=epochs)


TASK_MEAN = ("TRAINER.TRAINERSUPERNET.ALPHA_LOSS", "task_mean")


def test_a_multitask_search_runs_end_to_end(two_task_root, dpl_clip, tmp_path):
    out = tmp_path / "search"
    trainer = run_train(multitask_argv(two_task_root, dpl_clip, out, *TASK_MEAN))
    assert trainer.dm.dataset.dataset_names == ["Toy", "ElevaterCifar10"]
    assert trainer.num_classes == 6 and trainer.dm.dataset.class_offsets == [0, 4]
    assert trainer.dm.dataset.count_per_dataset("val") == {"Toy": 16, "ElevaterCifar10": 2}
    for epoch in (0, 1):
        assert np.isfinite(np.load(out / f"alpha_e{epoch}_img.npy")).all()
    assert not np.array_equal(np.load(out / "alpha_e0_txt.npy"), np.load(out / "alpha_e1_txt.npy"))
    log = (out / "log.txt").read_text()
    assert "* accuracy on Toy:" in log and "* accuracy on ElevaterCifar10:" in log
    assert "Searched configuration after epoch 1:" in log


def _alpha_gradients(trainer, loss):
    for p in trainer.alpha_params + trainer.prompt_params:
        p.grad = None
    loss.backward()
    return [p.grad.clone() for p in trainer.alpha_params]


def test_task_mean_alpha_gradient_is_the_gradient_of_the_mean_of_per_task_means(two_task_root, dpl_clip, tmp_path):
    trainer = run_train(["--no-train"] + multitask_argv(two_task_root, dpl_clip, tmp_path / "built", *TASK_MEAN))
    trainer.set_model_mode("train")
    val = trainer.val_batches
    batch = torch.utils.data.default_collate([val.dataset[i] for i in range(len(val.dataset))])  # the whole val split
    image, label = batch["img"], batch["label"]
    task = (label >= 4).long()
    assert task.sum().item() == 2 and (task == 0).sum().item() == 16  # unbalanced: 16 Toy, 2 ELEVATER

    loss, terms, logits = trainer.alpha_loss(image, label)
    ours = _alpha_gradients(trainer, loss)

    # By hand: per-sample cross-entropy over the 6 joined classes, mean within each dataset, mean of the two.
    per_sample = F.cross_entropy(trainer.model(image).float(), label, reduction="none")
    by_hand = (per_sample[task == 0].mean() + per_sample[task == 1].mean()) / 2
    expected = _alpha_gradients(trainer, by_hand)
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    for mine, theirs in zip(ours, expected):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-7)

    pooled = _alpha_gradients(trainer, F.cross_entropy(trainer.model(image).float(), label))
    assert all(g.abs().sum() > 0 for g in pooled)
    assert any(not torch.allclose(p, o, rtol=1e-3, atol=0) for p, o in zip(pooled, ours))

    trainer.cfg.defrost()
    trainer.cfg.TRAINER.TRAINERSUPERNET.ALPHA_LOSS = "pooled"  # today's behaviour: the batch mean
    try:
        pooled_loss, _, _ = trainer.alpha_loss(image, label)
    finally:
        trainer.cfg.TRAINER.TRAINERSUPERNET.ALPHA_LOSS = "task_mean"
        trainer.cfg.freeze()
    assert pooled_loss.item() == pytest.approx(per_sample.mean().item(), rel=1e-5)
    assert pooled_loss.item() != pytest.approx(by_hand.item(), rel=1e-3)


def test_an_unknown_alpha_loss_is_refused(two_task_root, dpl_clip, tmp_path):
    from dassl.errors import ConfigError

    with pytest.raises(ConfigError, match="ALPHA_LOSS is 'mean'; expected one of \\['pooled', 'task_mean'\\]"):
        run_train(multitask_argv(two_task_root, dpl_clip, tmp_path / "bad", "TRAINER.TRAINERSUPERNET.ALPHA_LOSS",
                                 "mean"))
