"""Results tables from a CoOp-style output tree: mean, std and 95% CI over seeds.

    python -m tools.parse_results output/ --out results/dpl

A run is any folder holding a ``log.txt``. Its place in the tree names it:

    <root>/<protocol...>/<dataset>/shots_<K>/<trainer>/<config>/seed<S>/log.txt

Runs are grouped by (protocol, trainer, config, dataset, shots); the seeds of a group are its
``seed<S>`` folders. Base-to-new runs (``.../train_base/...`` and ``.../test_new/...``) are paired
by seed and give base, new and their harmonic mean. A run whose log has no final result is
listed as unfinished and never averaged.

    python -m tools.parse_results --predictions output/.../seed1/predictions_test.npz --out results/seed1

reports, from the ``predictions_<split>.npz`` files a run writes with ``TEST.SAVE_PREDICTIONS True``,
accuracy, macro F1, per-class accuracy and the confusion matrix (numbers as the engine's evaluator).
"""
import argparse
import csv
import functools
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass
from typing import Optional

ACCURACY_RE = re.compile(r"^\* accuracy: ([\d.eE+-]+)%", re.M)
SEED_DIR_RE = re.compile(r"^seed_?(\d+)$")
SHOTS_DIR_RE = re.compile(r"^shots_?(.+)$")
# Lines only a training run prints (Dassl's SimpleTrainer); an eval-only log has none of them.
TRAINING_MARKERS = ("Finish training", "No checkpoint found", "Found checkpoint at")
EPOCH_LINE_RE = re.compile(r"^epoch \[(\d+)/(\d+)\]", re.M)
BASE2NEW_STAGES = {"train_base": "base", "test_new": "new"}


@dataclass
class Run:
    path: str
    protocol: str
    dataset: str
    shots: str
    trainer: str
    config: str
    seed: Optional[int]
    accuracy: Optional[float]
    problem: Optional[str]  # why there is no accuracy


# ---------------------------------------------------------------------------- statistics
def _t_pdf(x, dof):
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    return math.exp(log_norm - (dof + 1) / 2 * math.log1p(x * x / dof))


def _t_cdf(t, dof, steps=2000):
    """P(T <= t) for t >= 0: 1/2 plus Simpson's rule on the (smooth, bounded) density over [0, t]."""
    h = t / steps
    total = _t_pdf(0.0, dof) + _t_pdf(t, dof)
    for i in range(1, steps):
        total += (4 if i % 2 else 2) * _t_pdf(i * h, dof)
    return 0.5 + total * h / 3


@functools.lru_cache(maxsize=None)
def t_critical(dof, confidence=0.95):
    """Two-sided Student t critical value: P(|T| <= t) = confidence with ``dof`` degrees of freedom.

    Bisection on the CDF (no scipy); t_critical(2) = 4.302653, t_critical(1) = 12.706205.
    """
    if dof < 1:
        raise ValueError(f"t_critical needs at least 1 degree of freedom, got {dof}.")
    target = 0.5 + confidence / 2
    low, high = 0.0, 1.0
    while _t_cdf(high, dof) < target:
        low, high = high, high * 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, dof) < target else (low, mid)
    return (low + high) / 2


def describe_values(values):
    """mean, sample std (ddof=1) and 95% CI half-width (t with n-1 dof); std/ci are None for n < 2."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "ci95": None}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return {"n": n, "mean": mean, "std": std, "ci95": t_critical(n - 1) * std / math.sqrt(n)}


def harmonic_mean(base, new):
    return 2 * base * new / (base + new) if base + new > 0 else 0.0


# ---------------------------------------------------------------------------- logs and runs
def _log_files(run_dir):
    """log.txt then the resumed runs' log.txt-<timestamp> files, oldest first (names sort by time)."""
    names = [n for n in os.listdir(run_dir) if n == "log.txt" or n.startswith("log.txt-")]
    return [os.path.join(run_dir, n) for n in sorted(names)]


