"""ImageNet (preprocessed.pkl cache, val doubles as test) and its four test-only variants."""

import os
import pickle

from dataset_trees import class_tree, load, per_class_counts, write_text

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]
NAMES = ["tench", "goldfish", "great white shark", "tiger shark"]


def write_classnames(path):
    write_text(path, [f"{w} {n}" for w, n in zip(WNIDS, NAMES)])


def test_imagenet_reads_train_val_and_caches(root, monkeypatch):
    base = os.path.join(root, "imagenet")
    write_classnames(os.path.join(base, "classnames.txt"))
    class_tree(os.path.join(base, "images", "train"), reversed(WNIDS), 6)
    class_tree(os.path.join(base, "images", "val"), WNIDS, 3)

    dataset = load(root, "ImageNet", num_shots=2, seed=3)
    assert dataset.classnames == NAMES
    assert per_class_counts(dataset.train_x) == {c: 2 for c in range(4)}
    assert dataset.val is dataset.test and per_class_counts(dataset.test) == {c: 3 for c in range(4)}

    with open(os.path.join(base, "preprocessed.pkl"), "rb") as f:
        preprocessed = pickle.load(f)
    assert len(preprocessed["train"]) == 24 and len(preprocessed["test"]) == 12
    with open(os.path.join(base, "split_fewshot", "shot_2-seed_3.pkl"), "rb") as f:
        assert set(pickle.load(f)) == {"train"}  # CoOp's ImageNet cache holds train only

    # the cached lists are used even if classnames.txt is gone
    os.remove(os.path.join(base, "classnames.txt"))
    base_classes = load(root, "ImageNet", subsample="base")
    assert base_classes.classnames == NAMES[:2]


def test_variants_use_imagenet_classnames(root):
    write_classnames(os.path.join(root, "imagenet", "classnames.txt"))
    class_tree(os.path.join(root, "imagenet-sketch", "images"), WNIDS, 2)
    # A and R hold a subset of the classes (200 of 1000) and a README next to them
    class_tree(os.path.join(root, "imagenet-adversarial", "imagenet-a"), [WNIDS[1], WNIDS[3]], 2)
    write_text(os.path.join(root, "imagenet-adversarial", "imagenet-a", "README.txt"), ["about"])
    class_tree(os.path.join(root, "imagenet-rendition", "imagenet-r"), [WNIDS[0], WNIDS[2]], 3)
    class_tree(os.path.join(root, "imagenetv2", "imagenetv2-matched-frequency-format-val"), ["0", "1", "2", "3"], 2)

    sketch = load(root, "ImageNetSketch")
    assert sketch.classnames == NAMES and len(sketch.test) == 8 and sketch.val is None

    a = load(root, "ImageNetA")
    assert a.classnames == ["goldfish", "tiger shark"] and a.num_classes == 2
    assert per_class_counts(a.test) == {0: 2, 1: 2}

    r = load(root, "ImageNetR")
    assert r.classnames == ["tench", "great white shark"] and len(r.test) == 6

    v2 = load(root, "ImageNetV2")
    assert v2.classnames == NAMES
    assert all(os.path.basename(os.path.dirname(i.impath)) == str(i.label) for i in v2.test)


def test_variant_prefers_its_own_classnames_copy(root):
    write_text(os.path.join(root, "imagenet-sketch", "classnames.txt"), [f"{WNIDS[0]} a tench fish"])
    class_tree(os.path.join(root, "imagenet-sketch", "images"), WNIDS[:1], 2)
    assert load(root, "ImageNetSketch").classnames == ["a tench fish"]
