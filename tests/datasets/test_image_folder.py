"""ImageFolder: a dataset defined by a YAML, end to end through the config and the registry."""

import json
import os
import shutil

import pytest

from dataset_trees import REPO, class_tree, make_cfg, per_class_counts, register_datasets

EXAMPLE = os.path.join(REPO, "configs", "datasets", "image_folder_example.yaml")


def build(root, **options):
    """Merge the example YAML, override IMAGE_FOLDER keys, build through the registry."""
    from dataset_trees import register_datasets
    from dassl.data.datasets import build_dataset

    register_datasets()
    cfg = make_cfg(root, "")
    cfg.merge_from_file(EXAMPLE)
    cfg.DATASET.IMAGE_FOLDER.CLASSNAMES = []
    for key, value in options.items():
        if key in ("NUM_SHOTS", "SUBSAMPLE_CLASSES"):
            setattr(cfg.DATASET, key, value)
        else:
            setattr(cfg.DATASET.IMAGE_FOLDER, key, value)
    return build_dataset(cfg)


def as_rows(items):
    return [(i.impath, i.label, i.classname) for i in items]


@pytest.fixture
def flowers(root):
    class_tree(os.path.join(root, "my_flowers"), ["rose", "sunflower_field", "daisy"], 10)
    return os.path.join(root, "my_flowers")


def test_example_yaml_names_the_dataset_and_its_template(root):
    from datasets.templates import template_for

    cfg = make_cfg(root, "")
    cfg.merge_from_file(EXAMPLE)
    assert cfg.DATASET.NAME == "ImageFolder"
    assert template_for(cfg) == "a photo of a {}, a type of flower."


def test_classes_layout_split_is_saved_then_reused(root, flowers):
    first = build(root, CLASSNAMES=["rose:red rose"])
    assert first.classnames == ["daisy", "red rose", "sunflower field"]
    assert per_class_counts(first.train_x) == {0: 5, 1: 5, 2: 5}
    assert per_class_counts(first.val) == {0: 2, 1: 2, 2: 2}
    assert per_class_counts(first.test) == {0: 3, 1: 3, 2: 3}

    split_path = os.path.join(flowers, "split.json")
    with open(split_path) as f:
        saved = json.load(f)
    assert saved["train"][0][0].split("/")[0] in {"daisy", "rose", "sunflower_field"}

    second = build(root, CLASSNAMES=["rose:red rose"])
    for split in ("train_x", "val", "test"):
        assert as_rows(getattr(second, split)) == as_rows(getattr(first, split))


def test_split_seed_changes_the_split_and_nothing_else_does(root, flowers):
    first = build(root, SPLIT_SEED=1)
    os.remove(os.path.join(flowers, "split.json"))
    import random

    random.seed(12345)  # the global generator does not influence the split
    same = build(root, SPLIT_SEED=1)
    os.remove(os.path.join(flowers, "split.json"))
    other = build(root, SPLIT_SEED=2)
    assert as_rows(same.train_x) == as_rows(first.train_x)
    assert {i.impath for i in other.train_x} != {i.impath for i in first.train_x}


def test_renaming_a_class_needs_no_new_split(root, flowers):
    first = build(root, NUM_SHOTS=2)
    renamed = build(root, NUM_SHOTS=2, CLASSNAMES=["daisy:white daisy"])
    assert renamed.classnames == ["white daisy", "rose", "sunflower field"]
    assert [i.impath for i in renamed.train_x] == [i.impath for i in first.train_x]
    assert {i.classname for i in renamed.test if i.label == 0} == {"white daisy"}


def test_fewshot_cache_lives_in_the_folder_and_is_not_a_class(root, flowers):
    first = build(root, NUM_SHOTS=2)
    assert os.path.isfile(os.path.join(flowers, "split_fewshot", "shot_2-seed_1.pkl"))
    again = build(root, NUM_SHOTS=2)
    assert again.num_classes == 3
    assert per_class_counts(again.train_x) == {0: 2, 1: 2, 2: 2}
    assert as_rows(again.train_x) == as_rows(first.train_x)