def result_of_log(text):
    """(accuracy, problem) of one log. Training logs count only results after 'Finish training'
    (best_val runs print validation results during training); eval-only logs take the last one."""
    if "Finish training" in text:
        tail = text[text.rindex("Finish training"):]
        found = ACCURACY_RE.findall(tail)
        if found:
            return float(found[-1]), None
        return None, "training finished but no test result followed (crashed while testing, or TEST.NO_TEST?)"
    if any(marker in text for marker in TRAINING_MARKERS) or EPOCH_LINE_RE.search(text):
        epochs = EPOCH_LINE_RE.findall(text)
        progress = f" (last progress line: epoch [{epochs[-1][0]}/{epochs[-1][1]}])" if epochs else ""
        return None, "training not finished: no 'Finish training' line" + progress
    found = ACCURACY_RE.findall(text)
    if found:
        return float(found[-1]), None
    return None, "no '* accuracy: X%' result line in the log"


def read_run_result(run_dir):
    """The newest log with a final result wins; a run without any is (None, why)."""
    problem = None
    for path in reversed(_log_files(run_dir)):
        with open(path, errors="replace") as f:
            accuracy, why = result_of_log(f.read())
        if accuracy is not None:
            return accuracy, None
        problem = problem or f"{os.path.basename(path)}: {why}"
    return None, problem


# The MaPLe / PromptSRC / IVLP releases' few-shot and cross-dataset layout:
# <protocol...>/<dataset>/<trainer>/<config>_<K>shots/seed<S> (evaluation: .../<config>_<K>shots/<target>/seed<S>)
CONFIG_SHOTS_RE = re.compile(r"^(.+)_(\d+)shots$")


def describe_run_path(root, run_dir):
    """Fields from <protocol...>/<dataset>/shots_<K>/<trainer>/<config>/seed<S>, or the releases'
    <protocol...>/<dataset>/<trainer>/<config>_<K>shots/seed<S> and
    evaluation/<trainer>/<config>_<K>shots/<target dataset>/seed<S>; a folder that follows none of
    them becomes its own group named by its parent path."""
    parts = os.path.relpath(run_dir, root).replace(os.sep, "/").split("/")
    seed_match = SEED_DIR_RE.match(parts[-1])
    seed = int(seed_match.group(1)) if seed_match else None
    if seed_match and len(parts) >= 5 and SHOTS_DIR_RE.match(parts[-4]):
        dataset, shots_dir, trainer, config = parts[-5:-1]
        protocol = "/".join(parts[:-5]) or "."
        return dict(protocol=protocol, dataset=dataset, shots=SHOTS_DIR_RE.match(shots_dir).group(1),
                    trainer=trainer, config=config, seed=seed)
    if seed_match and len(parts) >= 4 and CONFIG_SHOTS_RE.match(parts[-3]):  # evaluation/<T>/<cfg>_<K>shots/<ds>
        config, shots = CONFIG_SHOTS_RE.match(parts[-3]).groups()
        return dict(protocol="/".join(parts[:-4]) or ".", dataset=parts[-2], shots=shots, trainer=parts[-4],
                    config=config, seed=seed)
    if seed_match and len(parts) >= 4 and CONFIG_SHOTS_RE.match(parts[-2]):  # <ds>/<T>/<cfg>_<K>shots
        config, shots = CONFIG_SHOTS_RE.match(parts[-2]).groups()
        return dict(protocol="/".join(parts[:-4]) or ".", dataset=parts[-4], shots=shots, trainer=parts[-3],
                    config=config, seed=seed)
    parent = "/".join(parts[:-1]) if seed_match else "/".join(parts)
    return dict(protocol=parent or ".", dataset="", shots="", trainer="", config="", seed=seed)


def find_runs(root):
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Output folder not found: {root}. Pass the root of a CoOp-style output tree.")
    runs = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        if "log.txt" in files:
            accuracy, problem = read_run_result(folder)
            runs.append(Run(path=folder, accuracy=accuracy, problem=problem, **describe_run_path(root, folder)))
    return runs


