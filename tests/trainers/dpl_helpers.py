"""Shared helpers of the DPL trainer tests: a tiny CLIP, the Toy data root, train.py in-process."""
import os

from cli_runner import run_train  # noqa: F401  (the trainer tests import it from here)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_YAML = os.path.join(REPO_ROOT, "configs", "datasets", "toy.yaml")
SUPERNET_YAML = os.path.join(REPO_ROOT, "configs", "trainers", "TrainerSupernet", "fewshot.yaml")
SUBNET_YAML = os.path.join(REPO_ROOT, "configs", "trainers", "TrainerSubnet", "fewshot.yaml")

# Image and text towers of different depths, so a swapped alpha file cannot go unnoticed.
TINY_SIZES = dict(vision_layers=2, transformer_layers=3)

FAST_OPTS = [
    "INPUT.SIZE", "(32, 32)",
    "DATALOADER.NUM_WORKERS", "0",
    "DATALOADER.TEST.BATCH_SIZE", "32",
    "DATASET.NUM_SHOTS", "4",
    "TRAIN.PRINT_FREQ", "100",
    "USE_CUDA", "False",
]




def search_argv(root, clip_path, output_dir, *opts, epochs=2, seed=1):
    return [
        "--root", root, "--output-dir", output_dir, "--seed", seed, "--trainer", "TrainerSupernet",
        "--dataset-config-file", TOY_YAML, "--config-file", SUPERNET_YAML,
        *FAST_OPTS, "MODEL.BACKBONE.PATH", clip_path, "OPTIM.MAX_EPOCH", epochs,
        "TRAINER.TRAINERSUPERNET.N_CTX_VISION", "2", "TRAINER.TRAINERSUPERNET.N_CTX_TEXT", "2",
        "TRAINER.TRAINERSUPERNET.VAL_BATCH_SIZE", "8", *opts,
    ]


def subnet_argv(root, clip_path, output_dir, *opts, epochs=2, seed=1):
    return [
        "--root", root, "--output-dir", output_dir, "--seed", seed, "--trainer", "TrainerSubnet",
        "--dataset-config-file", TOY_YAML, "--config-file", SUBNET_YAML,
        *FAST_OPTS, "MODEL.BACKBONE.PATH", clip_path, "OPTIM.MAX_EPOCH", epochs, *opts,
    ]


# Settings under which a short run must visibly learn (the release's warm-up epoch at 1e-5 and
# its SGD rate barely move a tiny random CLIP in one epoch).
LEARNING_OPTS = ["OPTIM.NAME", "adam", "OPTIM.LR", "0.01", "OPTIM.WARMUP_EPOCH", "0"]


def test_loss(trainer):
    """Mean cross-entropy of ``trainer.model_inference`` over its test split (no augmentation)."""
    import torch
    import torch.nn.functional as F

    trainer.set_model_mode("eval")
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in trainer.test_loader:
            image, label = trainer.parse_batch_test(batch)
            total += F.cross_entropy(trainer.model_inference(image).float(), label, reduction="sum").item()
            count += len(label)
    return total / count


def learnable_state(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.prompt_learner.state_dict().items()}


def randomise(module, seed, names=None):
    """Fixed random values (N(0, 0.5^2)) for the learnable tensors of ``module`` (all, or those whose
    name contains one of ``names``): prompts far from their initial values, the same in every run."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if names is None or any(n in name for n in names):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def logits_of(trainer, images):
    """``trainer.model_inference`` in eval mode without gradient, float32."""
    import torch

    trainer.set_model_mode("eval")
    with torch.no_grad():
        return trainer.model_inference(images).float()


def normalise(x):
    return x / x.norm(dim=-1, keepdim=True)


test_loss.__test__ = False  # a helper, not a test


def image_folder_from_toy(toy_root, folder, names=("alpha", "beta"), per_class=12):
    """An ImageFolder tree (``folder/<name>/<i>.png``) of generated Toy images, one slice of them per class:
    a second dataset to join with Toy (the Toy tree must exist: run any Toy run first)."""
    from PIL import Image

    sources = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(toy_root, "toy"))
                     for f in fs if f.endswith(".png"))
    for c, name in enumerate(names):
        os.makedirs(os.path.join(folder, name))
        for i, src in enumerate(sources[c * 30: c * 30 + per_class]):
            Image.open(src).save(os.path.join(folder, name, f"{i}.png"))
