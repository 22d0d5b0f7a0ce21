"""Figures of DPL's search: alpha heat-maps, their evolution, convergence, searched configurations.

    python -m tools.plot_alpha heatmap     SEARCH_DIR [--epoch E] --out alpha.png
    python -m tools.plot_alpha evolution   SEARCH_DIR --out evolution     (evolution.png grid + evolution.gif)
    python -m tools.plot_alpha convergence SEARCH_DIR --out convergence.png   (reads search_history.json)
    python -m tools.plot_alpha compare     SOURCE... [--labels ...] --out configs.png

An alpha matrix is (blocks, N + 1): column k is the option with k prompt tokens; the heat-maps
show its row-wise softmax and mark the argmax (the searched length). The search trainer calls
``plot_alpha_heatmaps`` every epoch and ``plot_convergence`` at the end; this module imports
nothing from trainers/.
"""
import argparse
import glob
import io
import json
import os
import re
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from PIL import Image

from tools.compare_configs import label_of, load_prompt_config

BRANCH_TITLES = {"image": "image encoder", "text": "text encoder"}
DPI = 100


def softmax_rows(alpha):
    alpha = np.asarray(alpha.detach().cpu() if hasattr(alpha, "detach") else alpha, dtype=np.float64)
    if alpha.ndim != 2:
        raise ValueError(f"An alpha matrix is (blocks, N + 1); found shape {alpha.shape}.")
    shifted = np.exp(alpha - alpha.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _draw_weights(ax, weights, title, annotate):
    """One branch: blocks down, options across, softmax weight as colour, argmax boxed."""
    blocks, options = weights.shape
    image = ax.imshow(weights, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for block, k in enumerate(weights.argmax(axis=1)):
        ax.add_patch(Rectangle((k - 0.5, block - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
        if annotate:
            for option in range(options):
                w = weights[block, option]
                ax.text(option, block, f"{w:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if w > 0.6 else "white")
    ax.set_xticks(range(options))
    ax.set_yticks(range(blocks))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("prompt tokens k")
    ax.set_ylabel("block")
    ax.set_title(title, fontsize=9)
    return image


def _figure(**kwargs):
    """A figure on the Agg canvas without pyplot: no global state, nothing to close, no display needed."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _figure_to_file(fig, path):
    """Save and close; path is a file name (its folder is created) or a binary file object."""
    if isinstance(path, (str, os.PathLike)):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def plot_alpha_heatmaps(alpha_img, alpha_txt, path, title=None):
    """Softmax weights of both branches side by side, argmax boxed -> PNG (or any matplotlib format) at path."""
    weights = {"image": softmax_rows(alpha_img), "text": softmax_rows(alpha_txt)}
    rows = max(w.shape[0] for w in weights.values())
    cols = sum(w.shape[1] for w in weights.values())
    width, height = 2.5 + 0.55 * cols, 1.6 + 0.3 * rows
    # Fixed margins (inches) instead of constrained layout: the search calls this every epoch and
    # constrained layout draws the figure twice; GIF frames also need identical sizes.
    fig = _figure(figsize=(width, height))
    grid = fig.add_gridspec(1, 3, width_ratios=[weights["image"].shape[1], weights["text"].shape[1], 0.25],
                            left=0.55 / width, right=1 - 0.75 / width, bottom=0.55 / height,
                            top=1 - (0.6 if title else 0.35) / height, wspace=0.25)
    for column, (branch, w) in enumerate(weights.items()):
        image = _draw_weights(fig.add_subplot(grid[column]), w, f"{BRANCH_TITLES[branch]} (argmax boxed)",
                              annotate=w.size <= 400)
    fig.colorbar(image, cax=fig.add_subplot(grid[2]), label="softmax weight")
    if title:
        fig.suptitle(title)
    return _figure_to_file(fig, path)


def plot_convergence(history, path):
    """history: [{"epoch", "alpha_difference_img", "alpha_difference_txt", "dominant_img", "dominant_txt"}, ...]."""
    if not history:
        raise ValueError("plot_convergence needs at least one epoch of history, found none.")
    epochs = [h["epoch"] for h in history]

    def series(key):
        return [np.nan if h.get(key) is None else h[key] for h in history]

    fig = _figure(figsize=(9, 3.5), layout="constrained")
    ax_diff, ax_dom = fig.subplots(1, 2)
    for suffix, branch in (("img", "image"), ("txt", "text")):
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
    return _figure_to_file(fig, path)


def load_search_alphas(search_dir):
    """{epoch: (alpha_img, alpha_txt)} from the alpha_e<E>_{img,txt}.npy files of a search folder."""
    alphas = {}
    for path in glob.glob(os.path.join(search_dir, "alpha_e*_img.npy")):
        match = re.search(r"alpha_e(\d+)_img\.npy$", path)
        txt_path = path[: -len("img.npy")] + "txt.npy"
        if match and os.path.isfile(txt_path):
            alphas[int(match.group(1))] = (np.load(path), np.load(txt_path))
    if not alphas:
        raise FileNotFoundError(f"No alpha_e<E>_img.npy / alpha_e<E>_txt.npy pairs in {search_dir}: "
                                f"is it a search (TrainerSupernet) output folder?")
    return dict(sorted(alphas.items()))


def _pick_epochs(epochs, max_panels):
    """At most max_panels epochs, evenly spread, always the first and the last."""
    if len(epochs) <= max_panels:
        return list(epochs)
    picks = np.linspace(0, len(epochs) - 1, max_panels).round().astype(int)
    return [epochs[i] for i in sorted(set(picks))]


def plot_alpha_evolution(alphas_by_epoch, path, max_panels=8):
    """Grid PNG: one column per (selected) epoch, the image branch on top, the text branch below."""
    epochs = _pick_epochs(list(alphas_by_epoch), max_panels)
    blocks = max(np.shape(a)[0] for pair in alphas_by_epoch.values() for a in pair)
    fig = _figure(figsize=(1.2 + 1.7 * len(epochs), 1.5 + 0.45 * blocks), layout="constrained")
    axes = fig.subplots(2, len(epochs), squeeze=False)
    for col, epoch in enumerate(epochs):
        for row, (branch, alpha) in enumerate(zip(("image", "text"), alphas_by_epoch[epoch])):
            image = _draw_weights(axes[row, col], softmax_rows(alpha), f"{branch}, epoch {epoch}", annotate=False)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="softmax weight")
    return _figure_to_file(fig, path)


def save_alpha_gif(alphas_by_epoch, path, duration_ms=600):
    """Animated GIF, one frame per epoch (the heat-maps of plot_alpha_heatmaps), looping."""
    frames = []
    for epoch, (alpha_img, alpha_txt) in alphas_by_epoch.items():
        buffer = io.BytesIO()
        plot_alpha_heatmaps(alpha_img, alpha_txt, buffer, title=f"epoch {epoch}")
        buffer.seek(0)
        frames.append(Image.open(buffer).convert("RGB"))
    if not frames:
        raise ValueError("save_alpha_gif needs at least one epoch of alphas.")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return path


def plot_searched_configs(configs, path, title=None):
    """configs: [(label, {"image": [k per block], "text": [...]}), ...] -> prompt length per block and
    branch, one row per configuration (the paper's figure 4 view)."""
    if not configs:
        raise ValueError("plot_searched_configs needs at least one configuration.")
    fig = _figure(figsize=(12, 1.4 + 0.45 * len(configs)), layout="constrained")
    axes = fig.subplots(1, 2)
    vmax = max(1, max(max(lengths[b], default=0) for _, lengths in configs for b in ("image", "text")))
    for ax, branch in zip(axes, ("image", "text")):
        blocks = max(len(lengths[branch]) for _, lengths in configs)
        grid = np.full((len(configs), blocks), np.nan)
        for row, (_, lengths) in enumerate(configs):
            grid[row, : len(lengths[branch])] = lengths[branch]
        image = ax.imshow(grid, vmin=0, vmax=vmax, cmap="Blues", aspect="auto")
        for (row, block), k in np.ndenumerate(grid):
            if not np.isnan(k):
                ax.text(block, row, str(int(k)), ha="center", va="center", fontsize=8,
                        color="white" if k > vmax / 2 else "black")
        ax.set_xticks(range(blocks))
        ax.set_yticks(range(len(configs)))
        ax.set_yticklabels([label for label, _ in configs], fontsize=8)
        ax.set_xlabel("block")
        ax.set_title(f"{BRANCH_TITLES[branch]}: prompt length per block", fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="prompt tokens")
    if title:
        fig.suptitle(title)
    return _figure_to_file(fig, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    heatmap = commands.add_parser("heatmap", help="alpha heat-maps of one epoch (default: the last)")
    heatmap.add_argument("search_dir")
    heatmap.add_argument("--epoch", type=int)
    evolution = commands.add_parser("evolution", help="grid PNG and animated GIF over epochs")
    evolution.add_argument("search_dir")
    evolution.add_argument("--max-panels", type=int, default=8)
    convergence = commands.add_parser("convergence", help="alpha difference and dominant blocks per epoch")
    convergence.add_argument("search_dir", help="a search folder with search_history.json, or that JSON file")
    compare = commands.add_parser("compare", help="searched configurations side by side (paper figure 4)")
    compare.add_argument("sources", nargs="+", help="searched_config.json files or search folders")
    compare.add_argument("--labels", nargs="+")
    for sub in (heatmap, evolution, convergence, compare):
        sub.add_argument("--out", required=True, help="output file (evolution: a prefix for .png and .gif)")
    args = parser.parse_args(argv)

    if args.command == "heatmap":
        alphas = load_search_alphas(args.search_dir)
        epoch = max(alphas) if args.epoch is None else args.epoch
        if epoch not in alphas:
            parser.error(f"No alphas for epoch {epoch} in {args.search_dir}; epochs found: {list(alphas)}.")
        written = [plot_alpha_heatmaps(*alphas[epoch], args.out, title=f"epoch {epoch}")]
    elif args.command == "evolution":
        alphas = load_search_alphas(args.search_dir)
        written = [plot_alpha_evolution(alphas, args.out + ".png", args.max_panels),
                   save_alpha_gif(alphas, args.out + ".gif")]
    elif args.command == "convergence":
        history_path = args.search_dir
        if os.path.isdir(history_path):
            history_path = os.path.join(history_path, "search_history.json")
        if not os.path.isfile(history_path):
            parser.error(f"{history_path} not found: the search writes it when it finishes.")
        with open(history_path) as f:
            written = [plot_convergence(json.load(f), args.out)]
    else:
        if args.labels and len(args.labels) != len(args.sources):
            parser.error(f"--labels has {len(args.labels)} entries for {len(args.sources)} sources.")
        labels = args.labels or [label_of(s) for s in args.sources]
        configs = [(label, load_prompt_config(s)) for label, s in zip(labels, args.sources)]
        written = [plot_searched_configs(configs, args.out)]
    for path in written:
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