# ---------------------------------------------------------------------------- grouping
def _shots_key(shots):
    return (0, int(shots), "") if shots.isdigit() else (1, 0, shots)


def _base2new_split(protocol):
    """('base2new', 'base') for 'base2new/train_base'; None for other protocols."""
    head, _, stage = protocol.rpartition("/")
    if stage in BASE2NEW_STAGES:
        return head or ".", BASE2NEW_STAGES[stage]
    return None


def summarize(runs):
    """{"groups": [...], "averages": [...], "base2new": [...], "base2new_averages": [...], "unfinished": [...]}"""
    plain, paired = {}, {}
    unfinished = [{"path": r.path, "problem": r.problem} for r in runs if r.accuracy is None]
    for r in runs:
        if r.accuracy is None:
            continue
        split = _base2new_split(r.protocol)
        if split is None:
            key = (r.protocol, r.trainer, r.config, r.shots, r.dataset)
            plain.setdefault(key, {})[r.seed] = r.accuracy
        else:
            key = (split[0], r.trainer, r.config, r.shots, r.dataset)
            paired.setdefault(key, {"base": {}, "new": {}})[split[1]][r.seed] = r.accuracy

    def order(key):
        return (key[0], key[1], key[2], _shots_key(key[3]), key[4])

    groups, averages = [], {}
    for key in sorted(plain, key=order):
        protocol, trainer, config, shots, dataset = key
        seeds = dict(sorted(plain[key].items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))
        groups.append(dict(protocol=protocol, trainer=trainer, config=config, shots=shots, dataset=dataset,
                           seeds=list(seeds), accuracies=list(seeds.values()),
                           **describe_values(list(seeds.values()))))
        averages.setdefault(key[:4], []).append((dataset, groups[-1]["mean"]))
    average_rows = [
        dict(protocol=k[0], trainer=k[1], config=k[2], shots=k[3], datasets=[d for d, _ in v],
             mean=sum(m for _, m in v) / len(v))
        for k, v in averages.items()
    ]

    b2n_rows, b2n_averages = [], {}
    for key in sorted(paired, key=order):
        protocol, trainer, config, shots, dataset = key
        row = dict(protocol=protocol, trainer=trainer, config=config, shots=shots, dataset=dataset)
        for side, other, stage in (("base", "new", "test_new"), ("new", "base", "train_base")):
            values = paired[key][side]
            row[side] = describe_values(list(values.values())) if values else None
            row[f"{side}_seeds"] = sorted(values, key=lambda s: s or 0)
            row[f"{side}_accuracies"] = [values[s] for s in row[f"{side}_seeds"]]
            for seed in sorted(set(values) - set(paired[key][other]), key=lambda s: s or 0):
                unfinished.append({"path": f"{protocol}/{stage}/{dataset}/shots_{shots}/{trainer}/{config}/seed{seed}",
                                   "problem": f"no finished {other} result to pair with the {side} result of seed {seed}"})
        row["hm"] = harmonic_mean(row["base"]["mean"], row["new"]["mean"]) if row["base"] and row["new"] else None
        b2n_rows.append(row)
        if row["hm"] is not None:
            b2n_averages.setdefault(key[:4], []).append(row)
    b2n_average_rows = []
    for k, rows in b2n_averages.items():
        base = sum(r["base"]["mean"] for r in rows) / len(rows)
        new = sum(r["new"]["mean"] for r in rows) / len(rows)
        b2n_average_rows.append(dict(protocol=k[0], trainer=k[1], config=k[2], shots=k[3],
                                     datasets=[r["dataset"] for r in rows], base=base, new=new,
                                     hm=harmonic_mean(base, new)))
    return {"groups": groups, "averages": average_rows, "base2new": b2n_rows,
            "base2new_averages": b2n_average_rows, "unfinished": unfinished}


# ---------------------------------------------------------------------------- predictions files
def load_predictions(path):
    """The arrays of a ``predictions_<split>.npz``, checked (ValueError saying what is wrong otherwise)."""
    from dassl.evaluation.predictions import load_predictions as load  # imports torch: only in this mode

    return load(path)


