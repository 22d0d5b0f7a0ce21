"""Fixtures for trainer tests: tiny CLIP files, a Toy data root, and cfg/trainer builders.

    def test_something(make_trainer):
        trainer = make_trainer("CoOp", "TRAINER.COOP.CSC", "True")
        trainer.train()

``make_cfg`` goes through train.py's own parser and ``setup_cfg`` (dataset YAML, trainer
YAML, command-line options, KEY VALUE overrides), so a test sees the config a user's run
would see. Everything runs on CPU with a random-weight CLIP (``clip/tiny.py``) and the
generated Toy dataset; nothing is downloaded.
"""
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_YAML = os.path.join(REPO_ROOT, "configs", "datasets", "toy.yaml")

# Small and fast: 32x32 images (the tiny ViT's resolution), no worker processes, no GPU,
# CLIP's normalisation without random augmentation (so evaluations are repeatable).
FAST_OPTS = (
    "INPUT.SIZE", "(32, 32)",
    "INPUT.TRANSFORMS", "['normalize']",
    "INPUT.PIXEL_MEAN", "[0.48145466, 0.4578275, 0.40821073]",
    "INPUT.PIXEL_STD", "[0.26862954, 0.26130258, 0.27577711]",
    "DATALOADER.NUM_WORKERS", "0",
    "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
    "DATALOADER.TEST.BATCH_SIZE", "64",
    "DATASET.NUM_SHOTS", "4",
    "OPTIM.MAX_EPOCH", "1",
    "TRAIN.PRINT_FREQ", "1000",
    "USE_CUDA", "False",
)


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory):
    """A tiny random ViT CLIP (32x32 input) saved as a plain state dict."""
    from clip.tiny import save_tiny_clip

    return save_tiny_clip(str(tmp_path_factory.mktemp("clip") / "tiny_vit.pt"), arch="ViT")


@pytest.fixture(scope="session")
def tiny_rn_clip_path(tmp_path_factory):
    """A tiny random ResNet CLIP (its input resolution is read off the model)."""
    from clip.tiny import save_tiny_clip

    return save_tiny_clip(str(tmp_path_factory.mktemp("clip") / "tiny_rn.pt"), arch="RN")


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory):
    """DATASET.ROOT for Toy; the dataset is generated there on first use, once per session.

    Keep DATASET.TOY.* at their defaults with this root (Toy refuses a root generated with
    other settings); a test that needs other settings should use its own tmp_path.
    """
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture
def make_argv(tiny_clip_path, toy_root, tmp_path):
    """train.py's command line for a fast Toy run with the tiny CLIP.

    make_argv(trainer, *opts, config_file="", dataset_config_file=TOY_YAML, clip_path=None,
              root=None, output_dir=None, seed=1, fast=True, flags=()) -> list of str

    ``opts`` are trailing KEY VALUE overrides (after FAST_OPTS when ``fast``); ``flags`` are
    extra options such as ("--eval-only", "--model-dir", d); ``clip_path`` defaults to the
    tiny ViT, ``root`` to the session's Toy root, ``output_dir`` to a fresh folder under the
    test's tmp_path.
    """
    counter = {"n": 0}

    def _make(trainer, *opts, config_file="", dataset_config_file=TOY_YAML, clip_path=None,
              root=None, output_dir=None, seed=1, fast=True, flags=()):
        if output_dir is None:
            counter["n"] += 1
            output_dir = tmp_path / f"output{counter['n']}"
        argv = [
            "--root", root or toy_root,
            "--trainer", trainer,
            "--seed", seed,
            "--dataset-config-file", dataset_config_file,
            "--output-dir", output_dir,
            *flags,
        ]
        if config_file:
            argv += ["--config-file", config_file]
        overrides = list(FAST_OPTS) if fast else []
        overrides += ["MODEL.BACKBONE.PATH", clip_path or tiny_clip_path, *opts]
        return [str(a) for a in argv + overrides]

    return _make


@pytest.fixture
def make_cfg(make_argv):
    """A frozen cfg as ``python train.py <make_argv(...)>`` would build it (same arguments)."""
    import train

    def _make(trainer, *opts, **kwargs):
        return train.setup_cfg(train.get_parser().parse_args(make_argv(trainer, *opts, **kwargs)))

    return _make


@pytest.fixture
def run_train():
    """``train.main`` in this process (logger, seeding, --eval-only: the whole CLI path).

    run_train(argv) -> the trainer; stdout is restored afterwards (main tees it into
    <output_dir>/log.txt).
    """
    from dpl_helpers import run_train as _run

    return _run


@pytest.fixture(scope="session")
def dpl_clip(tmp_path_factory):
    """A tiny ViT CLIP with 2 image and 3 text blocks (a swapped alpha file cannot go unnoticed)."""
    from clip.tiny import save_tiny_clip
    from dpl_helpers import TINY_SIZES

    return save_tiny_clip(str(tmp_path_factory.mktemp("dpl_clip") / "tiny_vit.pt"), "ViT", seed=0, **TINY_SIZES)


@pytest.fixture(scope="session")
def dpl_data_root(tmp_path_factory):
    """DATASET.ROOT of the DPL tests (Toy is generated there by the first run)."""
    return str(tmp_path_factory.mktemp("dpl_data"))


@pytest.fixture
def make_trainer(make_cfg):
    """Build a trainer through dassl's ``build_trainer`` (seeded like train.py).

    make_trainer(trainer, *opts, **make_cfg_kwargs) -> trainer; ``trainer.cfg`` is its cfg.
    """
    import trainers
    from dassl.engine import build_trainer
    from dassl.utils import set_random_seed

    trainers.register_all()  # imports every method module: each registers its trainers

    def _make(trainer, *opts, **kwargs):
        cfg = make_cfg(trainer, *opts, **kwargs)
        if cfg.SEED >= 0:
            set_random_seed(cfg.SEED)
        return build_trainer(cfg)

    return _make
