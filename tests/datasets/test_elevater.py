"""ELEVATER tasks (datasets/elevater.py) on generated trees in the ecosystem's layout, offline.

A tree is what ELEVATER's toolkit downloads: ``<root>/<root_folder>/`` with the index files
(``train.txt``: ``train.zip@<member> <label>``), ``labels.txt`` and the zip files of the images.
"""

import importlib.util
import json
import math
import os
import random
import sys
import zipfile

import pytest

from cli_runner import run_train
from dataset_trees import JPEG_BYTES, REPO, make_cfg, per_class_counts, register_datasets


def elevater_tree(root, name="cifar-10", classes=("airplane", "bird", "cat"), n_train=10, n_test=3,
                  labels_of=None):
    """The task ``name``'s folder with iris index files and zips; returns the task folder.

    ``labels_of(c, i)`` gives the labels of train image i of class c (default ``[c]``).
    """
    from datasets.elevater import TASKS_BY_NAME

    task = TASKS_BY_NAME[name]
    folder = os.path.join(str(root), task.root_folder)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, task.labelmap), "w") as f:
        f.write("\n".join(classes) + "\n")
    for split, n in (("train", n_train), ("test", n_test)):
        archive = f"{split}.zip"
        lines = []
        with zipfile.ZipFile(os.path.join(folder, archive), "w") as z:
            for c in range(len(classes)):
                for i in range(n):
                    member = f"{classes[c]}/{i:03d}.jpg"
                    z.writestr(member, JPEG_BYTES)
                    labels = labels_of(c, i) if (labels_of and split == "train") else [c]
                    lines.append(f"{archive}@{member} {','.join(map(str, labels))}")
        with open(os.path.join(folder, task.index[split]), "w") as f:
            f.write("\n".join(lines) + "\n")
    return folder


def build(root, name, num_shots=5, seed=1, **elevater):
    from dassl.data.datasets import build_dataset

    register_datasets()
    cfg = make_cfg(root, name, num_shots=num_shots, seed=seed)
    for key, value in elevater.items():
        setattr(cfg.DATASET.ELEVATER, key, value)
    return build_dataset(cfg)


def rel(items, folder):
    return [os.path.relpath(item.impath, folder) for item in items]


def release_fewshot(index_lines, k, seed):
    """The release's sampling of a single-label index, by hand: shuffle, first k of each class."""
    order = list(index_lines)
    random.Random(seed).shuffle(order)
    taken, counts = [], {}
    for line in order:
        label = int(line.rsplit(" ", 1)[1])
        if counts.get(label, 0) < k:
            counts[label] = counts.get(label, 0) + 1
            taken.append(line)
    return taken


@pytest.mark.parametrize("shots, n_train, n_val", [(5, 4, 1), (20, 16, 4)])
def test_fewshot_train_and_val_are_the_releases(root, shots, n_train, n_val):
    folder = elevater_tree(root, n_train=24)
    dataset = build(root, "ElevaterCifar10", num_shots=shots, seed=3)
    assert per_class_counts(dataset.train_x) == {0: n_train, 1: n_train, 2: n_train}
    assert per_class_counts(dataset.val) == {0: n_val, 1: n_val, 2: n_val}
    assert len(dataset.test) == 9 and dataset.classnames == ["airplane", "bird", "cat"]
    assert dataset.metric == "accuracy" and dataset.num_classes == 3

    with open(os.path.join(folder, "train.txt")) as f:
        lines = [line.strip() for line in f if line.strip()]
    taken = release_fewshot(lines, shots, seed=3)
    members = [line.split(" ")[0].split("@")[1] for line in taken]
    # val: the first ceil(0.2 K) sampled images of each class, in the order sampled; train: the rest
    expected_val = [m for c in ("airplane", "bird", "cat") for m in [m for m in members if m.startswith(c)][:n_val]]
    expected_train = [m for m in members if m not in expected_val]
    assert sorted(rel(dataset.val, os.path.join(folder, "train"))) == sorted(expected_val)
    assert rel(dataset.train_x, os.path.join(folder, "train")) == expected_train
    assert math.ceil(0.2 * shots) == n_val
    # the images were extracted from the zip, next to it
    assert all(os.path.isfile(item.impath) for item in dataset.train_x + dataset.val + dataset.test)
    assert dataset.test[0].impath.startswith(os.path.join(folder, "test") + os.sep)


