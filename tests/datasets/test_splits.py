"""Where the splits come from: rebuilt split files named apart, dataset names in any case,
DATASET.VAL_SPLIT train_holdout, the few-shot warning, the data-loading worker cap, and the
wording of a tiny run's log."""

import json
import os
import re

import pytest

from dataset_trees import REPO, class_tree, load, make_cfg, per_class_counts, register_datasets, write_text
from test_download_data import dd

CLASSES = ["banded", "cracked", "dotted"]


def dtd_tree(root, n_per_class=10):
    return class_tree(os.path.join(root, "dtd", "images"), CLASSES, n_per_class)


def build(root, name, **kwargs):
    """``load`` with extra DATASET keys: ``val_split`` -> DATASET.VAL_SPLIT."""
    from dassl.data.datasets import build_dataset

    register_datasets()
    val_split = kwargs.pop("val_split", "dataset")
    cfg = make_cfg(root, name, **kwargs)
    cfg.DATASET.VAL_SPLIT = val_split
    return cfg, build_dataset(cfg)


def impaths(items):
    return {item.impath for item in items}


# ------------------------------------------------------------------ rebuilt split files


def test_rebuilt_split_is_named_apart_reused_with_a_warning_and_yields_to_the_published(root, capsys):
    dtd_tree(root)
    base = os.path.join(root, "dtd")
    published = os.path.join(base, "split_zhou_DescribableTextures.json")
    rebuilt = os.path.join(base, "split_rebuilt_DescribableTextures.json")

    first = load(root, "DescribableTextures", num_shots=2)
    log = capsys.readouterr().out
    assert os.path.isfile(rebuilt) and not os.path.exists(published)
    assert not first.split_is_published and first.rebuilt_split_path == rebuilt
    assert "WARNING" in log and "NOT the published split" in log and "not comparable" in log
    assert os.listdir(os.path.join(base, "split_fewshot_rebuilt")) == ["shot_2-seed_1.pkl"]
    assert not os.path.exists(os.path.join(base, "split_fewshot"))

    again = load(root, "DescribableTextures", num_shots=2)  # reused, and said again
    log = capsys.readouterr().out
    assert "NOT the published split" in log and f"Reading split from {rebuilt}" in log
    assert [i.impath for i in again.test] == [i.impath for i in first.test]

    # the published file, once there, wins (here: the rebuilt one with train and test exchanged)
    with open(rebuilt) as f:
        rows = json.load(f)
    with open(published, "w") as f:
        json.dump({"train": rows["test"], "val": rows["val"], "test": rows["train"]}, f)
    chosen = load(root, "DescribableTextures", num_shots=2)
    log = capsys.readouterr().out
    assert chosen.split_is_published and "WARNING" not in log and f"Reading split from {published}" in log
    assert impaths(chosen.test) == {os.path.join(base, "images", r[0]) for r in rows["train"]}
    # its few-shot subsets are drawn anew, in the published split's own folder
    assert os.listdir(os.path.join(base, "split_fewshot")) == ["shot_2-seed_1.pkl"]


def test_download_plan_reports_a_rebuilt_split(root):
    dtd_tree(root)
    load(root, "DescribableTextures")
    plan = "\n".join(dd.plan_lines(["DescribableTextures"], str(root)))
    assert "split_rebuilt_DescribableTextures.json is in use" in plan and "NOT the published split" in plan

    rows = json.load(open(os.path.join(root, "dtd", "split_rebuilt_DescribableTextures.json")))
    with open(os.path.join(root, "dtd", "split_zhou_DescribableTextures.json"), "w") as f:
        json.dump(rows, f)
    plan = "\n".join(dd.plan_lines(["DescribableTextures"], str(root)))
    assert "is left over" in plan and "in use" not in plan


# ------------------------------------------------------------------ dataset names


def test_both_name_forms_give_one_dataset_name(root, capsys):
    dtd_tree(root)
    cfg, lower = build(root, "describabletextures")
    assert cfg.DATASET.NAME == "DescribableTextures" and cfg.is_frozen() is False
    assert 'registered dataset "DescribableTextures"' in capsys.readouterr().out
    _, exact = build(root, "DescribableTextures")
    assert [i.impath for i in lower.test] == [i.impath for i in exact.test]
    assert sorted(os.listdir(os.path.join(root, "dtd"))) == ["images", "split_rebuilt_DescribableTextures.json"]

    cfg = make_cfg(root, "describabletextures")
    cfg.freeze()
    from dassl.data.datasets import build_dataset

    build_dataset(cfg)
    assert cfg.DATASET.NAME == "DescribableTextures" and cfg.is_frozen()  # written back, still frozen


