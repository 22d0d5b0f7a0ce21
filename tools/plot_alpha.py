"""Figures of DPL's search: alpha heat-maps, their evolution, convergence, searched configurations.

    python -m tools.plot_alpha heatmap     SEARCH_DIR [--epoch E] --out alpha.png       (or .pdf, .svg)
    python -m tools.plot_alpha evolution   SEARCH_DIR --out evolution     (evolution.png grid + evolution.gif)
    python -m tools.plot_alpha convergence SEARCH_DIR --out convergence.png
    python -m tools.plot_alpha compare     SOURCE... [--labels ...] --out configs.png

An alpha matrix is (blocks, N + 1): column k is the option with k prompt tokens; the heat-maps
show its row-wise softmax and mark the argmax (the searched length). The file format, the
heat-map and the convergence figure belong to ``trainers/prompt_config.py`` (numpy only; the search
writes them through it) and are re-exported here; this module adds the figures only tools draw,
the titles (dataset, shots, seed and epoch of the search folder) and the command line.
"""
import argparse
import io
import json
import os
import re
import sys

import numpy as np
from PIL import Image

from tools.compare_configs import label_of
from tools.parse_results import SEED_DIR_RE, SHOTS_DIR_RE, logged_config_value, recorded_config_value
# DPI, softmax_rows and the two search figures are re-exported: this is where users look for them.
from trainers.prompt_config import (BRANCH_TITLES, BRANCHES, DPI, SEARCH_HISTORY, SEARCHED_CONFIG,  # noqa: F401
                                    alpha_epochs, atomic_write, draw_weights, load_search_alphas, new_figure,
                                    plot_alpha_heatmaps, plot_convergence, read_prompt_lengths, save_figure,
                                    scale_label, search_history, softmax_rows, weight_scale)

TOOL_DPI = 300  # --dpi default: print quality (the search's own figures use DPI)
GIF_DPI = 100  # --gif-dpi default: one frame per epoch, kept small
FIGURE_FORMATS = ("png", "pdf", "svg")  # chosen by the --out extension
DEFAULT_MARGIN = 0.1  # TRAINER.TRAINERSUPERNET.DOMINANCE_MARGIN's default


