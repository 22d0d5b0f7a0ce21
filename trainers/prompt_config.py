"""DPL's search-output files: their names, their format, how they are written, read and drawn.

Every reader and writer of these files goes through this module: the search trainer
(``write_search_outputs`` every epoch, ``write_search_summary`` at the end), the subnet
(``read_prompt_config``, ``prompt_lengths_from_alphas``) and tools/plot_alpha.py and
tools/compare_configs.py. It needs numpy only (and dassl/errors.py, which imports nothing):
matplotlib is imported inside the plotting functions (Agg canvas, no pyplot) and torch never, so
the tools read a search folder without torch.

A search output folder holds, with E = epoch (0 = the initial values):

    alpha_e<E>_img.npy, alpha_e<E>_txt.npy   float32 (blocks, N + 1) alphas; column k = option with k tokens
    alpha_e<E>.png                           heat-map of both branches' softmax weights, argmax boxed
    searched_config.json                     the configuration after the latest epoch (below)
    search_history.json, convergence.png     per epoch: alpha difference and single-dominant blocks

A prompt configuration says, per branch ("image", "text"), how many prompt tokens each
transformer block gets. The search writes it; the subnet reads it, either from the two alpha
files (row-wise argmax) or from a JSON file in the form below, which may also be written by hand:

    {"format": "dpl-prompt-config/1",
     "image": {"prompt_lengths": [4, 4, 0, ...]},     # one entry per image-encoder block
     "text":  {"prompt_lengths": [2, 0, 0, ...]}}     # one entry per text-encoder block

The search adds, per branch, the softmax weights and a per-block confidence, plus the epoch and
the definitions of the confidence measures (``DEFINITIONS``). Every file is written through a
temporary file in the same folder and renamed (``atomic_write``): a kill leaves the previous one.
"""
import json
import os
import re
import tempfile

import numpy as np

from dassl.errors import ConfigError, MissingFileError  # imports nothing: no torch here

CONFIG_FORMAT = "dpl-prompt-config/1"
BRANCHES = ("image", "text")
ALPHA_SUFFIX = {"image": "img", "text": "txt"}
BRANCH_TITLES = {"image": "image encoder", "text": "text encoder"}
SEARCHED_CONFIG = "searched_config.json"
SEARCH_HISTORY = "search_history.json"
CONVERGENCE_PLOT = "convergence.png"
ALPHA_FILE = re.compile(r"^alpha_e(0|[1-9][0-9]*)_(img|txt)\.npy$")  # group 1: epoch, group 2: suffix
DPI = 100  # of the figures the search writes (tools/plot_alpha.py: --dpi, 300): sizes are given in inches
NEAR_UNIFORM_SPAN = 0.1  # weights all within this of each other: the colour scale spans their range

DEFINITIONS = {
    "prompt_lengths": "per block, argmax over the alpha row: the column index is the number of prompt tokens",
    "weights": "per block, softmax of the alpha row (float32); column k = option with k tokens",
    "confidence": "per block, largest softmax weight minus the second largest (0 = undecided, 1 = certain)",
    "dominant": "a block is single-dominant when its confidence exceeds the margin given here",
    "alpha_difference": "mean over blocks of the L1 distance between a block's softmax weights at this "
    "epoch and at the previous epoch",
}


# ---------------------------------------------------------------------------- file names
def alpha_path(output_dir, epoch, branch):
    return os.path.join(output_dir, f"alpha_e{epoch}_{ALPHA_SUFFIX[branch]}.npy")


def heatmap_path(output_dir, epoch):
    return os.path.join(output_dir, f"alpha_e{epoch}.png")


def alpha_epochs(folder):
    """Sorted epochs that have both alpha files in ``folder`` ([] when there are none)."""
    suffixes = {}
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        match = ALPHA_FILE.match(name)
        if match:
            suffixes.setdefault(int(match.group(1)), set()).add(match.group(2))
    return sorted(epoch for epoch, found in suffixes.items() if len(found) == len(BRANCHES))


# ---------------------------------------------------------------------------- measures
def softmax_rows(alpha):
    """Row-wise softmax (float32) of a (blocks, N + 1) alpha matrix: an array, list or tensor."""
    if hasattr(alpha, "detach"):  # a torch tensor, without importing torch
        alpha = alpha.detach().cpu().numpy()
    alpha = np.asarray(alpha, dtype=np.float64)
    if alpha.ndim != 2:
        raise ValueError(f"An alpha matrix is (blocks, N + 1); found shape {alpha.shape}.")
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


