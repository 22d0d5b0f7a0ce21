"""Datum / DatasetBase, few-shot sampling, transforms, loaders, DataManager on Toy."""

import os
import pickle
import random
import subprocess
import sys

import pytest
import torch
from PIL import Image

from dassl_test_utils import REPO_ROOT, TOY_YAML
from dassl.config import get_cfg_default
from dassl.data import DatasetWrapper
from dassl.data.data_manager import build_data_loader
from dassl.data.datasets import DatasetBase, Datum, build_dataset
from dassl.data.transforms import build_transform


def make_items(folder, labels, classnames=None):
    """One real (tiny) image per entry of ``labels``."""
    items = []
    for i, label in enumerate(labels):
        path = os.path.join(folder, "img{}.png".format(i))
        Image.new("RGB", (8, 8), (i * 7 % 255, 0, 0)).save(path)
        name = classnames[label] if classnames else "class{}".format(label)
        items.append(Datum(impath=path, label=label, classname=name))
    return items


def test_datum_requires_an_existing_file(tmp_path):
    with pytest.warns(UserWarning), pytest.raises(AssertionError, match="missing.jpg"):
        Datum(impath=str(tmp_path / "missing.jpg"))


def test_datum_pickle_loads_in_another_process(tmp_path):
    items = make_items(str(tmp_path), [0, 1])
    items[1]._label += 5  # users mutate the private fields
    pkl = tmp_path / "items.pkl"
    pkl.write_bytes(pickle.dumps({"train": items}))
    assert b"dassl.data.datasets.base_dataset" in pkl.read_bytes()
    code = ("import pickle, sys; d = pickle.load(open(sys.argv[1], 'rb'))['train']; "
            "print(type(d[0]).__module__, [(x.label, x.domain, x.classname) for x in d], "
            "sorted(vars(d[0])))")
    out = subprocess.run([sys.executable, "-c", code, str(pkl)], cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == ("dassl.data.datasets.base_dataset [(0, 0, 'class0'), (6, 0, 'class1')] "
                           "['_classname', '_domain', '_impath', '_label']")


def test_dataset_base_labels_and_names(tmp_path):
    train = make_items(str(tmp_path), [2, 0, 2, 1], classnames=["a", "b", "c"])
    dataset = DatasetBase(train_x=train, test=train)
    assert dataset.num_classes == 3 and dataset.classnames == ["a", "b", "c"]
    assert dataset.lab2cname == {0: "a", 1: "b", 2: "c"} and dataset.val is None


def test_fewshot_gives_k_per_class_seeded_like_dassl(tmp_path):
    labels = [i % 3 for i in range(30)]  # 10 per class
    items = make_items(str(tmp_path), labels)
    dataset = DatasetBase(train_x=items)
    random.seed(5)
    fewshot = dataset.generate_fewshot_dataset(items, num_shots=4)
    assert [sum(1 for x in fewshot if x.label == c) for c in range(3)] == [4, 4, 4]
    # Same calls, same order as Dassl: one random.sample per label, labels in first-appearance order
    random.seed(5)
    expected = []
    for label in (0, 1, 2):
        expected += random.sample([x for x in items if x.label == label], 4)
    assert fewshot == expected
    random.seed(6)
    assert dataset.generate_fewshot_dataset(items, num_shots=4) != expected
    # too few items: keep all, or draw with replacement when repeat=True
    assert len(dataset.generate_fewshot_dataset(items, num_shots=12)) == 30
    assert len(dataset.generate_fewshot_dataset(items, num_shots=12, repeat=True)) == 36
    assert dataset.generate_fewshot_dataset(items, num_shots=-1) is items
    a, b = dataset.generate_fewshot_dataset(items, items, num_shots=2)
    assert len(a) == len(b) == 6


def test_fewshot_with_too_few_images_warns_naming_the_classes(tmp_path, capsys):
    items = make_items(str(tmp_path), [0] * 5 + [1] * 2 + [2] * 1, classnames=["ant", "bee", "cat"])
    dataset = DatasetBase(train_x=items)
    fewshot = dataset.generate_fewshot_dataset(items, num_shots=3, what="train set")
    assert len(fewshot) == 3 + 2 + 1  # the short classes keep all their images, as in Dassl
    log = capsys.readouterr().out
    assert "Creating a 3-shot train set" in log
    assert ("WARNING: 3 shots asked for the train set, but 2 classes have fewer: 'bee' (2 images), "
            "'cat' (1 image); they keep all of them.") in log
    dataset.generate_fewshot_dataset(items, num_shots=2)  # enough everywhere but 'cat'
    assert "1 class has fewer: 'cat' (1 image); it keeps" in capsys.readouterr().out
    dataset.generate_fewshot_dataset(items, num_shots=3, repeat=True)  # drawn with replacement: no warning
    assert "WARNING" not in capsys.readouterr().out


def transform_cfg(*choices, size=(16, 16)):
    cfg = get_cfg_default()
    cfg.INPUT.SIZE = size
    cfg.INPUT.TRANSFORMS = choices
    return cfg


def test_train_transform_order_is_fixed_by_the_engine():
    cfg = transform_cfg("normalize", "random_flip", "random_resized_crop", "colorjitter", "randomgrayscale",
                        "gaussian_blur")
    steps = [type(t).__name__ for t in build_transform(cfg, is_train=True).transforms]
    assert steps == ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale", "RandomApply",
                     "ToTensor", "Normalize"]
    out = build_transform(cfg, is_train=True)(Image.new("RGB", (40, 30)))
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    steps = [type(t).__name__ for t in build_transform(transform_cfg("random_crop"), is_train=True).transforms]
    assert steps == ["RandomCrop", "ToTensor"]