def test_seeds_draw_different_images_and_a_seed_repeats(root):
    elevater_tree(root, n_train=12)
    first = [i.impath for i in build(root, "ElevaterCifar10", seed=1).train_x]
    assert first == [i.impath for i in build(root, "ElevaterCifar10", seed=1).train_x]
    assert first != [i.impath for i in build(root, "ElevaterCifar10", seed=2).train_x]


def test_one_shot_val_is_the_train_set_unless_disjoint_is_asked(root):
    elevater_tree(root, n_train=6)
    release = build(root, "ElevaterCifar10", num_shots=1)
    assert [i.impath for i in release.val] == [i.impath for i in release.train_x]  # D10b
    assert per_class_counts(release.train_x) == {0: 1, 1: 1, 2: 1}

    fixed = build(root, "ElevaterCifar10", num_shots=1, ONE_SHOT_VAL="disjoint")
    assert [i.impath for i in fixed.train_x] == [i.impath for i in release.train_x]
    assert per_class_counts(fixed.val) == {0: 1, 1: 1, 2: 1}
    assert not {i.impath for i in fixed.val} & {i.impath for i in fixed.train_x}


def test_all_images_with_zero_shots_hold_out_a_fifth_per_class(root):
    elevater_tree(root, n_train=10)
    dataset = build(root, "ElevaterCifar10", num_shots=0)
    assert per_class_counts(dataset.train_x) == {0: 8, 1: 8, 2: 8}
    assert per_class_counts(dataset.val) == {0: 2, 1: 2, 2: 2}


def test_multi_label_images_use_all_labels_to_sample_and_the_lowest_as_label(root):
    from datasets.elevater import hold_out_val, sample_few_shot

    # VOC-like: image i of class c also shows class (c + 1) % 3 when i is even
    folder = elevater_tree(root, "voc-2007-classification", n_train=8,
                           labels_of=lambda c, i: sorted({c, (c + 1) % 3}) if i % 2 == 0 else [c])
    dataset = build(root, "ElevaterVOC2007", num_shots=4)
    assert dataset.metric == "11point_mAP"
    for item in dataset.train_x + dataset.val:
        assert item.classname == dataset.classnames[item.label]
    # a row's label is its lowest class index
    rows = [(f"a{i}", labels) for i, labels in enumerate([[2], [0, 2], [1], [0, 1], [1, 2], [2], [0]])]
    sampled, _ = sample_few_shot(rows, 2, seed=0, num_classes=3)
    counts = {c: sum(c in labels for _, labels in sampled) for c in range(3)}
    assert all(n >= 2 for n in counts.values())
    train, val = hold_out_val(sampled, 0.2)
    assert sorted(train + val) == sorted(sampled)
    assert not {path for path, _ in val} & {path for path, _ in train}
    assert {c for _, labels in val for c in labels} == {0, 1, 2}  # every class has a val image
    assert os.path.isdir(os.path.join(folder, "train"))


def test_hold_out_takes_the_first_rows_of_each_class():
    from datasets.elevater import hold_out_val

    rows = [("a", [0]), ("b", [1]), ("c", [0]), ("d", [0]), ("e", [0]), ("f", [0]), ("g", [1])]
    train, val = hold_out_val(rows, 0.2)  # class 0: 5 rows -> 1 val; class 1: 2 rows -> 1 val
    assert val == [("a", [0]), ("b", [1])]
    assert train == [("c", [0]), ("d", [0]), ("e", [0]), ("f", [0]), ("g", [1])]