def prediction_report(predictions, path=""):
    """Metrics of one predictions file, as the engine's Classification evaluator computes them.

    Predicted class = argmax of the logits (first maximum on ties, as torch's max). Accuracy,
    error and macro F1 in %; per-class accuracy over the classes present among the labels, and
    their mean; confusion matrix of counts, (C, C), row = true label, column = predicted label.
    """
    from dassl.evaluation.evaluator import macro_f1_score

    labels = predictions["labels"].astype(int)
    classnames = [str(name) for name in predictions["classnames"]]
    num_classes = len(classnames)
    predicted = predictions["logits"].argmax(axis=1)
    confusion = [[0] * num_classes for _ in range(num_classes)]
    for true, pred in zip(labels.tolist(), predicted.tolist()):
        confusion[true][pred] += 1
    total, correct = len(labels), int((labels == predicted).sum())
    accuracy = 100.0 * correct / max(total, 1)
    per_class = []
    for label in sorted(set(labels.tolist())):
        class_total = sum(confusion[label])
        per_class.append(dict(label=label, classname=classnames[label], total=class_total,
                              correct=confusion[label][label], accuracy=100.0 * confusion[label][label] / class_total))
    return dict(path=path, num_samples=total, num_classes=num_classes, total=total, correct=correct,
                accuracy=accuracy, error_rate=100.0 - accuracy, macro_f1=100.0 * macro_f1_score(labels, predicted),
                perclass_accuracy=sum(c["accuracy"] for c in per_class) / max(len(per_class), 1),
                per_class=per_class, classnames=classnames, confusion_matrix=confusion)


def _cell(text):
    return str(text).replace("|", "\\|")


def predictions_to_markdown(reports, max_cmat_classes=20, csv_paths=None):
    """The printed report of each predictions file; the confusion matrix only up to ``max_cmat_classes``."""
    lines = []
    for i, r in enumerate(reports):
        lines += [f"## Predictions: `{r['path']}`", "",
                  "| samples | classes | correct | accuracy (%) | error (%) | macro F1 (%) "
                  "| mean per-class accuracy (%) |",
                  "|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {r['total']} | {r['num_classes']} | {r['correct']} | {_num(r['accuracy'])} | "
                  f"{_num(r['error_rate'])} | {_num(r['macro_f1'])} | {_num(r['perclass_accuracy'])} |", "",
                  "Per-class accuracy (classes present among the labels):", "",
                  "| label | class | total | correct | accuracy (%) |", "|---:|---|---:|---:|---:|"]
        lines += [f"| {c['label']} | {_cell(c['classname'])} | {c['total']} | {c['correct']} | {_num(c['accuracy'])} |"
                  for c in r["per_class"]]
        lines.append("")
        n = r["num_classes"]
        where = f" Written to `{csv_paths[i]}`." if csv_paths else " `--out` writes it as CSV."
        if n > max_cmat_classes:
            lines += [f"Confusion matrix: {n} x {n}, not printed (more than --max-cmat-classes "
                      f"{max_cmat_classes}).{where}", ""]
            continue
        lines += [f"Confusion matrix (counts; row = true class, column = predicted label).{where}", "",
                  "| true \\ predicted | " + " | ".join(str(k) for k in range(n)) + " |",
                  "|---|" + "---:|" * n]
        lines += [f"| {k} {_cell(name)} | " + " | ".join(str(v) for v in row) + " |"
                  for k, (name, row) in enumerate(zip(r["classnames"], r["confusion_matrix"]))]
        lines.append("")
    return "\n".join(lines)


def confusion_csv_rows(report):
    """Header then one row per true class: label, class name, count predicted as each class."""
    rows = [["true_label", "true_class"] + report["classnames"]]
    rows += [[k, name] + row for k, (name, row) in enumerate(zip(report["classnames"], report["confusion_matrix"]))]
    return rows