# ---------------------------------------------------------------------------- writing
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


def write_json(path, obj):
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2)), mode="w")


def save_alphas(output_dir, epoch, alphas):
    """alphas: {"image": (blocks, N + 1) array, "text": ...} -> alpha_e<epoch>_{img,txt}.npy."""
    paths = {}
    for branch in BRANCHES:
        path = alpha_path(output_dir, epoch, branch)
        array = np.asarray(alphas[branch], dtype=np.float32)
        atomic_write(path, lambda f, a=array: np.save(f, a))
        paths[branch] = path
    return paths


def searched_config(alphas, epoch, margin):
    """The searched configuration (the dict of ``searched_config.json``) from both alpha matrices."""
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


def search_history(output_dir, margin):
    """Per epoch: alpha difference and number of single-dominant blocks, read back from the alpha files.

    Read from disk, not kept in memory: after a resume the earlier epochs exist only there.
    """
    history, previous = [], None
    for epoch in alpha_epochs(output_dir):
        weights = {branch: softmax_rows(np.load(alpha_path(output_dir, epoch, branch))) for branch in BRANCHES}
        entry = {"epoch": epoch}
        for branch, suffix in ALPHA_SUFFIX.items():
            entry[f"alpha_difference_{suffix}"] = (
                0.0 if previous is None else alpha_difference(previous[branch], weights[branch])
            )
            entry[f"dominant_{suffix}"] = dominant_count(weights[branch], margin)
        history.append(entry)
        previous = weights
    return history


def write_search_outputs(output_dir, epoch, alphas, margin):
    """After ``epoch``: the two alpha files, searched_config.json and the heat-map; returns the config.

    alphas: {"image": (blocks, N + 1), "text": (blocks, N + 1)} arrays; margin: DOMINANCE_MARGIN.
    """
    save_alphas(output_dir, epoch, alphas)
    config = searched_config(alphas, epoch, margin)
    write_json(os.path.join(output_dir, SEARCHED_CONFIG), config)
    plot_alpha_heatmaps(alphas["image"], alphas["text"], heatmap_path(output_dir, epoch), title=f"epoch {epoch}")
    return config


def write_search_summary(output_dir, margin):
    """At the end of a search: search_history.json and convergence.png from the alpha files; returns the history."""
    history = search_history(output_dir, margin)
    write_json(os.path.join(output_dir, SEARCH_HISTORY), history)
    plot_convergence(history, os.path.join(output_dir, CONVERGENCE_PLOT))
    return history


def format_lengths(config):
    """One log line per branch, e.g. 'image: [4, 0, 2, ...] (6 prompted blocks, 12 tokens)'."""
    lines = []
    for branch in BRANCHES:
        lengths = config[branch]["prompt_lengths"]
        prompted = sum(1 for k in lengths if k > 0)
        tokens = sum(lengths)  # plurals spelt out here: dassl.utils.plural would import torch
        lines.append(f"{branch}: {lengths} ({prompted} prompted block{'' if prompted == 1 else 's'}, "
                     f"{tokens} token{'' if tokens == 1 else 's'})")
    return lines


# ---------------------------------------------------------------------------- reading
def load_alpha(path, expected_blocks=None, branch="image"):
    """An alpha file as a float32 (blocks, N + 1) array, checked against the model's depth when given."""
    if not path:
        key = f"TRAINER.TRAINERSUBNET.{ALPHA_SUFFIX[branch].upper()}_ALPHA_PATH"
        raise ConfigError(f"No {branch} alpha file given ({key}).")
    if not os.path.isfile(path):
        raise MissingFileError(
            f"{branch} alpha file not found: {path}. Expected an alpha_e<epoch>_{ALPHA_SUFFIX[branch]}.npy "
            f"written by the search stage (TrainerSupernet)."
        )
    try:
        alpha = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ConfigError(f"Cannot read {branch} alpha file {path}: {err}. Expected a numpy .npy array.") from err
    if alpha.ndim != 2 or alpha.shape[1] < 1:
        raise ConfigError(f"{branch} alpha file {path} has shape {tuple(alpha.shape)}: expected (blocks, N + 1).")
    if expected_blocks is not None and alpha.shape[0] != expected_blocks:
        raise ConfigError(
            f"{branch} alpha file {path} has shape {tuple(alpha.shape)}, but the loaded CLIP's {branch} encoder "
            f"has {expected_blocks} blocks: expected ({expected_blocks}, N + 1). Was it searched with another backbone?"
        )
    return alpha.astype(np.float32)


