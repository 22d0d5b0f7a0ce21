"""Figures of DPL's search: alpha heat-maps, their evolution, convergence, searched configurations.

    python -m tools.plot_alpha heatmap     SEARCH_DIR [--epoch E] --out alpha.png
    python -m tools.plot_alpha evolution   SEARCH_DIR --out evolution     (evolution.png grid + evolution.gif)
    python -m tools.plot_alpha convergence SEARCH_DIR --out convergence.png   (reads search_history.json)
    python -m tools.plot_alpha compare     SOURCE... [--labels ...] --out configs.png

An alpha matrix is (blocks, N + 1): column k is the option with k prompt tokens; the heat-maps
show its row-wise softmax and mark the argmax (the searched length). The file format, the
heat-map and the convergence figure belong to ``trainers/prompt_config.py`` (numpy only; the search
writes them through it) and are re-exported here; this module adds the figures only tools draw.
"""
import argparse
import io
import json
import os
import sys

import numpy as np
from PIL import Image

from tools.compare_configs import label_of
# DPI, softmax_rows and the two search figures are re-exported: this is where users look for them.
from trainers.prompt_config import (BRANCH_TITLES, BRANCHES, DPI, SEARCH_HISTORY, atomic_write,  # noqa: F401
                                    draw_weights, load_search_alphas, new_figure, plot_alpha_heatmaps,
                                    plot_convergence, read_prompt_lengths, save_figure, softmax_rows)


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
    fig = new_figure(figsize=(1.2 + 1.7 * len(epochs), 1.5 + 0.45 * blocks), layout="constrained")
    axes = fig.subplots(2, len(epochs), squeeze=False)
    for col, epoch in enumerate(epochs):
        for row, (branch, alpha) in enumerate(zip(BRANCHES, alphas_by_epoch[epoch])):
            image = draw_weights(axes[row, col], softmax_rows(alpha), f"{branch}, epoch {epoch}", annotate=False)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="softmax weight")
    return save_figure(fig, path)


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
    atomic_write(path, lambda f: frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:],
                                                duration=duration_ms, loop=0))
    return path


def plot_searched_configs(configs, path, title=None):
    """configs: [(label, {"image": [k per block], "text": [...]}), ...] -> prompt length per block and
    branch, one row per configuration (the paper's figure 4 view)."""
    if not configs:
        raise ValueError("plot_searched_configs needs at least one configuration.")
    fig = new_figure(figsize=(12, 1.4 + 0.45 * len(configs)), layout="constrained")
    axes = fig.subplots(1, 2)
    vmax = max(1, max(max(lengths[b], default=0) for _, lengths in configs for b in BRANCHES))
    for ax, branch in zip(axes, BRANCHES):
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
    return save_figure(fig, path)


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
            history_path = os.path.join(history_path, SEARCH_HISTORY)
        if not os.path.isfile(history_path):
            parser.error(f"{history_path} not found: the search writes it when it finishes.")
        with open(history_path) as f:
            written = [plot_convergence(json.load(f), args.out)]
    else:
        if args.labels and len(args.labels) != len(args.sources):
            parser.error(f"--labels has {len(args.labels)} entries for {len(args.sources)} sources.")
        labels = args.labels or [label_of(s) for s in args.sources]
        configs = [(label, read_prompt_lengths(s)) for label, s in zip(labels, args.sources)]
        written = [plot_searched_configs(configs, args.out)]
    for path in written:
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