def test_coco_task_and_an_unzipped_tree(root):
    from datasets.elevater import TASKS_BY_NAME

    task = TASKS_BY_NAME["resisc45_clip"]
    folder = os.path.join(str(root), task.root_folder)
    categories = [{"id": 1, "name": "airport"}, {"id": 2, "name": "beach"}]
    for split, n in (("train", 6), ("test", 2)):
        images, annotations = [], []
        for c in range(2):
            for i in range(n):
                image_id = len(images) + 1
                member = f"{split}/{c}_{i}.jpg"
                os.makedirs(os.path.join(folder, "images", split), exist_ok=True)
                with open(os.path.join(folder, "images", member), "wb") as f:  # already unzipped: images/...
                    f.write(JPEG_BYTES)
                images.append({"id": image_id, "file_name": f"images.zip@{member}"})
                annotations.append({"id": image_id, "image_id": image_id, "category_id": c + 1})
        with open(os.path.join(folder, task.index[split]), "w") as f:
            json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    dataset = build(root, "ElevaterRESISC45", num_shots=5)
    assert dataset.classnames == ["airport", "beach"]
    assert per_class_counts(dataset.train_x) == {0: 4, 1: 4} and per_class_counts(dataset.val) == {0: 1, 1: 1}
    assert all(item.impath.startswith(os.path.join(folder, "images") + os.sep) for item in dataset.test)
    assert {i.label for i in dataset.test if "/1_" in i.impath} == {1}


def test_a_task_folder_without_its_manifest_names_the_file_and_where(root):
    from dassl.errors import MissingFileError

    folder = os.path.join(str(root), "classification", "cifar_10_20211007")
    with pytest.raises(MissingFileError, match="expected the task folder at .*cifar_10_20211007"):
        build(root, "ElevaterCifar10")
    os.makedirs(folder)
    with pytest.raises(MissingFileError) as error:
        build(root, "ElevaterCifar10")
    message = str(error.value)
    assert "train index file train.txt" in message and os.path.join(folder, "train.txt") in message
    assert "docs/DATASETS.md#elevater" in message

    elevater_tree(root)
    os.remove(os.path.join(folder, "train.zip"))
    with pytest.raises(MissingFileError, match=r"image archive train\.zip"):
        build(root, "ElevaterCifar10")


def test_every_task_has_a_yaml_the_launchers_find():
    import subprocess

    from datasets.elevater import TASKS

    assert len(TASKS) == 20 and len({t.dataset for t in TASKS}) == 20
    assert sum(bool(t.coop) for t in TASKS) == 8
    names = ",".join(task.dataset for task in TASKS)  # the launchers' resolver, all 20 joined in one call
    found = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "lib", "launch.py"), "dataset", names],
                           cwd=REPO, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    lines = found.stdout.strip().split("\n")
    assert lines[lines.index("DATASET.NAME") + 1] == names
    spec = importlib.util.spec_from_file_location("launch", os.path.join(REPO, "scripts", "lib", "launch.py"))
    launch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch)
    for task in TASKS:
        with open(launch.dataset_yaml(task.dataset)) as f:
            text = f.read()
        assert f'NAME: "{task.dataset}"' in text and f"ELEVATER metric: {task.metric}" in text


def test_train_cli_runs_coop_on_an_elevater_task(root, tmp_path, capsys):
    from clip.tiny import save_tiny_clip

    elevater_tree(root, "caltech-101", classes=("accordion", "airplane", "anchor"), n_train=6, n_test=3)
    clip_path = save_tiny_clip(str(tmp_path / "tiny.pt"), arch="ViT")
    out = tmp_path / "out"
    argv = ["--root", str(root), "--trainer", "CoOp", "--seed", "1", "--output-dir", str(out),
            "--dataset-config-file", os.path.join(REPO, "configs", "datasets", "elevater_caltech101.yaml"),
            "DATASET.NUM_SHOTS", "5", "MODEL.BACKBONE.PATH", clip_path, "INPUT.SIZE", "(32, 32)",
            "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "OPTIM.MAX_EPOCH", "1",
            "TRAINER.COOP.PREC", "fp32", "TRAINER.COOP.N_CTX", "2", "USE_CUDA", "False", "TRAIN.PRINT_FREQ", "100"]
    trainer = run_train(argv)
    assert trainer.num_classes == 3 and len(trainer.dm.dataset.train_x) == 12
    log = (out / "log.txt").read_text()
    assert "* accuracy:" in log and "* mean_per_class:" in log