def load_search_alphas(folder):
    """{epoch: (alpha_img, alpha_txt)}, in epoch order, from the alpha files of a search folder."""
    epochs = alpha_epochs(folder)
    if not epochs:
        raise MissingFileError(f"No alpha_e<E>_img.npy / alpha_e<E>_txt.npy pairs in {folder}: "
                                f"is it a search (TrainerSupernet) output folder?")
    return {epoch: tuple(load_alpha(alpha_path(folder, epoch, branch), branch=branch) for branch in BRANCHES)
            for epoch in epochs}


def read_prompt_config(path, expected_blocks=None):
    """Prompt lengths {"image": [...], "text": [...]} from a JSON configuration, validated.

    expected_blocks: {"image": blocks, "text": blocks} of the loaded model, or None (no depth check).
    """
    if not os.path.isfile(path):
        raise MissingFileError(
            f"Prompt configuration not found: {path}. Expected a searched_config.json from the search stage "
            f"or a hand-written file of the same form (docs/dpl.md)."
        )
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"Cannot read prompt configuration {path}: {err}") from err
    lengths = {}
    for branch in BRANCHES:
        entry = config.get(branch) if isinstance(config, dict) else None
        values = entry.get("prompt_lengths") if isinstance(entry, dict) else None
        if not isinstance(values, list):
            raise ConfigError(f'{path}: missing "{branch}": {{"prompt_lengths": [...]}} (one integer per block).')
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 0]
        if bad:
            raise ConfigError(
                f"{path}: {branch} prompt_lengths must be non-negative integers, found {bad[:5]}."
            )
        if expected_blocks is not None and len(values) != expected_blocks[branch]:
            raise ConfigError(
                f"{path}: {branch} prompt_lengths has {len(values)} entries, but the loaded CLIP's {branch} "
                f"encoder has {expected_blocks[branch]} blocks."
            )
        lengths[branch] = values
    return lengths


def prompt_lengths_from_alphas(img_path, txt_path, expected_blocks=None):
    """Prompt lengths = row-wise argmax of the two alpha files; expected_blocks as in read_prompt_config."""
    expected_blocks = expected_blocks or {}
    paths = {"image": img_path, "text": txt_path}
    return {branch: [int(k) for k in load_alpha(paths[branch], expected_blocks.get(branch), branch).argmax(axis=1)]
            for branch in BRANCHES}


def read_prompt_lengths(source, expected_blocks=None):
    """Prompt lengths from a JSON configuration or a search folder (its searched_config.json, else the
    argmax of its last alpha files)."""
    if os.path.isdir(source):
        json_path = os.path.join(source, SEARCHED_CONFIG)
        if os.path.isfile(json_path):
            return read_prompt_config(json_path, expected_blocks)
        epochs = alpha_epochs(source)
        if not epochs:
            raise MissingFileError(f"{source} has neither {SEARCHED_CONFIG} nor alpha_e<E>_img.npy / _txt.npy "
                                    f"files: is it a search (TrainerSupernet) output folder?")
        return prompt_lengths_from_alphas(alpha_path(source, epochs[-1], "image"),
                                          alpha_path(source, epochs[-1], "text"), expected_blocks)
    return read_prompt_config(source, expected_blocks)