def test_ratios_come_from_the_config(root, flowers):
    dataset = build(root, TRAIN_RATIO=0.6, VAL_RATIO=0.1)
    assert per_class_counts(dataset.train_x) == {0: 6, 1: 6, 2: 6}
    assert per_class_counts(dataset.val) == {0: 1, 1: 1, 2: 1}


def test_added_class_folder_makes_the_saved_split_stale(root, flowers):
    build(root)
    class_tree(flowers, ["tulip"], 10)
    with pytest.raises(ValueError, match="delete the split file"):
        build(root)


def test_splits_layout(root):
    base = os.path.join(root, "pets")
    class_tree(os.path.join(base, "train"), ["cat", "dog", "guinea_pig"], 4)
    class_tree(os.path.join(base, "val"), ["cat", "dog", "guinea_pig"], 1)
    class_tree(os.path.join(base, "test"), ["cat", "dog"], 2)

    dataset = build(root, DIR="pets", CLASSNAMES=["dog:puppy"])
    assert dataset.classnames == ["cat", "puppy", "guinea pig"]
    assert per_class_counts(dataset.train_x) == {0: 4, 1: 4, 2: 4}
    assert per_class_counts(dataset.val) == {0: 1, 1: 1, 2: 1}
    assert per_class_counts(dataset.test) == {0: 2, 1: 2}
    assert not os.path.exists(os.path.join(base, "split.json"))

    base_classes = build(root, DIR="pets", SUBSAMPLE_CLASSES="base")
    assert base_classes.classnames == ["cat", "dog"]

    shutil.rmtree(os.path.join(base, "val"))
    assert build(root, DIR="pets").val == []


def test_splits_layout_rejects_a_class_without_training_images(root):
    base = os.path.join(root, "pets")
    class_tree(os.path.join(base, "train"), ["cat"], 2)
    class_tree(os.path.join(base, "test"), ["cat", "owl"], 1)
    with pytest.raises(ValueError, match="owl"):
        build(root, DIR="pets")


def test_absolute_dir_and_forced_classes_layout(root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    class_tree(str(elsewhere), ["train", "test"], 5)  # looks like split folders, but LAYOUT says classes
    dataset = build(root, DIR=str(elsewhere), LAYOUT="classes")
    assert dataset.classnames == ["test", "train"]


@pytest.mark.parametrize(
    "options,match",
    [
        ({"DIR": ""}, "DATASET.IMAGE_FOLDER.DIR is empty"),
        ({"DIR": "nowhere"}, "nowhere"),
        ({"LAYOUT": "flat"}, "LAYOUT must be"),
        ({"CLASSNAMES": ["rose"]}, '"folder:class name"'),
        ({"CLASSNAMES": ["roze:rose"]}, 'names the folder "roze"'),
    ],
)
def test_config_mistakes_are_explained(root, flowers, options, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        build(root, **options)



def test_data_manager_loads_image_folder_batches(root, flowers):
    """Through the engine's DataManager: real images decoded, transformed and batched."""
    from dassl.data import DataManager

    register_datasets()
    cfg = make_cfg(root, "", num_shots=2)
    cfg.merge_from_file(EXAMPLE)
    cfg.INPUT.SIZE = (32, 32)
    cfg.INPUT.TRANSFORMS = ["random_resized_crop", "random_flip", "normalize"]
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 3
    dm = DataManager(cfg)
    assert dm.num_classes == 3
    assert dm.dataset.classnames == ["daisy", "red rose", "field of sunflowers"]
    batch = next(iter(dm.train_loader_x))
    assert tuple(batch["img"].shape) == (3, 3, 32, 32)
    assert len(dm.val_loader.dataset) == 6 and len(dm.test_loader.dataset) == 9
