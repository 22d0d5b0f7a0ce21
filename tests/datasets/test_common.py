"""Shared helpers: base/new classes, split files, error messages, atomic caches."""

import os
import pickle

import pytest

from dataset_trees import class_tree, load, per_class_counts, write_image, write_text


def five_class_dtd(root, n=10):
    class_tree(os.path.join(root, "dtd", "images"), ["a", "b", "c", "d", "e"], n)


def test_base_and_new_classes_split_sorted_labels_and_relabel(root):
    five_class_dtd(root)
    full = load(root, "DescribableTextures")
    base = load(root, "DescribableTextures", subsample="base")
    new = load(root, "DescribableTextures", subsample="new")

    assert base.classnames == ["a", "b", "c"]  # ceil(5 / 2) base classes
    assert new.classnames == ["d", "e"]
    assert new.num_classes == 2 and {i.label for i in new.test} == {0, 1}
    for split in ("train_x", "val", "test"):
        base_items, new_items = getattr(base, split), getattr(new, split)
        assert len(base_items) + len(new_items) == len(getattr(full, split))
        assert {i.classname for i in new_items} == {"d", "e"}
    # relabelled items keep their images
    full_d = sorted(i.impath for i in full.test if i.classname == "d")
    assert sorted(i.impath for i in new.test if i.label == 0) == full_d


def test_subsampling_happens_after_fewshot_so_caches_are_shared(root):
    five_class_dtd(root)
    base = load(root, "DescribableTextures", num_shots=2, subsample="base")
    new = load(root, "DescribableTextures", num_shots=2, subsample="new")
    assert per_class_counts(base.train_x) == {0: 2, 1: 2, 2: 2}
    assert per_class_counts(new.train_x) == {0: 2, 1: 2}
    # a rebuilt split (no published file in this tree) keeps its few-shot subsets apart
    assert os.listdir(os.path.join(root, "dtd", "split_fewshot_rebuilt")) == ["shot_2-seed_1.pkl"]


def test_bad_subsample_value_is_explained(root):
    five_class_dtd(root)
    with pytest.raises(ValueError, match='"all", "base" or "new"'):
        load(root, "DescribableTextures", subsample="novel")


def test_missing_dataset_folder_names_the_path_and_the_docs(root):
    with pytest.raises(FileNotFoundError) as error:
        load(root, "OxfordPets")
    message = str(error.value)
    assert os.path.join(str(root), "oxford_pets") in message
    assert "docs/DATASETS.md#oxfordpets" in message


def test_missing_split_file_without_annotations_names_both(root):
    write_image(os.path.join(root, "oxford_pets", "images", "Abyssinian_1.jpg"))
    with pytest.raises(FileNotFoundError) as error:
        load(root, "OxfordPets")
    message = str(error.value)
    assert os.path.join(str(root), "oxford_pets", "split_zhou_OxfordPets.json") in message
    assert os.path.join(str(root), "oxford_pets", "annotations", "trainval.txt") in message


def test_missing_image_folder_is_named(root):
    os.makedirs(os.path.join(root, "eurosat"))
    with pytest.raises(FileNotFoundError, match=os.path.join("eurosat", "2750")):
        load(root, "EuroSAT")


def test_imagenet_without_classnames_points_to_it(root):
    class_tree(os.path.join(root, "imagenet", "images", "train"), ["n0"], 1)
    with pytest.raises(FileNotFoundError, match="classnames.txt"):
        load(root, "ImageNet")


def test_too_small_class_is_explained(root):
    class_tree(os.path.join(root, "food-101", "images"), ["tiny"], 2)
    with pytest.raises(ValueError, match="tiny holds 2 images"):
        load(root, "Food101")


def test_cache_write_is_atomic(tmp_path, monkeypatch):
    from datasets import common

    target = tmp_path / "split_fewshot" / "shot_1-seed_1.pkl"
    common.dump_pickle_atomically({"train": [1]}, str(target))
    with open(target, "rb") as f:
        assert pickle.load(f) == {"train": [1]}

    def broken_dump(obj, f, protocol=None):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(common.pickle, "dump", broken_dump)
    with pytest.raises(KeyboardInterrupt):
        common.dump_pickle_atomically({"train": [2]}, str(target))
    with open(target, "rb") as f:
        assert pickle.load(f) == {"train": [1]}  # old file intact
    assert os.listdir(target.parent) == ["shot_1-seed_1.pkl"]  # no temporary left behind


def test_save_split_round_trip_uses_relative_paths(tmp_path):
    from dassl.data.datasets import Datum
    from datasets.common import read_split, save_split

    image_dir = str(tmp_path / "imgs")
    items = [Datum(impath=write_image(os.path.join(image_dir, f"c{k}", "x.jpg")), label=k, classname=f"c{k}") for k in range(3)]
    split_path = str(tmp_path / "split.json")
    save_split(items[:1], items[1:2], items[2:], split_path, image_dir)
    with open(split_path) as f:
        assert '"c0/x.jpg"' in f.read()
    train, val, test = read_split(split_path, image_dir)
    assert [(i.impath, i.label, i.classname) for i in train + val + test] == [
        (i.impath, i.label, i.classname) for i in items
    ]


def test_blank_lines_in_annotation_files_are_skipped(root):
    write_text(os.path.join(root, "fgvc_aircraft", "variants.txt"), ["A", "", "B"])
    for split in ("train", "val", "test"):
        lines = []
        for k, variant in enumerate(("A", "B")):
            image_id = f"{split}{k}"
            write_image(os.path.join(root, "fgvc_aircraft", "images", image_id + ".jpg"))
            lines.append(f"{image_id} {variant}")
        write_text(os.path.join(root, "fgvc_aircraft", f"images_variant_{split}.txt"), lines + [""])
    assert load(root, "FGVCAircraft").classnames == ["A", "B"]