# ---------------------------------------------------------------------------- what a search folder is
def _read_log(folder):
    path = os.path.join(folder, "log.txt")
    if not os.path.isfile(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def _setting(folder, log_text, key):
    """A config value of the run: run_settings.json, else the config dump of its log.txt; None if neither."""
    value = recorded_config_value(folder, key)
    if value is None:
        value = logged_config_value(log_text, key)
    return None if value in (None, "") else str(value)


def search_run(folder):
    """{"dataset", "shots", "seed", "max_epoch", "margin"} of a search folder (None where unknown): its
    recorded config (run_settings.json, else log.txt), else the output layout
    <dataset>/shots_<K>/<trainer>/<config>/seed<S>."""
    folder = os.path.abspath(folder)
    log_text = _read_log(folder)
    parts = folder.split(os.sep)
    seed_match = SEED_DIR_RE.match(parts[-1])
    shots_at = [i for i, p in enumerate(parts) if SHOTS_DIR_RE.match(p)]
    run = {
        "dataset": _setting(folder, log_text, "DATASET.NAME") or (parts[shots_at[-1] - 1] if shots_at else None),
        "shots": _setting(folder, log_text, "DATASET.NUM_SHOTS")
        or (SHOTS_DIR_RE.match(parts[shots_at[-1]]).group(1) if shots_at else None),
        "seed": _setting(folder, log_text, "SEED") or (seed_match.group(1) if seed_match else None),
        "max_epoch": _setting(folder, log_text, "OPTIM.MAX_EPOCH"),
        "margin": _setting(folder, log_text, "TRAINER.TRAINERSUPERNET.DOMINANCE_MARGIN"),
    }
    if run["margin"] is None:  # searched_config.json records it in its definitions
        try:
            with open(os.path.join(folder, SEARCHED_CONFIG)) as f:
                found = re.search(r":\s*([\d.eE+-]+)\s*$", json.load(f)["definitions"]["dominant"])
            run["margin"] = found.group(1) if found else None
        except (OSError, ValueError, KeyError, TypeError):
            pass
    if not run["dataset"]:
        run["dataset"] = os.path.basename(folder)
    return run


def run_title(run, epoch=None):
    """'DescribableTextures, 16 shots, seed 1, epoch 5' (the parts that are known)."""
    parts = [run["dataset"]]
    if run.get("shots") not in (None, "", "-1"):
        parts.append(f"{run['shots']} shot" + ("" if run["shots"] == "1" else "s"))
    if run.get("seed") is not None:
        parts.append(f"seed {run['seed']}")
    if epoch is not None:
        parts.append(f"epoch {epoch}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------- figures
def _pick_epochs(epochs, max_panels):
    """At most max_panels epochs, evenly spread, always the first and the last."""
    if len(epochs) <= max_panels:
        return list(epochs)
    picks = np.linspace(0, len(epochs) - 1, max_panels).round().astype(int)
    return [epochs[i] for i in sorted(set(picks))]


def plot_alpha_evolution(alphas_by_epoch, path, max_panels=8, title=None, dpi=DPI):
    """Grid: one column per (selected) epoch, the image branch on top, the text branch below; one
    colour scale for every panel (stretched when all are near uniform, see weight_scale)."""
    epochs = _pick_epochs(list(alphas_by_epoch), max_panels)
    weights = {epoch: [softmax_rows(a) for a in alphas_by_epoch[epoch]] for epoch in epochs}
    scale = weight_scale(*[w for pair in weights.values() for w in pair])
    blocks = max(w.shape[0] for pair in weights.values() for w in pair)
    fig = new_figure(figsize=(1.6 + 1.7 * len(epochs), 1.5 + 0.45 * blocks), layout="constrained")
    axes = fig.subplots(2, len(epochs), squeeze=False)
    for col, epoch in enumerate(epochs):
        for row, (branch, w) in enumerate(zip(BRANCHES, weights[epoch])):
            image = draw_weights(axes[row, col], w, f"{branch}, epoch {epoch}", annotate=False, scale=scale)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label=scale_label(scale))
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi)


def save_alpha_gif(alphas_by_epoch, path, duration_ms=600, title=None, dpi=DPI):
    """Animated GIF, one frame per epoch (the heat-maps of plot_alpha_heatmaps), looping. ``title``:
    a function epoch -> frame title (default 'epoch E')."""
    frames = []
    for epoch, (alpha_img, alpha_txt) in alphas_by_epoch.items():
        buffer = io.BytesIO()
        plot_alpha_heatmaps(alpha_img, alpha_txt, buffer, title=title(epoch) if title else f"epoch {epoch}", dpi=dpi)
        buffer.seek(0)
        frames.append(Image.open(buffer).convert("RGB"))
    if not frames:
        raise ValueError("save_alpha_gif needs at least one epoch of alphas.")
    atomic_write(path, lambda f: frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:],
                                                duration=duration_ms, loop=0))
    return path


def plot_searched_configs(configs, path, title=None, dpi=DPI):
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
        ax.set_xticklabels(["0\n(input)"] + [str(b) for b in range(1, blocks)])
        ax.set_yticks(range(len(configs)))
        ax.set_yticklabels([label for label, _ in configs], fontsize=8)
        ax.set_xlabel("block")
        ax.set_title(f"{BRANCH_TITLES[branch]}: prompt length per block", fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="prompt tokens")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi)


def convergence_history(source, margin=None):
    """(history, title) for ``convergence``: a search_history.json file as it is; a search folder from
    its search_history.json when that covers its last alpha files, else from the per-epoch alpha files
    (an unfinished search: the title says so)."""
    if os.path.isfile(source):
        with open(source) as f:
            return json.load(f), run_title(search_run(os.path.dirname(os.path.abspath(source))))
    run = search_run(source)
    epochs = alpha_epochs(source)
    history_path = os.path.join(source, SEARCH_HISTORY)
    if os.path.isfile(history_path) and margin is None:
        with open(history_path) as f:
            history = json.load(f)
        if not epochs or (history and history[-1]["epoch"] >= epochs[-1]):
            return history, run_title(run)
    if not epochs:
        raise FileNotFoundError(f"{source} has neither {SEARCH_HISTORY} nor alpha_e<E>_img.npy / _txt.npy files: "
                                f"is it a search (TrainerSupernet) output folder?")
    margin = margin if margin is not None else float(run["margin"] or DEFAULT_MARGIN)
    of = f" of {run['max_epoch']}" if run["max_epoch"] else ""
    return search_history(source, margin), f"{run_title(run)}: epochs 0-{epochs[-1]}{of} (unfinished search)"