def confusion_csv_paths(prefix, count):
    """``<prefix>_confusion.csv`` for one file, ``<prefix>_confusion_<k>.csv`` (k from 1, in order) for several."""
    if count == 1:
        return [prefix + "_confusion.csv"]
    return [f"{prefix}_confusion_{k}.csv" for k in range(1, count + 1)]


def write_prediction_outputs(reports, prefix, markdown):
    """<prefix>.md (the printed report), <prefix>.json (every report) and the confusion CSVs; returns the paths."""
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    csv_paths = confusion_csv_paths(prefix, len(reports))
    with open(prefix + ".md", "w") as f:
        f.write(markdown)
    with open(prefix + ".json", "w") as f:
        json.dump([dict(r, confusion_csv=p) for r, p in zip(reports, csv_paths)], f, indent=2)
    for report, path in zip(reports, csv_paths):
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(confusion_csv_rows(report))
    return [prefix + ".md", prefix + ".json"] + csv_paths


def report_predictions(paths, out=None, max_cmat_classes=20):
    """Print (and with ``out`` write) the report of each predictions file; returns the exit status."""
    try:
        reports = [prediction_report(load_predictions(path), path) for path in paths]
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    csv_paths = confusion_csv_paths(out, len(reports)) if out else None
    markdown = predictions_to_markdown(reports, max_cmat_classes, csv_paths)
    print(markdown)
    if out:
        for path in write_prediction_outputs(reports, out, markdown):
            print(f"Wrote {path}")
    return 0


