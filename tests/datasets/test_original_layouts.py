"""Readers building the split from each dataset's original files, with CoOp's class-name fixes."""

import json
import os

import pytest

from dataset_trees import class_tree, load, per_class_counts, write_image, write_json, write_text


def split_file_rows(path):
    with open(path) as f:
        return json.load(f)


def assert_50_20_30(dataset, n_per_class, n_classes):
    n_train, n_val = round(n_per_class * 0.5), round(n_per_class * 0.2)
    assert per_class_counts(dataset.train_x) == {c: n_train for c in range(n_classes)}
    assert per_class_counts(dataset.val) == {c: n_val for c in range(n_classes)}
    assert per_class_counts(dataset.test) == {c: n_per_class - n_train - n_val for c in range(n_classes)}


def test_caltech101_ignores_clutter_and_renames(root):
    image_dir = os.path.join(root, "caltech-101", "101_ObjectCategories")
    class_tree(image_dir, ["BACKGROUND_Google", "Faces_easy", "airplanes", "Faces", "Leopards", "Motorbikes", "ant"], 10)
    dataset = load(root, "Caltech101")
    # labels follow sorted folder names (upper case first), ignored folders dropped
    assert dataset.classnames == ["face", "leopard", "motorbike", "airplane", "ant"]
    assert_50_20_30(dataset, 10, 5)

    split_path = os.path.join(root, "caltech-101", "split_rebuilt_Caltech101.json")  # never the published name
    rows = split_file_rows(split_path)
    assert rows["train"][0][0].count("/") == 1 and not os.path.isabs(rows["train"][0][0])
    # the saved split is read back unchanged
    again = load(root, "Caltech101")
    assert [(i.impath, i.label) for i in again.test] == [(i.impath, i.label) for i in dataset.test]


def test_eurosat_class_names(root):
    class_tree(os.path.join(root, "eurosat", "2750"), ["AnnualCrop", "Highway", "SeaLake"], 5)
    dataset = load(root, "EuroSAT")
    assert dataset.classnames == ["Annual Crop Land", "Highway or Road", "Sea or Lake"]
    assert_50_20_30(dataset, 5, 3)


@pytest.mark.parametrize("name,dataset_dir", [("DescribableTextures", "dtd"), ("Food101", "food-101")])
def test_folder_names_are_class_names(root, name, dataset_dir):
    class_tree(os.path.join(root, dataset_dir, "images"), ["waffles", "apple_pie", "banded"], 7)
    dataset = load(root, name)
    assert dataset.classnames == ["apple_pie", "banded", "waffles"]
    assert_50_20_30(dataset, 7, 3)
    assert os.path.isfile(os.path.join(root, dataset_dir, f"split_rebuilt_{name}.json"))
    assert not os.path.exists(os.path.join(root, dataset_dir, f"split_zhou_{name}.json"))


def test_oxford_pets_from_annotations(root):
    base = os.path.join(root, "oxford_pets")
    trainval, test = [], []
    for class_id, breed in ((1, "Abyssinian"), (2, "american_bulldog")):
        for i in range(10):
            write_image(os.path.join(base, "images", f"{breed}_{i}.jpg"))
            line = f"{breed}_{i} {class_id} 1 1"
            (trainval if i < 5 else test).append(line)
    write_text(os.path.join(base, "annotations", "trainval.txt"), trainval)
    write_text(os.path.join(base, "annotations", "test.txt"), test)

    dataset = load(root, "OxfordPets")
    assert dataset.classnames == ["abyssinian", "american_bulldog"]
    assert per_class_counts(dataset.train_x) == {0: 4, 1: 4}  # 20% of 5 trainval images to val
    assert per_class_counts(dataset.val) == {0: 1, 1: 1}
    assert per_class_counts(dataset.test) == {0: 5, 1: 5}


def test_stanford_cars_from_mat_files_puts_year_first(root):
    scipy_io = pytest.importorskip("scipy.io")
    import numpy as np

    base = os.path.join(root, "stanford_cars")
    names = ["AM General Hummer SUV 2000", "Tesla Model S Sedan 2012"]
    record = np.dtype([("fname", object), ("class", object)])

    def annotations(folder, n):
        rows = np.empty((1, 2 * n), dtype=record)
        for k in range(2 * n):
            fname = f"{k:05d}.jpg"
            write_image(os.path.join(base, folder, fname))
            rows[0, k] = (np.array([fname]), np.array([[k % 2 + 1]], dtype=np.uint8))
        return {"annotations": rows}

    os.makedirs(os.path.join(base, "devkit"))
    scipy_io.savemat(os.path.join(base, "devkit", "cars_train_annos.mat"), annotations("cars_train", 5))
    scipy_io.savemat(os.path.join(base, "cars_test_annos_withlabels.mat"), annotations("cars_test", 3))
    class_names = np.empty((1, 2), dtype=object)
    class_names[0, 0], class_names[0, 1] = np.array([names[0]]), np.array([names[1]])
    scipy_io.savemat(os.path.join(base, "devkit", "cars_meta.mat"), {"class_names": class_names})

    dataset = load(root, "StanfordCars")
    assert dataset.classnames == ["2000 AM General Hummer SUV", "2012 Tesla Model S Sedan"]
    assert per_class_counts(dataset.train_x) == {0: 4, 1: 4}
    assert per_class_counts(dataset.test) == {0: 3, 1: 3}
    rows = split_file_rows(os.path.join(base, "split_rebuilt_StanfordCars.json"))
    assert rows["test"][0][0].startswith("cars_test/")