# ---------------------------------------------------------------------------- command line
def _figure_path(parser, path, what="--out"):
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in FIGURE_FORMATS:
        parser.error(f"{what} {path}: the extension picks the format, one of "
                     f"{', '.join('.' + f for f in FIGURE_FORMATS)} (found '{extension or 'none'}').")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    heatmap = commands.add_parser("heatmap", help="alpha heat-maps of one epoch (default: the last)")
    heatmap.add_argument("search_dir")
    heatmap.add_argument("--epoch", type=int)
    evolution = commands.add_parser("evolution", help="grid figure and animated GIF over epochs")
    evolution.add_argument("search_dir")
    evolution.add_argument("--max-panels", type=int, default=8)
    evolution.add_argument("--gif-dpi", type=int, default=GIF_DPI, help=f"resolution of the GIF frames "
                                                                         f"(default {GIF_DPI})")
    convergence = commands.add_parser("convergence", help="alpha difference and dominant blocks per epoch")
    convergence.add_argument("search_dir", help="a search folder (finished or not), or its search_history.json")
    convergence.add_argument("--margin", type=float,
                             help="dominance margin when reading the alpha files (default: the run's "
                                  "TRAINER.TRAINERSUPERNET.DOMINANCE_MARGIN, else 0.1)")
    compare = commands.add_parser("compare", help="searched configurations side by side (paper figure 4)")
    compare.add_argument("sources", nargs="+", help="searched_config.json files or search folders")
    compare.add_argument("--labels", nargs="+")
    compare.add_argument("--title")
    for sub in (heatmap, evolution, convergence, compare):
        sub.add_argument("--out", required=True,
                         help="output file, format by extension: .png, .pdf or .svg (evolution: the grid's file, "
                              "or a prefix for <prefix>.png; the GIF goes beside it)")
        sub.add_argument("--dpi", type=int, default=TOOL_DPI, help=f"resolution (default {TOOL_DPI})")
    args = parser.parse_args(argv)

    try:
        if args.command == "heatmap":
            alphas = load_search_alphas(args.search_dir)
            epoch = max(alphas) if args.epoch is None else args.epoch
            if epoch not in alphas:
                parser.error(f"No alphas for epoch {epoch} in {args.search_dir}; epochs found: {list(alphas)}.")
            title = run_title(search_run(args.search_dir), epoch)
            written = [plot_alpha_heatmaps(*alphas[epoch], _figure_path(parser, args.out), title=title, dpi=args.dpi)]
        elif args.command == "evolution":
            alphas = load_search_alphas(args.search_dir)
            stem, extension = os.path.splitext(args.out)
            grid_path = args.out if extension else stem + ".png"
            run = search_run(args.search_dir)
            written = [plot_alpha_evolution(alphas, _figure_path(parser, grid_path), args.max_panels,
                                            title=run_title(run), dpi=args.dpi),
                       save_alpha_gif(alphas, stem + ".gif", title=lambda e: run_title(run, e), dpi=args.gif_dpi)]
        elif args.command == "convergence":
            history, title = convergence_history(args.search_dir, args.margin)
            written = [plot_convergence(history, _figure_path(parser, args.out), title=title, dpi=args.dpi)]
        else:
            if args.labels and len(args.labels) != len(args.sources):
                parser.error(f"--labels has {len(args.labels)} entries for {len(args.sources)} sources.")
            labels = args.labels or [label_of(s) for s in args.sources]
            configs = [(label, read_prompt_lengths(s)) for label, s in zip(labels, args.sources)]
            written = [plot_searched_configs(configs, _figure_path(parser, args.out), args.title, dpi=args.dpi)]
    except (FileNotFoundError, ValueError) as e:  # MissingFileError / ConfigError from the readers
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in written:
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