def test_joined_names_in_any_case_with_an_image_folder(root):
    folder = os.path.join(root, "mine")
    class_tree(folder, ["alpha", "beta"], 5)
    dtd_tree(root)
    from dassl.data.datasets import build_dataset

    register_datasets()
    cfg = make_cfg(root, "describabletextures, IMAGEFOLDER")
    cfg.DATASET.IMAGE_FOLDER.DIR = "mine"
    joined = build_dataset(cfg)
    assert cfg.DATASET.NAME == "DescribableTextures,ImageFolder"
    assert joined.dataset_names == ["DescribableTextures", "ImageFolder"]
    assert joined.num_classes_per_dataset == [3, 2] and joined.classnames[-2:] == ["alpha", "beta"]

    cfg = make_cfg(root, "DescribableTextures,describabletextures")
    with pytest.raises(ValueError, match="more than once"):
        build_dataset(cfg)


def test_unknown_names_get_did_you_mean(root):
    from dassl.data.datasets import build_dataset
    from dassl.errors import UnknownNameError

    register_datasets()
    with pytest.raises(UnknownNameError, match=r"do you mean \[Caltech101\]"):
        build_dataset(make_cfg(root, "caltec101"))


# ------------------------------------------------------------------ DATASET.VAL_SPLIT


def test_train_holdout_is_disjoint_seeded_and_min_k_4(root):
    dtd_tree(root, n_per_class=30)  # 15 train, 6 val, 9 test per class
    _, own = build(root, "DescribableTextures", num_shots=2)
    _, held = build(root, "DescribableTextures", num_shots=2, val_split="train_holdout")
    _, full = build(root, "DescribableTextures")

    assert impaths(held.train_x) == impaths(own.train_x)  # the few-shot training images are unchanged
    assert per_class_counts(held.val) == {0: 2, 1: 2, 2: 2}  # min(K, 4)
    assert impaths(held.val) <= impaths(full.train_x)  # from the train split ...
    assert not impaths(held.val) & impaths(held.train_x)  # ... not the training images ...
    assert not impaths(held.val) & impaths(held.test)  # ... and not test,
    assert impaths(held.test) == impaths(own.test)  # which is untouched
    assert not impaths(held.val) & impaths(own.val)

    _, again = build(root, "DescribableTextures", num_shots=2, val_split="train_holdout")
    assert [i.impath for i in again.val] == [i.impath for i in held.val]
    _, other_seed = build(root, "DescribableTextures", num_shots=2, val_split="train_holdout", seed=2)
    assert impaths(other_seed.val) != impaths(held.val)
    assert not impaths(other_seed.val) & impaths(other_seed.train_x)

    _, k16 = build(root, "DescribableTextures", num_shots=8, val_split="train_holdout")
    assert per_class_counts(k16.val) == {0: 4, 1: 4, 2: 4}


def test_train_holdout_with_full_data_moves_val_percent_out_of_training(root):
    dtd_tree(root, n_per_class=30)
    _, full = build(root, "DescribableTextures")
    _, held = build(root, "DescribableTextures", val_split="train_holdout")
    assert per_class_counts(held.val) == {0: 2, 1: 2, 2: 2}  # round(0.1 x 15)
    assert per_class_counts(held.train_x) == {0: 13, 1: 13, 2: 13}
    assert impaths(held.train_x) | impaths(held.val) == impaths(full.train_x)
    assert not impaths(held.train_x) & impaths(held.val)


def test_train_holdout_on_imagenet_layout(root):
    wnids = ["n01440764", "n01443537", "n01484850"]
    base = os.path.join(root, "imagenet")
    write_text(os.path.join(base, "classnames.txt"), [f"{w} class {i}" for i, w in enumerate(wnids)])
    class_tree(os.path.join(base, "images", "train"), wnids, 8)
    class_tree(os.path.join(base, "images", "val"), wnids, 3)

    _, release = build(root, "ImageNet", num_shots=2)
    assert release.val is release.test  # the dataset's own: val = test (CoOp, the DPL release)
    _, held = build(root, "ImageNet", num_shots=2, val_split="train_holdout")
    assert impaths(held.train_x) == impaths(release.train_x) and impaths(held.test) == impaths(release.test)
    assert per_class_counts(held.val) == {0: 2, 1: 2, 2: 2}
    assert all(f"{os.sep}train{os.sep}" in p for p in impaths(held.val))
    assert not impaths(held.val) & (impaths(held.train_x) | impaths(held.test))
    _, base_classes = build(root, "ImageNet", num_shots=2, val_split="train_holdout", subsample="base")
    assert per_class_counts(base_classes.val) == {0: 2, 1: 2}


