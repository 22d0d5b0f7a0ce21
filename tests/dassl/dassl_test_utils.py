"""Shared constants and command lines for the engine tests (a unique module name: never `from conftest import`)."""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_YAML = os.path.join(REPO_ROOT, "configs", "datasets", "toy.yaml")

# Tiny, fast runs: 16x16 inputs, 4 classes x 24 images (12 train / 5 val / 7 test each).
FAST_OPTS = [
    "INPUT.SIZE", "(16, 16)",
    "INPUT.TRANSFORMS", "['random_flip', 'normalize']",
    "DATALOADER.NUM_WORKERS", "0",
    "DATALOADER.TRAIN_X.BATCH_SIZE", "8",
    "OPTIM.NAME", "sgd",
    "OPTIM.LR", "0.002",
    "OPTIM.LR_SCHEDULER", "cosine",
    "OPTIM.WARMUP_EPOCH", "1",
    "OPTIM.WARMUP_TYPE", "constant",
    "USE_CUDA", "False",
]


def toy_argv(root, output_dir, *extra_opts, seed=1, trainer="EngineTestLinear", flags=()):
    """Command line for a EngineTestLinear run on Toy; ``extra_opts`` are appended KEY VALUE overrides."""
    return ["--root", root, "--output-dir", str(output_dir), "--seed", str(seed), "--trainer", trainer,
            "--dataset-config-file", TOY_YAML, *flags, *FAST_OPTS, *extra_opts]
