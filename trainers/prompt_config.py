"""Searched prompt configurations: alpha files, ``searched_config.json`` and their checks.

A prompt configuration says, per branch ("image", "text"), how many prompt tokens each
transformer block gets. The search writes it; the subnet reads it, either from the two alpha
files (row-wise argmax) or from a JSON file in the form below, which may also be written by hand:

    {"format": "dpl-prompt-config/1",
     "image": {"prompt_lengths": [4, 4, 0, ...]},     # one entry per image-encoder block
     "text":  {"prompt_lengths": [2, 0, 0, ...]}}     # one entry per text-encoder block

The search adds, per branch, the softmax weights and a per-block confidence, plus the epoch and
the definitions of the confidence measures (``DEFINITIONS``).
"""
import json
import os
import tempfile

import numpy as np

CONFIG_FORMAT = "dpl-prompt-config/1"
BRANCHES = ("image", "text")
ALPHA_SUFFIX = {"image": "img", "text": "txt"}

DEFINITIONS = {
    "prompt_lengths": "per block, argmax over the alpha row: the column index is the number of prompt tokens",
    "weights": "per block, softmax of the alpha row (float32); column k = option with k tokens",
    "confidence": "per block, largest softmax weight minus the second largest (0 = undecided, 1 = certain)",
    "dominant": "a block is single-dominant when its confidence exceeds the margin given here",
    "alpha_difference": "mean over blocks of the L1 distance between a block's softmax weights at this "
    "epoch and at the previous epoch",
}


def softmax_rows(alpha):
    alpha = np.asarray(alpha, dtype=np.float64)
    shifted = np.exp(alpha - alpha.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def confidence(weights):
    """Per row: largest weight minus the second largest (the first when there is one column)."""
    ordered = np.sort(np.asarray(weights, dtype=np.float64), axis=1)[:, ::-1]
    second = ordered[:, 1] if ordered.shape[1] > 1 else np.zeros(len(ordered))
    return ordered[:, 0] - second


def dominant_count(weights, margin):
    return int((confidence(weights) > margin).sum())


def alpha_difference(previous_weights, weights):
    return float(np.abs(np.asarray(weights) - np.asarray(previous_weights)).sum(axis=1).mean())


def alpha_path(output_dir, epoch, branch):
    return os.path.join(output_dir, f"alpha_e{epoch}_{ALPHA_SUFFIX[branch]}.npy")


def atomic_write(path, write_fn, mode="wb"):
    """Write through a temporary file in the same folder, then rename: never a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_alphas(output_dir, epoch, alphas):
    """alphas: {"image": (blocks, N + 1) array, "text": ...} -> alpha_e<epoch>_{img,txt}.npy."""
    paths = {}
    for branch in BRANCHES:
        path = alpha_path(output_dir, epoch, branch)
        array = np.asarray(alphas[branch], dtype=np.float32)
        atomic_write(path, lambda f, a=array: np.save(f, a))
        paths[branch] = path
    return paths


def describe(alphas, epoch, margin):
    """The searched configuration (a dict for ``searched_config.json``) from both alpha matrices."""
    config = {"format": CONFIG_FORMAT, "epoch": int(epoch)}
    for branch in BRANCHES:
        weights = softmax_rows(alphas[branch])
        conf = confidence(weights)
        config[branch] = {
            "prompt_lengths": [int(k) for k in np.asarray(alphas[branch]).argmax(axis=1)],
            "weights": [[round(float(w), 6) for w in row] for row in weights],
            "confidence": [round(float(c), 6) for c in conf],
            "dominant_blocks": int((conf > margin).sum()),
        }
    config["definitions"] = dict(DEFINITIONS, dominant=f"{DEFINITIONS['dominant']}: {margin}")
    return config


def write_json(path, obj):
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2)), mode="w")


def format_lengths(config):
    """One log line per branch, e.g. 'image: [4, 0, 2, ...] (6 prompted blocks, 12 tokens)'."""
    lines = []
    for branch in BRANCHES:
        lengths = config[branch]["prompt_lengths"]
        prompted = sum(1 for k in lengths if k > 0)
        lines.append(f"{branch}: {lengths} ({prompted} prompted blocks, {sum(lengths)} tokens)")
    return lines


def load_alpha(path, expected_blocks, branch):
    """An alpha file as a float32 (blocks, N + 1) array, checked against the model's depth."""
    if not path:
        raise ValueError(f"No {branch} alpha file given (TRAINER.TRAINERSUBNET.{ALPHA_SUFFIX[branch].upper()}_ALPHA_PATH).")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{branch} alpha file not found: {path}. Expected an alpha_e<epoch>_{ALPHA_SUFFIX[branch]}.npy "
            f"written by the search stage (TrainerSupernet)."
        )
    try:
        alpha = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ValueError(f"Cannot read {branch} alpha file {path}: {err}. Expected a numpy .npy array.") from err
    if alpha.ndim != 2 or alpha.shape[0] != expected_blocks or alpha.shape[1] < 1:
        raise ValueError(
            f"{branch} alpha file {path} has shape {tuple(alpha.shape)}, but the loaded CLIP's {branch} encoder "
            f"has {expected_blocks} blocks: expected ({expected_blocks}, N + 1). Was it searched with another backbone?"
        )
    return alpha.astype(np.float32)


def read_prompt_config(path, expected_blocks):
    """Prompt lengths {"image": [...], "text": [...]} from a JSON configuration, validated.

    expected_blocks: {"image": blocks, "text": blocks} of the loaded model.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Prompt configuration not found: {path}. Expected a searched_config.json from the search stage "
            f"or a hand-written file of the same form (docs/dpl.md)."
        )
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"Cannot read prompt configuration {path}: {err}") from err
    lengths = {}
    for branch in BRANCHES:
        entry = config.get(branch) if isinstance(config, dict) else None
        values = entry.get("prompt_lengths") if isinstance(entry, dict) else None
        if not isinstance(values, list):
            raise ValueError(f'{path}: missing "{branch}": {{"prompt_lengths": [...]}} (one integer per block).')
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 0]
        if bad:
            raise ValueError(
                f"{path}: {branch} prompt_lengths must be non-negative integers, found {bad[:5]}."
            )
        if len(values) != expected_blocks[branch]:
            raise ValueError(
                f"{path}: {branch} prompt_lengths has {len(values)} entries, but the loaded CLIP's {branch} "
                f"encoder has {expected_blocks[branch]} blocks."
            )
        lengths[branch] = values
    return lengths


def prompt_lengths_from_alphas(img_path, txt_path, expected_blocks):
    alphas = {
        "image": load_alpha(img_path, expected_blocks["image"], "image"),
        "text": load_alpha(txt_path, expected_blocks["text"], "text"),
    }
    return {branch: [int(k) for k in alphas[branch].argmax(axis=1)] for branch in BRANCHES}