def test_reader_and_sampler_agree_with_the_ecosystems_package(root):
    """vision-datasets (optional, not a dependency) reads the generated tree as we do and, on a
    single-label task, samples the same few-shot images in the same order."""
    pytest.importorskip("vision_datasets")
    from vision_datasets import DatasetInfo, Usages
    from vision_datasets.common.data_manifest.iris_data_manifest_adaptor import IrisManifestAdaptor
    from vision_datasets.common.data_manifest.operations.sample import SampleByFewShotConfig, SampleFewShot

    from datasets.elevater import TASKS_BY_NAME, read_iris, sample_few_shot

    folder = elevater_tree(root, n_train=12)
    task = TASKS_BY_NAME["cifar-10"]
    info = DatasetInfo({"name": task.name, "type": "classification_multiclass", "root_folder": task.root_folder,
                        "train": {"index_path": "train.txt"}, "test": {"index_path": "test.txt"},
                        "labelmap": task.labelmap})
    manifest = IrisManifestAdaptor.create_dataset_manifest(info, Usages.TRAIN, str(root))
    rows, classnames = read_iris(task, folder, "train")
    assert classnames == [c.name for c in manifest.categories]
    assert rows == [(image.id, [label.category_id for label in image.labels]) for image in manifest.images]
    for seed in (1, 7):
        theirs = SampleFewShot(SampleByFewShotConfig(random_seed=seed, n_shots=5)).sample(manifest)
        ours, _ = sample_few_shot(rows, 5, seed, len(classnames))
        assert [path for path, _ in ours] == [image.id for image in theirs.images]


def test_the_evaluator_reports_each_datasets_own_metric(capsys):
    import numpy as np
    import torch

    from dassl.config import get_cfg_default
    from dassl.evaluation import build_evaluator
    from dassl.evaluation.evaluator import add_dataset_metric

    class Joined:  # what the evaluator reads of a JoinedDataset
        dataset_names = ["ElevaterCaltech101", "ElevaterMNIST"]
        class_offsets = [0, 2]
        datasets = [type("A", (), {"metric": "mean_per_class"})(), type("B", (), {"metric": "accuracy"})()]

    cfg = get_cfg_default()
    evaluator = build_evaluator(cfg, lab2cname={k: str(k) for k in range(4)}, dataset=Joined())

    # dataset 0: class 0 has 3 images (all right), class 1 one (wrong) -> accuracy 75%, mean per class 50%
    labels = torch.tensor([0, 0, 0, 1, 2, 3])
    predicted = torch.tensor([0, 0, 0, 0, 2, 2])
    evaluator.process(torch.nn.functional.one_hot(predicted, 4).float(), labels)
    results = evaluator.evaluate()
    assert results["accuracy/ElevaterCaltech101"] == pytest.approx(75.0)
    assert results["mean_per_class/ElevaterCaltech101"] == pytest.approx(50.0)
    assert "mean_per_class/ElevaterMNIST" not in results
    assert "* mean_per_class on ElevaterCaltech101: 50.0%" in capsys.readouterr().out

    results, lines = {}, []
    add_dataset_metric(results, lines, "11point_mAP", np.array([0]), np.array([0]), "ElevaterVOC2007")
    assert results == {} and "11point_mAP on ElevaterVOC2007: not computed" in lines[0]


def test_any_task_of_a_dataset_info_file_reads_through_elevater(root):
    from dassl.errors import ConfigError

    elevater_tree(root, n_train=6)  # files of cifar-10, described again as a task of one's own
    info = [{"name": "my-shapes", "type": "classification_multiclass", "format": "iris",
             "root_folder": "classification/cifar_10_20211007", "labelmap": "labels.txt",
             "train": {"index_path": "train.txt", "files_for_local_usage": ["train.zip"]},
             "test": {"index_path": "test.txt", "files_for_local_usage": ["test.zip"]}}]
    with open(os.path.join(str(root), "my_info.json"), "w") as f:
        json.dump(info, f)
    dataset = build(root, "Elevater", num_shots=5, TASK="my-shapes", INFO_FILE="my_info.json")
    assert dataset.classnames == ["airplane", "bird", "cat"] and dataset.metric == "accuracy"
    assert per_class_counts(dataset.train_x) == {0: 4, 1: 4, 2: 4}
    with pytest.raises(ConfigError, match="no task named 'other'"):
        build(root, "Elevater", TASK="other", INFO_FILE="my_info.json")
    with pytest.raises(ConfigError, match="needs DATASET.ELEVATER.TASK"):
        build(root, "Elevater")