# ---------------------------------------------------------------------------- output
def _num(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def _ci(stats):
    if stats is None:
        return "–"
    return _num(stats["mean"]) + ("" if stats["ci95"] is None else f" ± {stats['ci95']:.2f}")


def to_markdown(summary):
    lines = []
    if summary["groups"]:
        lines += ["## Accuracy (%) over seeds", "",
                  "mean, sample std (ddof=1), 95% CI half-width = t(0.975, n-1) * std / sqrt(n); "
                  "'average' = mean over datasets of the per-dataset means.", "",
                  "| protocol | trainer | config | shots | dataset | seeds | mean | std | 95% CI |",
                  "|---|---|---|---|---|---|---:|---:|---:|"]
        averages = {(a["protocol"], a["trainer"], a["config"], a["shots"]): a for a in summary["averages"]}
        for i, g in enumerate(summary["groups"]):
            seeds = ",".join("?" if s is None else str(s) for s in g["seeds"])
            lines.append(f"| {g['protocol']} | {g['trainer']} | {g['config']} | {g['shots']} | {g['dataset']} "
                         f"| {seeds} | {_num(g['mean'])} | {_num(g['std'])} | {_num(g['ci95'])} |")
            key = (g["protocol"], g["trainer"], g["config"], g["shots"])
            following = summary["groups"][i + 1] if i + 1 < len(summary["groups"]) else None
            if following is None or (following["protocol"], following["trainer"], following["config"],
                                     following["shots"]) != key:
                a = averages[key]
                lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | **average ({len(a['datasets'])} "
                             f"datasets)** | | **{_num(a['mean'])}** | | |")
        lines.append("")
    if summary["base2new"]:
        lines += ["## Base-to-new accuracy (%)", "",
                  "base / new: mean ± 95% CI over seeds; HM = harmonic mean of the mean base and mean new; "
                  "'average' rows: mean over datasets, HM of those means.", "",
                  "| protocol | trainer | config | shots | dataset | seeds (base/new) | base | new | HM |",
                  "|---|---|---|---|---|---|---:|---:|---:|"]
        for r in summary["base2new"]:
            lines.append(f"| {r['protocol']} | {r['trainer']} | {r['config']} | {r['shots']} | {r['dataset']} "
                         f"| {len(r['base_seeds'])}/{len(r['new_seeds'])} | {_ci(r['base'])} | {_ci(r['new'])} "
                         f"| {_num(r['hm'])} |")
        for a in summary["base2new_averages"]:
            lines.append(f"| {a['protocol']} | {a['trainer']} | {a['config']} | {a['shots']} | **average "
                         f"({len(a['datasets'])} datasets)** | | **{_num(a['base'])}** | **{_num(a['new'])}** "
                         f"| **{_num(a['hm'])}** |")
        lines.append("")
    if summary["unfinished"]:
        lines += ["## Unfinished or failed runs (not averaged)", ""]
        lines += [f"- `{u['path']}`: {u['problem']}" for u in summary["unfinished"]]
        lines.append("")
    if not lines:
        lines = ["No runs found (no folder with a log.txt).", ""]
    return "\n".join(lines)


CSV_COLUMNS = ["kind", "protocol", "trainer", "config", "shots", "dataset", "n", "seeds", "mean", "std", "ci95",
               "base", "base_ci95", "new", "new_ci95", "hm"]


def to_csv_rows(summary):
    rows = []
    for g in summary["groups"]:
        rows.append(dict(kind="dataset", n=g["n"], seeds=" ".join(map(str, g["seeds"])),
                         **{k: g[k] for k in ("protocol", "trainer", "config", "shots", "dataset",
                                              "mean", "std", "ci95")}))
    for a in summary["averages"]:
        rows.append(dict(kind="average", dataset="average", n=len(a["datasets"]), mean=a["mean"],
                         **{k: a[k] for k in ("protocol", "trainer", "config", "shots")}))
    for r in summary["base2new"]:
        row = dict(kind="base2new", hm=r["hm"], **{k: r[k] for k in ("protocol", "trainer", "config", "shots",
                                                                      "dataset")})
        for side in ("base", "new"):
            if r[side]:
                row[side], row[f"{side}_ci95"] = r[side]["mean"], r[side]["ci95"]
        rows.append(row)
    for a in summary["base2new_averages"]:
        rows.append(dict(kind="base2new_average", dataset="average", n=len(a["datasets"]),
                         **{k: a[k] for k in ("protocol", "trainer", "config", "shots", "base", "new", "hm")}))
    return rows


def write_outputs(summary, prefix):
    """<prefix>.md, <prefix>.csv and <prefix>.json; returns the three paths."""
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    paths = [prefix + ".md", prefix + ".csv", prefix + ".json"]
    with open(paths[0], "w") as f:
        f.write(to_markdown(summary))
    with open(paths[1], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in to_csv_rows(summary):
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    with open(paths[2], "w") as f:
        json.dump(summary, f, indent=2)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?",
                        help="root of the output tree (searched at any depth for folders with log.txt)")
    parser.add_argument("--out", help="write <OUT>.md, <OUT>.csv and <OUT>.json as well as printing the table "
                                      "(with --predictions: <OUT>.md, <OUT>.json and the confusion matrices as "
                                      "<OUT>_confusion.csv, or <OUT>_confusion_<k>.csv for several files)")
    parser.add_argument("--protocol", action="append",
                        help="keep only runs whose protocol path starts with this (repeatable), e.g. fewshot")
    parser.add_argument("--predictions", nargs="+", metavar="NPZ",
                        help="instead of an output tree: report accuracy, per-class accuracy and the confusion "
                             "matrix of these predictions_<split>.npz files (written with TEST.SAVE_PREDICTIONS True)")
    parser.add_argument("--max-cmat-classes", type=int, default=20,
                        help="with --predictions: print confusion matrices up to this many classes (default 20)")
    args = parser.parse_args(argv)
    if args.predictions:
        if args.root or args.protocol:
            parser.error("--predictions reads the given files only: drop the output-tree root and --protocol")
        return report_predictions(args.predictions, args.out, args.max_cmat_classes)
    if not args.root:
        parser.error("give the root of an output tree, or --predictions FILE.npz ...")

    runs = find_runs(args.root)
    if args.protocol:
        runs = [r for r in runs if any(r.protocol == p or r.protocol.startswith(p.rstrip("/") + "/")
                                       for p in args.protocol)]
    summary = summarize(runs)
    summary["runs"] = [asdict(r) for r in runs]
    print(to_markdown(summary))
    if args.out:
        for path in write_outputs(summary, args.out):
            print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