def test_val_split_typo_is_explained(root):
    dtd_tree(root)
    with pytest.raises(ValueError, match='"dataset".*"train_holdout"'):
        build(root, "DescribableTextures", val_split="holdout")


# ------------------------------------------------------------------ few-shot warning, workers


def test_more_shots_than_images_is_a_warning_naming_class_and_count(root, capsys):
    image_dir = os.path.join(root, "dtd", "images")
    class_tree(image_dir, ["banded", "cracked"], 20)
    class_tree(image_dir, ["dotted"], 4)  # 2 train images
    dataset = load(root, "DescribableTextures", num_shots=4)
    log = capsys.readouterr().out
    assert per_class_counts(dataset.train_x) == {0: 4, 1: 4, 2: 2}
    assert re.search(r"WARNING: 4 shots asked for the train set, but 1 class has fewer: 'dotted' \(2 images\)", log)
    assert log.count("Creating a 4-shot") == 2 and "4-shot train set" in log and "4-shot val set" in log


def test_workers_are_capped_at_the_available_cores(tmp_path, monkeypatch, capsys):
    from dassl.data import data_manager
    from dassl.data.data_manager import available_cpus, build_data_loader, capped_num_workers
    from dataset_trees import write_image
    from dassl.data.datasets import Datum

    assert 1 <= available_cpus() <= os.cpu_count()
    monkeypatch.setattr(data_manager, "available_cpus", lambda: 2)
    monkeypatch.setattr(data_manager, "_REPORTED_CAPS", set())
    assert capped_num_workers(1) == 1 and capped_num_workers(2) == 2
    assert capped_num_workers(16) == 2 and capped_num_workers(16) == 2
    log = capsys.readouterr().out
    assert log.count("DATALOADER.NUM_WORKERS is 16 but this process may use 2 CPU cores: using 2") == 1

    cfg = make_cfg(tmp_path, "")
    cfg.DATALOADER.NUM_WORKERS = 64
    items = [Datum(impath=write_image(str(tmp_path / f"{i}.jpg")), label=0) for i in range(2)]
    loader = build_data_loader(cfg, data_source=items, batch_size=2, is_train=False)
    assert loader.num_workers == 2


# ------------------------------------------------------------------ the wording of a run's log


def test_log_of_a_tiny_run_says_one_block_not_one_blocks(tmp_path):
    """DPL's subnet with one prompted block of one token per branch, one shot, and the name in lower case."""
    import sys

    import train
    from clip.tiny import save_tiny_clip
    from dassl.utils import Logger

    clip_path = save_tiny_clip(str(tmp_path / "tiny.pt"), "ViT")
    config = tmp_path / "one.json"
    config.write_text(json.dumps({"image": {"prompt_lengths": [1, 0]}, "text": {"prompt_lengths": [1, 0]}}))
    out = tmp_path / "out"
    argv = ["--root", tmp_path / "data", "--output-dir", out, "--seed", 1, "--trainer", "TrainerSubnet",
            "--dataset-config-file", os.path.join(REPO, "configs", "datasets", "toy.yaml"),
            "--config-file", os.path.join(REPO, "configs", "trainers", "TrainerSubnet", "fewshot.yaml"),
            "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "USE_CUDA", "False", "OPTIM.MAX_EPOCH", "1",
            "MODEL.BACKBONE.PATH", clip_path, "TRAINER.TRAINERSUBNET.PROMPT_CONFIG", config,
            "DATASET.NUM_SHOTS", "1", "DATASET.NAME", "toy"]
    old_stdout = sys.stdout
    try:
        trainer = train.main(train.get_parser().parse_args([str(a) for a in argv]))
    finally:
        if isinstance(sys.stdout, Logger):
            sys.stdout.close()
        sys.stdout = old_stdout
    log = (out / "log.txt").read_text()
    after_config = log[log.index("Loading trainer"):]
    assert "(1 prompted block, 1 token)" in after_config
    assert not re.search(r"\b1 (prompted |prompt |learnable )?(blocks|tokens|classes|images|epochs|tensors|shots)\b",
                         after_config)
    # each few-shot subset is announced once, by its name
    assert after_config.count("Creating a 1-shot train set") == 1 and after_config.count("Creating a 1-shot val set") == 1
    assert trainer.cfg.DATASET.NAME == "Toy" and "Dataset    Toy" in after_config
