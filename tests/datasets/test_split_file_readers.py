"""Readers of the datasets that ship a split_zhou_*.json: the published file is read as is."""

import os

import pytest

from dataset_trees import load, per_class_counts, write_image, write_json

# name, dataset folder, image folder inside it (split paths are relative to it), split file
SPLIT_DATASETS = [
    ("Caltech101", "caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json"),
    ("OxfordPets", "oxford_pets", "images", "split_zhou_OxfordPets.json"),
    ("StanfordCars", "stanford_cars", "", "split_zhou_StanfordCars.json"),
    ("OxfordFlowers", "oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json"),
    ("Food101", "food-101", "images", "split_zhou_Food101.json"),
    ("SUN397", "sun397", "SUN397", "split_zhou_SUN397.json"),
    ("DescribableTextures", "dtd", "images", "split_zhou_DescribableTextures.json"),
    ("EuroSAT", "eurosat", "2750", "split_zhou_EuroSAT.json"),
    ("UCF101", "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json"),
]
CLASSNAMES = ["zebra crossing", "apple pie", "2012 Tesla Model S", "Sea or Lake"]
SIZES = {"train": 5, "val": 2, "test": 3}


def write_published_split(root, dataset_dir, image_subdir, split_name):
    """Images for 4 classes and a split file listing them, in CoOp's format."""
    image_dir = os.path.join(root, dataset_dir, image_subdir)
    split = {}
    for part, n in SIZES.items():
        rows = []
        for label, classname in enumerate(CLASSNAMES):
            for i in range(n):
                relpath = f"{part}_c{label}/im{i}.jpg"
                write_image(os.path.join(image_dir, relpath))
                rows.append([relpath, label, classname])
        split[part] = rows
    write_json(os.path.join(root, dataset_dir, split_name), split)
    return image_dir


@pytest.mark.parametrize("name,dataset_dir,image_subdir,split_name", SPLIT_DATASETS)
def test_published_split_is_read_as_is(root, name, dataset_dir, image_subdir, split_name):
    image_dir = write_published_split(root, dataset_dir, image_subdir, split_name)
    dataset = load(root, name)

    assert dataset.classnames == CLASSNAMES
    assert dataset.num_classes == 4
    for part, items in (("train", dataset.train_x), ("val", dataset.val), ("test", dataset.test)):
        assert per_class_counts(items) == {label: SIZES[part] for label in range(4)}
        assert all(item.impath.startswith(image_dir) and os.path.isfile(item.impath) for item in items)
    assert dataset.train_x[0].impath == os.path.join(image_dir, "train_c0/im0.jpg")


@pytest.mark.parametrize("name,dataset_dir,image_subdir,split_name", SPLIT_DATASETS)
def test_fewshot_subsets_are_cached_and_reused(root, name, dataset_dir, image_subdir, split_name, monkeypatch):
    write_published_split(root, dataset_dir, image_subdir, split_name)
    first = load(root, name, num_shots=3, seed=2)
    assert per_class_counts(first.train_x) == {label: 3 for label in range(4)}
    assert per_class_counts(first.val) == {label: 2 for label in range(4)}  # min(3, 4) capped by 2 available
    assert len(first.test) == 4 * SIZES["test"]  # test is never reduced
    cache = os.path.join(root, dataset_dir, "split_fewshot", "shot_3-seed_2.pkl")
    assert os.path.isfile(cache)

    from dassl.data.datasets import DatasetBase

    def must_not_sample(*args, **kwargs):
        raise AssertionError("the few-shot cache should have been reused")

    monkeypatch.setattr(DatasetBase, "generate_fewshot_dataset", must_not_sample)
    second = load(root, name, num_shots=3, seed=2)
    assert [i.impath for i in second.train_x] == [i.impath for i in first.train_x]
    assert [i.impath for i in second.val] == [i.impath for i in first.val]


def test_val_gets_at_most_four_shots(root):
    image_dir = os.path.join(root, "dtd", "images")
    split = {part: [] for part in ("train", "val", "test")}
    for label in range(2):
        for part, n in (("train", 10), ("val", 6), ("test", 1)):
            for i in range(n):
                relpath = f"c{label}/{part}{i}.jpg"
                write_image(os.path.join(image_dir, relpath))
                split[part].append([relpath, label, f"class{label}"])
    write_json(os.path.join(root, "dtd", "split_zhou_DescribableTextures.json"), split)

    dataset = load(root, "DescribableTextures", num_shots=8, seed=1)
    assert per_class_counts(dataset.train_x) == {0: 8, 1: 8}
    assert per_class_counts(dataset.val) == {0: 4, 1: 4}


def test_fewshot_depends_on_seed_and_is_deterministic(root):
    image_dir = os.path.join(root, "dtd", "images")
    split = {"train": [], "val": [], "test": []}
    for i in range(20):
        relpath = f"c0/{i}.jpg"
        write_image(os.path.join(image_dir, relpath))
        split["train"].append([relpath, 0, "c0"])
    split["val"] = split["train"][:4]
    split["test"] = split["train"][:2]
    write_json(os.path.join(root, "dtd", "split_zhou_DescribableTextures.json"), split)

    import random

    picks = {}
    for seed in (1, 2):
        random.seed(seed)  # train.py seeds the global generators before building the dataset
        picks[seed] = {i.impath for i in load(root, "DescribableTextures", num_shots=4, seed=seed).train_x}
    assert picks[1] != picks[2]
    os.remove(os.path.join(root, "dtd", "split_fewshot", "shot_4-seed_1.pkl"))
    random.seed(1)
    again = {i.impath for i in load(root, "DescribableTextures", num_shots=4, seed=1).train_x}
    assert again == picks[1]
