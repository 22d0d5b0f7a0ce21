"""One self-contained HTML page of an output tree: results, searched configurations, curves, Grad-CAM.

    python -m tools.report output/                  # -> output/report.html
    python -m tools.report output/ --out results/report.html --title "DPL, 16 shots"

The page needs nothing at view time: CSS inline, figures embedded as PNG data URIs, no script. It shows
  * the results tables of tools/parse_results.py (mean, sample std and 95% CI over seeds; base, new
    and their harmonic mean H for base-to-new runs; the unfinished runs and why);
  * the searched configurations, one figure per dataset (prompt length per block and branch, one row
    per search run: tools/plot_alpha.py's figure 4 view), from every folder with searched_config.json
    (or alpha files);
  * convergence: training loss and accuracy per epoch of every run (the epoch averages of the last
    progress line of each epoch in its logs, resumed logs included), one figure per group; the alpha
    evolution of every search run;
  * per-class accuracy from the predictions_<split>.npz files (TEST.SAVE_PREDICTIONS True): one table
    per group and split, a column per seed and their mean;
  * every gradcam*.png under the tree (tools/gradcam.py), as it is.
The page is written atomically (temporary file, then rename).
"""
import argparse
import base64
import html
import io
import os
import re
import sys

import numpy as np

from dassl.errors import MissingFileError, UserError, user_message
from tools.parse_results import find_runs, summarize
from trainers.prompt_config import SEARCHED_CONFIG, alpha_epochs, atomic_write, new_figure, save_figure