# ---------------------------------------------------------------------------- figures
def new_figure(**kwargs):
    """A matplotlib figure on the Agg canvas, without pyplot: no global state, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi=DPI):
    """Save at ``dpi`` to a file name (format by its extension: .png, .pdf, .svg, ...; atomically, its
    folder created) or a binary file object (PNG); returns path."""
    if isinstance(path, (str, os.PathLike)):
        fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
        atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi))
    else:
        fig.savefig(path, dpi=dpi)
    return path


def weight_scale(*weights):
    """(vmin, vmax, decimals) of the colour scale of softmax weights: [0, 1] and 2 decimals, or, when
    every weight lies within NEAR_UNIFORM_SPAN of the others (an early search), their own range and
    3 decimals, so that near-uniform rows still show which option leads."""
    low = min(float(np.min(w)) for w in weights)
    high = max(float(np.max(w)) for w in weights)
    if high - low >= NEAR_UNIFORM_SPAN:
        return 0.0, 1.0, 2
    pad = max(high - low, 1e-3) * 0.05  # a flat matrix still gets a valid (non-empty) scale
    return low - pad, high + pad, 3


def draw_weights(ax, weights, title, annotate, scale=(0.0, 1.0, 2)):
    """One branch on ``ax``: blocks down (block 0 = the input end), options across, softmax weight as
    colour on ``scale`` = (vmin, vmax, decimals), argmax boxed."""
    from matplotlib.patches import Rectangle

    vmin, vmax, decimals = scale
    blocks, options = weights.shape
    image = ax.imshow(weights, vmin=vmin, vmax=vmax, cmap="viridis", aspect="auto")
    inset = 0.06  # the box inside its cell, and not clipped: a box on the border stays whole
    for block, k in enumerate(weights.argmax(axis=1)):
        ax.add_patch(Rectangle((k - 0.5 + inset, block - 0.5 + inset), 1 - 2 * inset, 1 - 2 * inset, fill=False,
                               edgecolor="red", linewidth=1.5, clip_on=False))
        if annotate:
            for option in range(options):
                w = weights[block, option]
                bright = (w - vmin) / (vmax - vmin) > 0.6  # viridis is light at the top of its scale
                ax.text(option, block, f"{w:.{decimals}f}", ha="center", va="center",
                        fontsize=7 if decimals == 2 else 6, color="black" if bright else "white")
    ax.set_xticks(range(options))
    ax.set_yticks(range(blocks))
    labels = [str(b) for b in range(blocks)]
    labels[0] = "0 (input)"
    ax.set_yticklabels(labels)
    ax.tick_params(labelsize=7)
    ax.set_xlabel("prompt tokens k")
    ax.set_ylabel("block")
    ax.set_title(title, fontsize=9)
    return image


def scale_label(scale):
    return "softmax weight" if scale[:2] == (0.0, 1.0) else "softmax weight (near uniform: scale stretched)"


def plot_alpha_heatmaps(alpha_img, alpha_txt, path, title=None, dpi=DPI):
    """Softmax weights of both branches side by side, argmax boxed -> PNG (or any matplotlib format) at path."""
    weights = {"image": softmax_rows(alpha_img), "text": softmax_rows(alpha_txt)}
    scale = weight_scale(*weights.values())
    rows = max(w.shape[0] for w in weights.values())
    cols = sum(w.shape[1] for w in weights.values())
    width, height = 3.3 + 0.55 * cols, 1.6 + 0.3 * rows
    gap = 0.9  # inches between the panels: room for the text panel's block labels ("0 (input)")
    # Fixed margins (inches) instead of constrained layout: the search calls this every epoch and
    # constrained layout draws the figure twice; GIF frames also need identical sizes.
    fig = new_figure(figsize=(width, height))
    grid = fig.add_gridspec(1, 3, width_ratios=[weights["image"].shape[1], weights["text"].shape[1], 0.25],
                            left=0.95 / width, right=1 - 0.75 / width, bottom=0.55 / height,
                            top=1 - (0.6 if title else 0.35) / height,
                            wspace=3 * gap / (0.55 * cols + 1.6 - 2 * gap))  # gap / mean axes width
    for column, (branch, w) in enumerate(weights.items()):
        image = draw_weights(fig.add_subplot(grid[column]), w, f"{BRANCH_TITLES[branch]} (argmax boxed)",
                             annotate=w.size <= 400, scale=scale)
    fig.colorbar(image, cax=fig.add_subplot(grid[2]), label=scale_label(scale))
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi)


def plot_convergence(history, path, title=None, dpi=DPI):
    """history: [{"epoch", "alpha_difference_img", "alpha_difference_txt", "dominant_img", "dominant_txt"}, ...]."""
    from matplotlib.ticker import MaxNLocator

    if not history:
        raise ValueError("plot_convergence needs at least one epoch of history, found none.")
    epochs = [h["epoch"] for h in history]

    def series(key):
        return [np.nan if h.get(key) is None else h[key] for h in history]

    fig = new_figure(figsize=(9, 3.5), layout="constrained")
    ax_diff, ax_dom = fig.subplots(1, 2)
    for branch, suffix in ALPHA_SUFFIX.items():
        ax_diff.plot(epochs, series(f"alpha_difference_{suffix}"), marker="o", markersize=3, label=branch)
        ax_dom.plot(epochs, series(f"dominant_{suffix}"), marker="o", markersize=3, label=branch)
    ax_diff.set(xlabel="epoch", ylabel="alpha difference", title="change of the softmax weights")
    ax_dom.set(xlabel="epoch", ylabel="blocks", title="single-dominant blocks")
    ax_dom.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_dom.set_ylim(bottom=-0.5, top=max(1, np.nanmax(series("dominant_img") + series("dominant_txt"))) + 0.5)
    for ax in (ax_diff, ax_dom):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi)