def test_test_transform_resizes_and_center_crops():
    cfg = transform_cfg("random_resized_crop", "random_flip", "normalize", "center_crop", size=(16, 12))
    tfm = build_transform(cfg, is_train=False)
    assert [type(t).__name__ for t in tfm.transforms] == ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    assert tfm(Image.new("RGB", (50, 20))).shape == (3, 16, 12)
    cfg.INPUT.NO_TRANSFORM = True
    assert build_transform(cfg) is None
    with pytest.raises(AssertionError, match="random_rotate"):
        build_transform(transform_cfg("random_rotate"))


def test_wrapper_and_loader(tmp_path):
    items = make_items(str(tmp_path), [0, 1, 0, 1, 0])
    cfg = transform_cfg("random_flip", "normalize")
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.K_TRANSFORMS = 2
    cfg.DATALOADER.RETURN_IMG0 = True
    tfm = build_transform(cfg, is_train=True)
    sample = DatasetWrapper(cfg, items, transform=tfm, is_train=True)[3]
    assert set(sample) == {"img", "img0", "label", "domain", "dataset", "impath", "index"}
    assert sample["dataset"] == 0  # a single dataset
    assert isinstance(sample["img"], list) and len(sample["img"]) == 2 and sample["index"] == 3
    both = DatasetWrapper(cfg, items, transform=[tfm, tfm], is_train=False)[0]
    assert both["img"].shape == both["img2"].shape == (3, 16, 16)

    cfg.DATALOADER.K_TRANSFORMS, cfg.DATALOADER.RETURN_IMG0 = 1, False
    loader = build_data_loader(cfg, "RandomSampler", items, batch_size=2, tfm=tfm, is_train=True)
    assert len(loader) == 2  # drop_last when there is at least one full batch
    batch = next(iter(loader))
    assert batch["img"].shape == (2, 3, 16, 16) and batch["label"].dtype == torch.int64
    assert len(build_data_loader(cfg, "SequentialSampler", items, batch_size=2, tfm=tfm, is_train=False)) == 3
    assert len(build_data_loader(cfg, "RandomSampler", items, batch_size=8, tfm=tfm, is_train=True)) == 1
    with pytest.raises(ValueError, match="Unknown sampler type"):
        build_data_loader(cfg, "Shuffled", items, batch_size=2, tfm=tfm)


def toy_cfg(root, **dataset_overrides):
    import train

    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    cfg.merge_from_file(TOY_YAML)
    cfg.DATASET.ROOT = root
    cfg.SEED = 1
    for key, value in dataset_overrides.items():
        setattr(cfg.DATASET, key, value)
    return cfg


def test_unknown_dataset_lists_registered_names():
    import datasets  # noqa: F401

    cfg = get_cfg_default()
    cfg.DATASET.NAME = "Toyy"
    with pytest.raises(ValueError, match=r"Toyy.*\[Toy\].*Registered datasets:.*'Toy'"):
        build_dataset(cfg)


def test_toy_generation_split_and_idempotence(toy_root):
    import datasets  # noqa: F401

    dataset = build_dataset(toy_cfg(toy_root))
    assert dataset.classnames == ["red circle", "green square", "blue triangle", "yellow cross"]
    assert (len(dataset.train_x), len(dataset.val), len(dataset.test)) == (48, 20, 28)
    split_path = os.path.join(toy_root, "toy", "split_zhou_Toy.json")
    rows = __import__("json").load(open(split_path))["train"]
    assert rows[0][0].count("/") == 1 and not os.path.isabs(rows[0][0])  # "<class>/<file>", relative
    mtime = os.path.getmtime(split_path)
    again = build_dataset(toy_cfg(toy_root))  # no regeneration
    assert os.path.getmtime(split_path) == mtime
    assert [d.impath for d in again.test] == [d.impath for d in dataset.test]
    assert not [f for f in os.listdir(toy_root) if f.startswith(".toy-tmp")]


def test_toy_fewshot_cache_and_base_new(toy_root):
    import datasets  # noqa: F401

    random.seed(1)
    dataset = build_dataset(toy_cfg(toy_root, NUM_SHOTS=2))
    assert len(dataset.train_x) == 8 and len(dataset.val) == 8  # val: min(K, 4) per class
    assert os.path.isfile(os.path.join(toy_root, "toy", "split_fewshot", "shot_2-seed_1.pkl"))
    random.seed(123)  # the cache, not the RNG, decides now
    cached = build_dataset(toy_cfg(toy_root, NUM_SHOTS=2))
    assert [d.impath for d in cached.train_x] == [d.impath for d in dataset.train_x]
    base = build_dataset(toy_cfg(toy_root, SUBSAMPLE_CLASSES="base"))
    new = build_dataset(toy_cfg(toy_root, SUBSAMPLE_CLASSES="new"))
    assert base.classnames == ["red circle", "green square"] and new.classnames == ["blue triangle", "yellow cross"]
    assert {d.label for d in new.test} == {0, 1}


def test_toy_without_root_says_what_was_expected():
    import datasets  # noqa: F401

    with pytest.raises(ValueError, match=r"DATASET.ROOT.*<root>/toy/"):
        build_dataset(toy_cfg(""))


def test_data_manager_summary(toy_root, capsys):
    from dassl.data import DataManager

    cfg = toy_cfg(toy_root)
    cfg.INPUT.SIZE = (16, 16)
    cfg.DATALOADER.NUM_WORKERS = 0
    dm = DataManager(cfg)
    assert dm.num_classes == 4 and dm.lab2cname[3] == "yellow cross" and dm.train_loader_u is None
    assert len(dm.train_loader_x) == 48 // 32 and len(dm.test_loader) == 1
    out = capsys.readouterr().out
    assert "Dataset    Toy\n# classes  4\n# train_x  48\n# val      20\n# test     28\n" in out