PROGRESS_RE = re.compile(r"^epoch \[(\d+)/(\d+)\] batch \[(\d+)/(\d+)\] (.*)$", re.M)
METER_RE = re.compile(r"([A-Za-z_][\w]*) (-?[\d.]+(?:e[-+]?\d+)?|nan|inf) \((-?[\d.]+(?:e[-+]?\d+)?|nan|inf)\)")
NOT_CURVES = ("time", "data")
PREDICTIONS_RE = re.compile(r"^predictions_(\w+)\.npz$")
GRADCAM_RE = re.compile(r"^gradcam.*\.png$", re.I)

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #1b1b1b; background: #fff; line-height: 1.4; padding: 0 1em; }
h1 { border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: .8em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #eef2f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.avg td { font-weight: bold; background: #f7f7f7; }
img { max-width: 100%; border: 1px solid #ddd; margin: .4em 0; }
code { background: #f3f3f3; padding: 0 .25em; }
.note { color: #555; font-size: 13px; }
nav a { margin-right: 1em; }
"""


# ---------------------------------------------------------------------------- reading the tree
def epoch_curves(run_dir):
    """{metric: {epoch: value}} from a run's logs: the running averages of each epoch's last progress line
    (the engine's MetricMeter restarts every epoch); later (resumed) logs win."""
    from tools.parse_results import _log_files

    curves = {}
    for path in _log_files(run_dir):
        with open(path, errors="replace") as f:
            text = f.read()
        last = {}
        for match in PROGRESS_RE.finditer(text):
            last[int(match.group(1))] = match.group(5)  # the latest batch line of the epoch
        for epoch, rest in last.items():
            for name, _, average in METER_RE.findall(rest):
                if name not in NOT_CURVES:
                    curves.setdefault(name, {})[epoch] = float(average)
    return curves


def run_key(run):
    return (run.protocol, run.trainer, run.config, run.shots, run.dataset)


def key_title(key):
    protocol, trainer, config, shots, dataset = key
    parts = [protocol, dataset, f"{shots} shots" if shots else "", trainer, config]
    return " / ".join(p for p in parts if p and p != ".")


def seed_label(run):
    return f"seed {run.seed}" if run.seed is not None else os.path.basename(run.path)


def search_folders(root):
    """Folders holding a searched configuration (searched_config.json or alpha files), in path order."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        if SEARCHED_CONFIG in files or alpha_epochs(folder):
            found.append(folder)
    return found


def files_matching(root, pattern):
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        found += [os.path.join(folder, name) for name in sorted(files) if pattern.match(name)]
    return found


# ---------------------------------------------------------------------------- html pieces
def esc(value):
    return html.escape(str(value))


def num(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def table(header, rows, numeric_from=0, classes=None):
    """rows: lists of cells (already strings); columns from ``numeric_from`` are right-aligned."""
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(f'<td class="num">{esc(c)}</td>' if j >= numeric_from else f"<td>{esc(c)}</td>"
                        for j, c in enumerate(row))
        out.append(f"<tr{css}>{cells}</tr>")
    return "\n".join(out + ["</table>"])


def png_data_uri(data):
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_img(draw, alt):
    """``draw(file object)`` writes a PNG; returns an <img> with it embedded."""
    buffer = io.BytesIO()
    draw(buffer)
    return f'<img alt="{esc(alt)}" src="{png_data_uri(buffer.getvalue())}">'


def file_img(path, alt):
    with open(path, "rb") as f:
        return f'<img alt="{esc(alt)}" src="{png_data_uri(f.read())}">'


# ---------------------------------------------------------------------------- sections
def results_section(summary):
    parts = ["<h2 id='results'>Results</h2>",
             "<p class='note'>Accuracy (%) over seeds: mean, sample std (ddof = 1), 95% CI half-width "
             "t(0.975, n-1) &middot; std / &radic;n (tools/parse_results.py). Average rows: mean over datasets of "
             "the per-dataset means.</p>"]
    if summary["groups"]:
        averages = {(a["protocol"], a["trainer"], a["config"], a["shots"]): a for a in summary["averages"]}
        rows, classes = [], []
        groups = summary["groups"]
        for i, g in enumerate(groups):
            seeds = ",".join("?" if s is None else str(s) for s in g["seeds"])
            rows.append([g["protocol"], g["trainer"], g["config"], g["shots"], g["dataset"], seeds,
                         num(g["mean"]), num(g["std"]), num(g["ci95"])])
            classes.append("")
            key = (g["protocol"], g["trainer"], g["config"], g["shots"])
            following = groups[i + 1] if i + 1 < len(groups) else None
            if following is None or (following["protocol"], following["trainer"], following["config"],
                                     following["shots"]) != key:
                a = averages[key]
                rows.append([*key, f"average ({len(a['datasets'])} datasets)", "", num(a["mean"]), "", ""])
                classes.append("avg")
        parts.append(table(["protocol", "trainer", "config", "shots", "dataset", "seeds", "mean", "std", "95% CI"],
                           rows, numeric_from=6, classes=classes))
    if summary["base2new"]:
        def side(stats):
            return "–" if stats is None else num(stats["mean"]) + (
                "" if stats["ci95"] is None else f" ± {stats['ci95']:.2f}")

        rows = [[r["protocol"], r["trainer"], r["config"], r["shots"], r["dataset"],
                 f"{len(r['base_seeds'])}/{len(r['new_seeds'])}", side(r["base"]),
                 num(None if r["base"] is None else r["base"]["std"]), side(r["new"]),
                 num(None if r["new"] is None else r["new"]["std"]), num(r["hm"])] for r in summary["base2new"]]
        classes = [""] * len(rows)
        for a in summary["base2new_averages"]:
            rows.append([a["protocol"], a["trainer"], a["config"], a["shots"],
                         f"average ({len(a['datasets'])} datasets)", "", num(a["base"]), "", num(a["new"]), "",
                         num(a["hm"])])
            classes.append("avg")
        parts += ["<h3>Base-to-new</h3>",
                  "<p class='note'>base / new: mean ± 95% CI over seeds; H: harmonic mean of the mean base and "
                  "mean new accuracy.</p>",
                  table(["protocol", "trainer", "config", "shots", "dataset", "seeds (base/new)", "base",
                         "base std", "new", "new std", "H"], rows, numeric_from=6, classes=classes)]
    if summary["unfinished"]:
        parts.append("<h3>Unfinished or failed runs (not averaged)</h3><ul>")
        parts += [f"<li><code>{esc(u['path'])}</code>: {esc(u['problem'])}</li>" for u in summary["unfinished"]]
        parts.append("</ul>")
    return "\n".join(parts)


def search_label(root, folder, run_by_path):
    run = run_by_path.get(folder)
    if run is not None and run.dataset:
        return run.dataset, f"{run.protocol}/{run.trainer}/{run.config}/{seed_label(run)}"
    rel = os.path.relpath(folder, root)
    return os.path.dirname(rel) or rel, rel


def searched_section(root, runs):
    from tools.plot_alpha import plot_searched_configs
    from trainers.prompt_config import read_prompt_lengths

    run_by_path = {r.path: r for r in runs}
    by_dataset = {}
    for folder in search_folders(root):
        dataset, label = search_label(root, folder, run_by_path)
        try:
            by_dataset.setdefault(dataset, []).append((label, read_prompt_lengths(folder)))
        except (UserError, ValueError) as e:
            print(f"warning: skipped the configuration of {folder}: {e}", file=sys.stderr)
    if not by_dataset:
        return ""
    parts = ["<h2 id='searched'>Searched configurations</h2>",
             "<p class='note'>Prompt tokens per block of each encoder, one row per search run (the argmax of its "
             "alphas after the last epoch).</p>"]
    for dataset, configs in sorted(by_dataset.items()):
        parts.append(f"<h3>{esc(dataset)}</h3>")
        parts.append(figure_img(lambda f, c=configs, d=dataset: plot_searched_configs(c, f, title=d),
                                f"searched configurations of {dataset}"))
    return "\n".join(parts)


def plot_curves(series, path, title):
    """series: {run label: {metric: {epoch: value}}} -> one panel per metric (loss first, then acc, ...)."""
    from matplotlib.ticker import MaxNLocator

    metrics = sorted({m for curves in series.values() for m in curves},
                     key=lambda m: (m != "loss", m != "acc", m))
    fig = new_figure(figsize=(3.6 * len(metrics) + 0.6, 3.0), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for label, curves in series.items():
            if metric in curves:
                epochs = sorted(curves[metric])
                ax.plot(epochs, [curves[metric][e] for e in epochs], marker="o", markersize=3, label=label)
        ax.set(xlabel="epoch", title=metric + (" (%)" if metric == "acc" else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def convergence_section(root, runs):
    from tools.plot_alpha import plot_alpha_evolution
    from trainers.prompt_config import load_search_alphas

    groups = {}
    for run in runs:
        curves = epoch_curves(run.path)
        if curves:
            groups.setdefault(run_key(run), {})[seed_label(run)] = curves
    parts = []
    for key, series in sorted(groups.items()):
        title = key_title(key) or os.path.relpath(root)
        parts.append(f"<h3>{esc(title)}</h3>")
        parts.append(figure_img(lambda f, s=series, t=title: plot_curves(s, f, t), f"training curves of {title}"))
    for folder in search_folders(root):
        if len(alpha_epochs(folder)) >= 2:
            rel = os.path.relpath(folder, root)
            parts.append(f"<h3>Alpha evolution: {esc(rel)}</h3>")
            alphas = load_search_alphas(folder)
            parts.append(figure_img(lambda f, a=alphas: plot_alpha_evolution(a, f), f"alpha evolution of {rel}"))
    if not parts:
        return ""
    return "\n".join(["<h2 id='convergence'>Convergence</h2>",
                      "<p class='note'>Training loss and accuracy per epoch (epoch averages from the logs); the "
                      "softmax of the alphas per epoch for search runs.</p>"] + parts)


def per_class_section(runs):
    from tools.parse_results import load_predictions, prediction_report

    tables = {}
    for run in runs:
        if not os.path.isdir(run.path):
            continue
        for name in sorted(os.listdir(run.path)):
            match = PREDICTIONS_RE.match(name)
            if not match:
                continue
            path = os.path.join(run.path, name)
            try:
                report = prediction_report(load_predictions(path), path)
            except (ValueError, OSError) as e:
                print(f"warning: skipped {path}: {e}", file=sys.stderr)
                continue
            tables.setdefault((run_key(run), match.group(1)), []).append((seed_label(run), report))
    if not tables:
        return ""
    parts = ["<h2 id='perclass'>Per-class accuracy</h2>",
             "<p class='note'>From the predictions_&lt;split&gt;.npz files (TEST.SAVE_PREDICTIONS True): accuracy "
             "(%) per class present among the labels, per seed, and the mean over seeds.</p>"]
    for (key, split), reports in sorted(tables.items()):
        classnames = {}
        for _, report in reports:
            for c in report["per_class"]:
                classnames[c["label"]] = c["classname"]
        rows = []
        for label in sorted(classnames):
            values = [next((c["accuracy"] for c in r["per_class"] if c["label"] == label), None) for _, r in reports]
            present = [v for v in values if v is not None]
            rows.append([label, classnames[label], *[num(v, 1) for v in values],
                         num(sum(present) / len(present) if present else None, 1)])
        rows.append(["", "all", *[num(r["accuracy"], 1) for _, r in reports],
                     num(float(np.mean([r["accuracy"] for _, r in reports])), 1)])
        parts.append(f"<h3>{esc(key_title(key))} ({esc(split)})</h3>")
        parts.append(table(["label", "class", *[label for label, _ in reports], "mean"], rows, numeric_from=2,
                           classes=[""] * (len(rows) - 1) + ["avg"]))
    return "\n".join(parts)


def gradcam_section(root):
    paths = files_matching(root, GRADCAM_RE)
    if not paths:
        return ""
    parts = ["<h2 id='gradcam'>Grad-CAM</h2>",
             "<p class='note'>tools/gradcam.py figures found in the tree: one row per image, the image then one "
             "heat-map per method.</p>"]
    for path in paths:
        rel = os.path.relpath(path, root)
        parts += [f"<h3>{esc(rel)}</h3>", file_img(path, f"Grad-CAM {rel}")]
    return "\n".join(parts)


# ---------------------------------------------------------------------------- the page
def check_finished(root, runs):
    if any(r.accuracy is not None for r in runs):
        return
    if not runs:
        found = "no folder with a log.txt"
    else:
        shown = "; ".join(f"{os.path.relpath(r.path, root)}: {r.problem}" for r in runs[:5])
        found = f"{len(runs)} run(s), none finished ({shown}{'; ...' if len(runs) > 5 else ''})"
    raise MissingFileError(
        f"No finished run under {root}: found {found}. Expected run folders "
        "<root>/<protocol>/<dataset>/shots_<K>/<trainer>/<config>/seed<S>/ whose log.txt ends with "
        "'Finish training' and a '* accuracy: X%' line (or an --eval-only run's result). Point the report at "
        "the root of a train.py / tools.sweep output tree, or wait for a run to finish.")


def build_report(root, title=None):
    """The HTML text of the page for the output tree at ``root``."""
    if not os.path.isdir(root):
        raise MissingFileError(f"Output folder not found: {root}. Pass the root of a train.py output tree.")
    runs = find_runs(root)
    check_finished(root, runs)
    summary = summarize(runs)
    sections = [results_section(summary), searched_section(root, runs), convergence_section(root, runs),
                per_class_section(runs), gradcam_section(root)]
    names = {"results": "Results", "searched": "Searched configurations", "convergence": "Convergence",
             "perclass": "Per-class accuracy", "gradcam": "Grad-CAM"}
    nav = " ".join(f"<a href='#{anchor}'>{label}</a>" for anchor, label in names.items()
                   if any(f"id='{anchor}'" in s for s in sections))
    title = title or f"Report: {os.path.abspath(root)}"
    finished = sum(r.accuracy is not None for r in runs)
    return "\n".join([
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title>", f"<style>{CSS}</style>", "</head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='note'>{finished} finished run(s) of {len(runs)} under <code>{esc(os.path.abspath(root))}</code>."
        "</p>", f"<nav>{nav}</nav>",
        *[s for s in sections if s], "</body></html>", ""])


def write_report(root, out=None, title=None):
    out = out or os.path.join(root, "report.html")
    text = build_report(root, title)
    atomic_write(out, lambda f: f.write(text), mode="w")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out, 0o666 & ~umask)  # the temporary file was private; a page is for reading
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="root of the output tree")
    parser.add_argument("--out", help="the HTML file (default <root>/report.html)")
    parser.add_argument("--title", help="page title (default: the tree's path)")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.root, args.out, args.title)
    except UserError as error:
        print(f"error: {user_message(error)}", file=sys.stderr)
        return 2
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
