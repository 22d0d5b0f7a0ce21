"""Linear-probe CLIP: a logistic regression on frozen CLIP image features (CoOp's ``lpclip/``).

    python -m tools.linear_probe --root DATA \
        --dataset-config-file configs/datasets/oxford_pets.yaml \
        --config-file configs/trainers/LinearProbe/vit_b16.yaml \
        --output-dir output/fewshot/oxford_pets/shots_16/LinearProbe/vit_b16/seed1 --seed 1 \
        DATASET.NUM_SHOTS 16

The data options are train.py's (the same few-shot train and val subsets a prompt learner of the
same seed sees: K images per class, val min(K, 4)); trailing ``KEY VALUE`` pairs override any
config key, the linear probe's own under ``LINEAR_PROBE`` (``OPTIONS`` below).

Protocol (the release's ``lpclip/linear_probe.py``, in our words):

1. features: ``clip_model.visual(image)`` (the projected image embedding, not L2-normalised) of
   every image of the train, val and test splits, with the test-time transform for all three;
2. coarse sweep: an L2-regularised multinomial logistic regression (L-BFGS, 1000 iterations) is
   fitted on train for each C of ``LINEAR_PROBE.C_GRID`` (1e6, 1e4, ..., 1e-6) and scored on val;
   the first best C (grid order) is the peak;
3. refinement, ``LINEAR_PROBE.SEARCH_STEPS`` (8) steps of a bisection in log10(C) that starts
   from [peak / 10, peak * 10]: both ends are fitted and scored; the better end is kept (a tie
   keeps the left, smaller C) and the interval shrinks to the half between the kept end and the
   midpoint. The chosen C is the end kept at the last step;
4. test: the classifier fitted on train at the chosen C (val is used to choose C only).

The log ends like every trainer's (``* accuracy: X%`` after ``Evaluate on the *test* set``, then
``Elapsed:``), so ``tools/parse_results.py`` reads the runs as they are. ``linear_probe.json``
beside ``log.txt`` holds the chosen C, every C scored and the accuracies.

Features are cached, one file per (dataset, split, the exact list of sampled images and labels --
which encodes shots, seed and class subsampling --, CLIP weights, test transform, precision), in
``LINEAR_PROBE.CACHE_DIR`` (default ``<DATASET.ROOT>/clip_features``), written atomically. A run
whose three files are cached does not load CLIP at all.
"""
import argparse
import datetime
import hashlib
import json
import os
import os.path as osp
import sys
import time

import numpy as np
import torch

OPTIONS = {
    "LINEAR_PROBE": {
        "PREC": ("fp32", "precision of the image encoder while extracting features: fp32 or bf16 (autocast; "
                         "features are stored in float32)"),
        "CACHE_DIR": ("", "folder of the cached image features; empty: <DATASET.ROOT>/clip_features"),
        "C_GRID": ([1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6],
                   "coarse sweep of C, the inverse L2 strength (the release's list; a tie keeps the first)"),
        "SEARCH_STEPS": (8, "bisection steps in log10(C) around the best coarse C (the release's num_step)"),
        "MAX_ITER": (1000, "L-BFGS iterations of each logistic-regression fit"),
    },
}
PRECISIONS = ("fp32", "bf16")
SPLITS = ("train", "val", "test")
CACHE_VERSION = 1  # bump when the meaning of a cached file changes


# ---------------------------------------------------------------------------- config
def setup_cfg(args):
    """train.py's config (engine + project keys, dataset YAML, YAML, overrides) plus LINEAR_PROBE."""
    import train
    from dassl.config import get_cfg_default
    from dassl.utils import ConfigError
    from trainers import options

    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    options.add_options(cfg, OPTIONS)
    if args.dataset_config_file:
        train.merge_file(cfg, args.dataset_config_file)
    if args.config_file:
        train.merge_file(cfg, args.config_file)
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.seed >= 0:
        cfg.SEED = args.seed
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    cfg.TRAINER.NAME = "LinearProbe"
    train.check_override_keys(cfg, args.opts)
    try:
        cfg.merge_from_list(args.opts)
    except ValueError as e:
        raise ConfigError("In the command-line overrides: {}".format(e)) from e
    check_cfg(cfg)
    cfg.freeze()
    return cfg


def check_cfg(cfg):
    from dassl.utils import ConfigError

    lp = cfg.LINEAR_PROBE
    if lp.PREC not in PRECISIONS:
        raise ConfigError(f"LINEAR_PROBE.PREC is {lp.PREC!r}; expected one of {list(PRECISIONS)}.")
    if not lp.C_GRID or any(float(c) <= 0 for c in lp.C_GRID):
        raise ConfigError(f"LINEAR_PROBE.C_GRID is {list(lp.C_GRID)}; expected a non-empty list of positive values.")
    if int(lp.SEARCH_STEPS) < 0 or int(lp.MAX_ITER) < 1:
        raise ConfigError(f"LINEAR_PROBE.SEARCH_STEPS ({lp.SEARCH_STEPS}) must be >= 0 and LINEAR_PROBE.MAX_ITER "
                          f"({lp.MAX_ITER}) >= 1.")