def test_oxford_flowers_from_mat_and_names(root):
    scipy_io = pytest.importorskip("scipy.io")
    import numpy as np

    base = os.path.join(root, "oxford_flowers")
    labels = [1, 2] * 10  # image_00001 is class 1, image_00002 class 2, ...
    for i in range(len(labels)):
        write_image(os.path.join(base, "jpg", f"image_{i + 1:05d}.jpg"))
    scipy_io.savemat(os.path.join(base, "imagelabels.mat"), {"labels": np.array([labels])})
    write_json(os.path.join(base, "cat_to_name.json"), {"1": "pink primrose", "2": "hard-leaved pocket orchid"})

    dataset = load(root, "OxfordFlowers")
    assert dataset.classnames == ["pink primrose", "hard-leaved pocket orchid"]
    assert_50_20_30(dataset, 10, 2)
    assert all(os.path.basename(i.impath) in {f"image_{k:05d}.jpg" for k in range(1, 21, 2)}
               for i in dataset.train_x if i.label == 0)


def test_sun397_from_partitions(root):
    base = os.path.join(root, "sun397")
    folders = ["a/abbey", "a/apartment_building/outdoor"]
    write_text(os.path.join(base, "ClassName.txt"), ["/" + f for f in folders])
    train_lines, test_lines = [], []
    for folder in folders:
        for i in range(10):
            relpath = f"{folder}/sun_{i}.jpg"
            write_image(os.path.join(base, "SUN397", relpath))
            (train_lines if i < 5 else test_lines).append("/" + relpath)
    write_text(os.path.join(base, "Training_01.txt"), train_lines)
    write_text(os.path.join(base, "Testing_01.txt"), test_lines)

    dataset = load(root, "SUN397")
    assert dataset.classnames == ["abbey", "outdoor apartment_building"]
    assert per_class_counts(dataset.train_x) == {0: 4, 1: 4}
    assert per_class_counts(dataset.test) == {0: 5, 1: 5}


def test_ucf101_from_lists_splits_camel_case(root):
    base = os.path.join(root, "ucf101")
    write_text(os.path.join(base, "ucfTrainTestlist", "classInd.txt"), ["1 ApplyEyeMakeup", "2 YoYo"])
    train_lines, test_lines = [], []
    for class_id, action in ((1, "ApplyEyeMakeup"), (2, "YoYo")):
        words = {"ApplyEyeMakeup": "Apply_Eye_Makeup", "YoYo": "Yo_Yo"}[action]
        for i in range(10):
            write_image(os.path.join(base, "UCF-101-midframes", words, f"v_{action}_g{i:02d}_c01.jpg"))
            if i < 5:
                train_lines.append(f"{action}/v_{action}_g{i:02d}_c01.avi {class_id}")
            else:
                test_lines.append(f"{action}/v_{action}_g{i:02d}_c01.avi")
    write_text(os.path.join(base, "ucfTrainTestlist", "trainlist01.txt"), train_lines)
    write_text(os.path.join(base, "ucfTrainTestlist", "testlist01.txt"), test_lines)

    dataset = load(root, "UCF101")
    assert dataset.classnames == ["Apply_Eye_Makeup", "Yo_Yo"]
    assert per_class_counts(dataset.train_x) == {0: 4, 1: 4}
    assert per_class_counts(dataset.test) == {0: 5, 1: 5}


def test_fgvc_aircraft_variants(root):
    base = os.path.join(root, "fgvc_aircraft")
    variants = ["707-320", "A300B4", "Cessna 172"]
    write_text(os.path.join(base, "variants.txt"), variants)
    image_id = 1000
    for split, n in (("train", 3), ("val", 2), ("test", 4)):
        lines = []
        for variant in variants:
            for _ in range(n):
                write_image(os.path.join(base, "images", f"{image_id}.jpg"))
                lines.append(f"{image_id} {variant}")
                image_id += 1
        write_text(os.path.join(base, f"images_variant_{split}.txt"), lines)

    dataset = load(root, "FGVCAircraft", num_shots=2)
    assert dataset.classnames == variants
    assert per_class_counts(dataset.train_x) == {0: 2, 1: 2, 2: 2}
    assert per_class_counts(dataset.val) == {0: 2, 1: 2, 2: 2}
    assert per_class_counts(dataset.test) == {0: 4, 1: 4, 2: 4}
    assert not os.path.exists(os.path.join(base, "split_zhou_FGVCAircraft.json"))