# ---------------------------------------------------------------------------- feature cache
_FILE_DIGESTS = {}  # (path, size, mtime) -> sha256, so a process hashes a weights file once


def file_sha256(path):
    stat = os.stat(path)
    key = (osp.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _FILE_DIGESTS[key] = digest.hexdigest()
    return _FILE_DIGESTS[key]


def weights_identity(cfg):
    """The CLIP weights by content: the SHA256 of MODEL.BACKBONE.PATH, or the one an official name's
    download is verified against (clip/clip.py), so a renamed copy still hits the cache."""
    import clip.clip as clip_api
    from dassl.utils import ConfigError, MissingFileError

    path = cfg.MODEL.BACKBONE.PATH
    if not path and not cfg.MODEL.BACKBONE.NAME:
        raise ConfigError("No CLIP backbone configured: set MODEL.BACKBONE.NAME (e.g. ViT-B/16, or use "
                          "--config-file configs/trainers/LinearProbe/vit_b16.yaml) or MODEL.BACKBONE.PATH.")
    if path:
        if not osp.isfile(path):
            raise MissingFileError(f"CLIP weights file {path} not found; check MODEL.BACKBONE.PATH.")
        return "sha256:" + file_sha256(path)
    name = cfg.MODEL.BACKBONE.NAME
    url = clip_api._MODELS.get(name)
    sha = clip_api._expected_sha256(url) if url else None
    return f"sha256:{sha}" if sha else f"name:{name}"


def items_digest(items):
    """SHA256 of the ordered (image path, label) list: the few-shot sampling's outcome."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{osp.abspath(item.impath)}\t{item.label}\n".encode())
    return digest.hexdigest()


def cache_identity(cfg, split, items, transform):
    """What a cached file must match. Shots, seed and class subsampling enter through ``items`` (the
    sampled list itself), so the unsampled test split is shared by every shot count and seed."""
    return {
        "version": CACHE_VERSION,
        "dataset": cfg.DATASET.NAME,
        "split": split,
        "items": items_digest(items),
        "num_items": len(items),
        "weights": weights_identity(cfg),
        "preprocessing": repr(transform),
        "prec": cfg.LINEAR_PROBE.PREC,
    }


def cache_dir(cfg):
    if cfg.LINEAR_PROBE.CACHE_DIR:
        return osp.abspath(osp.expanduser(cfg.LINEAR_PROBE.CACHE_DIR))
    return osp.join(osp.abspath(osp.expanduser(cfg.DATASET.ROOT)), "clip_features")


def cache_path(cfg, identity):
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return osp.join(cache_dir(cfg), cfg.DATASET.NAME.replace(",", "+"), f"{identity['split']}-{key}.npz")


def read_cached(path, identity, labels):
    """(features, labels) of a cached file whose stored identity and labels match, else None."""
    if not osp.isfile(path):
        return None
    try:
        with np.load(path) as data:
            stored = json.loads(str(data["identity"]))
            features, cached_labels = data["features"], data["labels"]
    except (OSError, ValueError, KeyError):  # unreadable: extract again (and overwrite)
        return None
    if stored != identity or not np.array_equal(cached_labels, labels):
        return None
    return features, cached_labels


def write_cached(path, identity, features, labels):
    from dassl.utils.torchtools import _atomic_write

    os.makedirs(osp.dirname(path), exist_ok=True)

    def write(tmp):
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, features=features, labels=labels, identity=np.array(json.dumps(identity, sort_keys=True)))

    _atomic_write(path, write)


@torch.no_grad()
def extract_features(clip_model, loader, device, prec, desc=""):
    """(features (n, embed_dim) float32, labels (n,) int64) of every batch, in loader order."""
    from tqdm import tqdm

    from trainers.common import autocast

    features, labels = [], []
    for batch in tqdm(loader, desc=desc, unit="batch", file=sys.stderr, dynamic_ncols=True):
        images = batch["img"].to(device)
        with autocast(prec, device):
            output = clip_model.visual(images.type(clip_model.dtype))
        features.append(output.float().cpu())
        labels.append(batch["label"])
    return torch.cat(features).numpy(), torch.cat(labels).numpy().astype(np.int64)


class FeatureSource:
    """Features of each split, from the cache or extracted (CLIP is loaded on the first miss only)."""

    def __init__(self, cfg, device):
        from dassl.data.transforms import build_transform

        self.cfg, self.device = cfg, device
        self.transform = build_transform(cfg, is_train=False)  # the release: test transform for all splits
        self.clip_model = None

    def model(self):
        if self.clip_model is None:
            from trainers.common import prepare_clip

            self.clip_model, _ = prepare_clip(self.cfg, self.cfg.LINEAR_PROBE.PREC, self.device)
            self.clip_model.to(self.device)
        return self.clip_model

    def features(self, split, items):
        from dassl.data.data_manager import build_data_loader

        labels = np.asarray([item.label for item in items], dtype=np.int64)
        identity = cache_identity(self.cfg, split, items, self.transform)
        path = cache_path(self.cfg, identity)
        cached = read_cached(path, identity, labels)
        if cached is not None:
            print(f"{split}: {len(items):,} cached image features from {path}")
            return cached
        loader = build_data_loader(self.cfg, sampler_type="SequentialSampler", data_source=items,
                                   batch_size=self.cfg.DATALOADER.TEST.BATCH_SIZE, tfm=self.transform, is_train=False)
        features, loaded_labels = extract_features(self.model(), loader, self.device, self.cfg.LINEAR_PROBE.PREC,
                                                   desc=f"{split} features")
        write_cached(path, identity, features, loaded_labels)
        print(f"{split}: extracted {len(items):,} image features ({self.cfg.LINEAR_PROBE.PREC}), cached in {path}")
        return features, loaded_labels


# ---------------------------------------------------------------------------- regularisation search
def fit_logistic(features, labels, c, max_iter=1000):
    """Multinomial logistic regression, L2 penalty of strength 1/C, L-BFGS (sklearn's defaults)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the release's budget; a cap, not an error
        return LogisticRegression(C=float(c), solver="lbfgs", max_iter=int(max_iter)).fit(features, labels)


def search_regularisation(score, grid, steps):
    """The release's choice of C -> (chosen C, [(stage, C, score), ...] in evaluation order).

    ``score(C)`` is the val accuracy of the classifier fitted at C. Coarse sweep over ``grid`` (the
    first best wins), then ``steps`` rounds of bisection in log10(C) starting from
    [peak / 10, peak * 10]: the better end is kept (tie: the left one) and the next interval is
    [kept end, midpoint] (or [midpoint, kept end]). With 0 steps the peak itself is chosen.
    """
    history = []

    def scored(stage, c):
        value = score(c)
        history.append((stage, float(c), float(value)))
        return value

    coarse = [scored("sweep", c) for c in grid]
    peak = float(grid[int(np.argmax(coarse))])
    chosen = peak
    log_left, log_right = np.log10(peak) - 1.0, np.log10(peak) + 1.0
    for step in range(steps):
        left, right = 10.0 ** log_left, 10.0 ** log_right
        score_left, score_right = scored(f"step {step + 1}", left), scored(f"step {step + 1}", right)
        middle = 0.5 * (log_left + log_right)
        if score_left < score_right:
            chosen, log_left = right, middle
        else:
            chosen, log_right = left, middle
    return chosen, history


class Probe:
    """Fits on train, scores on val; one fit per distinct C (L-BFGS from zero is deterministic)."""

    def __init__(self, train, val, max_iter):
        self.train, self.val, self.max_iter = train, val, max_iter
        self.fits, self.val_scores = {}, {}

    def classifier(self, c):
        if c not in self.fits:
            self.fits[c] = fit_logistic(*self.train, c, self.max_iter)
        return self.fits[c]

    def val_accuracy(self, c):
        if c not in self.val_scores:
            features, labels = self.val
            self.val_scores[c] = 100.0 * float(np.mean(self.classifier(c).predict(features) == labels))
            print(f"C = {c:.6g}: val accuracy {self.val_scores[c]:.2f}%")
        return self.val_scores[c]


def class_scores(classifier, features, num_classes):
    """(n, num_classes) log-probabilities; classes absent from train get -inf."""
    scores = np.full((len(features), num_classes), -np.inf, dtype=np.float64)
    scores[:, classifier.classes_] = classifier.predict_log_proba(features)
    return scores


# ---------------------------------------------------------------------------- program
def main(args):
    from dassl.data.datasets import build_dataset
    from dassl.evaluation import build_evaluator
    from dassl.utils import ConfigError, collect_env_info, set_random_seed, setup_logger
    from dassl.utils.torchtools import _write_text

    import datasets  # registers every dataset

    import train
    from dassl.engine import run_record

    start = time.time()
    cfg = setup_cfg(args)
    if cfg.OUTPUT_DIR:  # the run records of train.py: the same settings skip, other settings are refused
        settings = run_record.make_settings(cfg, train.weights_identity(cfg), {}, command=list(sys.argv))
        action, notes = run_record.decide(cfg.OUTPUT_DIR, settings, overwrite=args.overwrite)
        for note in notes:
            print(note)
        if action == "skip":
            print(f"{cfg.OUTPUT_DIR} already finished with these settings; skipping (--overwrite runs it again)")
            return (run_record.read_completion(cfg.OUTPUT_DIR) or {}).get("result")
    if cfg.SEED >= 0:
        print("Setting fixed seed: {}".format(cfg.SEED))
        set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)
    if cfg.OUTPUT_DIR:
        run_record.write_settings(cfg.OUTPUT_DIR, settings)
    print("** Arguments **\n" + "\n".join(f"{k}: {v}" for k, v in sorted(vars(args).items())))
    print("** Config **\n{}".format(cfg))
    print("** System info **\n{}\n".format(collect_env_info()))

    datasets.check_registered(cfg.DATASET.NAME)
    dataset = build_dataset(cfg)
    if not dataset.val:
        raise ConfigError(f"{cfg.DATASET.NAME} has no val split: the linear probe chooses C on it.")
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.USE_CUDA else "cpu")
    source = FeatureSource(cfg, device)
    train_set = source.features("train", dataset.train_x)
    val_set = source.features("val", dataset.val)
    test_set = source.features("test", dataset.test)
    print(f"Features: train {train_set[0].shape}, val {val_set[0].shape}, test {test_set[0].shape}")

    lp = cfg.LINEAR_PROBE
    probe = Probe(train_set, val_set, lp.MAX_ITER)
    print(f"Choosing C on val: sweep {list(lp.C_GRID)}, then {lp.SEARCH_STEPS} bisection steps in log10(C)")
    chosen, history = search_regularisation(probe.val_accuracy, [float(c) for c in lp.C_GRID], int(lp.SEARCH_STEPS))
    print(f"Chosen C = {chosen:.6g} (val accuracy {probe.val_accuracy(chosen):.2f}%)")

    classifier = probe.classifier(chosen)
    print("Evaluate on the *test* set")
    evaluator = build_evaluator(cfg, lab2cname=dataset.lab2cname, dataset=dataset)
    evaluator.process(torch.from_numpy(class_scores(classifier, test_set[0], dataset.num_classes)),
                      torch.from_numpy(test_set[1]))
    results = evaluator.evaluate()
    summary = {
        "dataset": cfg.DATASET.NAME, "num_shots": cfg.DATASET.NUM_SHOTS, "seed": cfg.SEED,
        "backbone": cfg.MODEL.BACKBONE.PATH or cfg.MODEL.BACKBONE.NAME, "prec": lp.PREC,
        "num_train": len(train_set[1]), "num_val": len(val_set[1]), "num_test": len(test_set[1]),
        "chosen_C": chosen, "val_accuracy": probe.val_accuracy(chosen),
        "test_accuracy": results["accuracy"], "test_macro_f1": results["macro_f1"],
        "search": [{"stage": stage, "C": c, "val_accuracy": value} for stage, c, value in history],
    }
    if cfg.OUTPUT_DIR:
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        _write_text(osp.join(cfg.OUTPUT_DIR, "linear_probe.json"), json.dumps(summary, indent=2) + "\n")
    elapsed = time.time() - start
    print("Elapsed: {}".format(datetime.timedelta(seconds=round(elapsed))))
    if cfg.OUTPUT_DIR:
        run_record.write_completion(cfg.OUTPUT_DIR, "train", result=summary, elapsed_s=round(elapsed, 1))
    return summary


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=str, default="", help="path to dataset")
    parser.add_argument("--output-dir", type=str, default="", help="output directory (log.txt, linear_probe.json)")
    parser.add_argument("--seed", type=int, default=-1, help="seed of the few-shot sampling (only >= 0 fixes it)")
    parser.add_argument("--config-file", type=str, default="",
                        help="config file (input size and transform, backbone), e.g. "
                             "configs/trainers/LinearProbe/vit_b16.yaml")
    parser.add_argument("--dataset-config-file", type=str, default="", help="path to config file for dataset setup")
    parser.add_argument("--backbone", type=str, default="", help="CLIP backbone name (MODEL.BACKBONE.NAME)")
    parser.add_argument("--overwrite", action="store_true",
                        help="run again although --output-dir holds a run (the old one is moved aside)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an input error too")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="modify config options using the command-line (KEY VALUE pairs)")
    return parser


def run(argv=None):
    """``main`` with an input error printed as one ``error:`` line and exit status 2 (as train.py)."""
    import train
    from dassl.utils import UserError, user_message

    args = get_parser().parse_args(argv)
    try:
        return main(args)
    except UserError as error:
        if train.debug_requested(args):
            raise
        sys.stdout.flush()
        print("error: {}".format(user_message(error)), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
