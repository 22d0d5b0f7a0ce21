"""Results tables from a CoOp-style output tree: mean, std and 95% CI over seeds.

    python -m tools.parse_results output/ --out results/dpl

A run is any folder holding a ``log.txt``. Its place in the tree names it:

    <root>/<protocol...>/<dataset>/shots_<K>/<trainer>/<config>/seed<S>/log.txt

Runs are grouped by (protocol, trainer, config, dataset, shots); the seeds of a group are its
``seed<S>`` folders. Base-to-new runs (``.../train_base/...`` and ``.../test_new/...``) are paired
by seed and give base, new and their harmonic mean. A run whose log has no final result is
listed as unfinished and never averaged; a folder outside the layout is listed apart.
Three more tables come from the same runs: DePT against its base method (base-to-new), the
per-dataset accuracies of runs on joined datasets, and MVLPT's per-target table (docs/tools.md).

    python -m tools.parse_results --predictions output/.../seed1/predictions_test.npz --out results/seed1

reports, from the ``predictions_<split>.npz`` files a run writes with ``TEST.SAVE_PREDICTIONS True``,
accuracy, macro F1, per-class accuracy and the confusion matrix (numbers as the engine's evaluator).
"""
import argparse
import csv
import functools
import io
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from typing import Optional

from dassl.errors import MissingFileError, UserError  # imports nothing
from dassl.engine.run_record import ASIDE_MARK  # standard library only
from trainers.prompt_config import atomic_write  # numpy only

ACCURACY_RE = re.compile(r"^\* accuracy: ([\d.eE+-]+)%", re.M)
# PerDatasetClassification (joined datasets) prints one such line per dataset after the result.
DATASET_ACCURACY_RE = re.compile(r"^\* accuracy on (.+): ([\d.eE+-]+)% \(total", re.M)
SEED_DIR_RE = re.compile(r"^seed_?(\d+)$")
SHOTS_DIR_RE = re.compile(r"^shots_?(.+)$")
# Lines only a training run prints (Dassl's SimpleTrainer); an eval-only log has none of them.
TRAINING_MARKERS = ("Finish training", "No checkpoint found", "Found checkpoint at")
EPOCH_LINE_RE = re.compile(r"^epoch \[(\d+)/(\d+)\]", re.M)
BASE2NEW_STAGES = {"train_base": "base", "test_new": "new"}
RUN_SETTINGS = "run_settings.json"  # {"config": {...}}: the resolved config of a run, when recorded
TABLE_DIGITS = 1  # the engine logs accuracies with one decimal: the tables show no more
CSV_DIGITS = 2  # one more in the CSV, so that averages of its rows round as the tables do

# DePT: the release's trainers are ExtrasLinearProbe<base method>; over any trainer it is
# TRAINER.DEPT.ENABLED, whose config folder is by convention the base run's name plus "_dept".
DEPT_TRAINER_PREFIX = "ExtrasLinearProbe"
DEPT_CONFIG_SUFFIX = "_dept"

# MVLPT's 12 ELEVATER targets (the tasks outside CoOp's 11 datasets; /work/shared/research/mvlpt.md
# section 4.1), in ELEVATER's spelling. A target folder matches when its name, lower-cased and
# without punctuation, equals the ELEVATER name or one of its aliases so written.
MVLPT_TRAINER = "MVLPT"
ELEVATER_TARGETS = {
    "cifar-10": (), "cifar-100": (), "country211": (), "fer-2013": (), "gtsrb": (), "hateful-memes": (),
    "kitti-distance": ("kitti",), "mnist": (), "patch-camelyon": ("pcam",), "rendered-sst2": ("sst2",),
    "resisc45_clip": ("resisc45",), "voc-2007-classification": ("voc2007",),
}


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
    in_layout: bool = True  # False: the folder follows none of the layouts (listed apart, never grouped)
    per_dataset: dict = field(default_factory=dict)  # joined dataset: {dataset name: accuracy} of the result
    dept: bool = False  # a DePT run (see dept_of_run)
    base_method: str = ""  # DePT runs: the method DePT is added to (CoOp for ExtrasLinearProbeCoOp)


def plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


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


def _last_result_block(text):
    """The text from the '=> result' line of the last '* accuracy: X%' on (its per-dataset lines follow it)."""
    last = list(ACCURACY_RE.finditer(text))[-1]
    start = text.rfind("=> result", 0, last.start())
    return text[start if start >= 0 else last.start():]


def final_result_of_log(text):
    """(final result block or None, problem). Training logs count only results after 'Finish training'
    (best_val runs print validation results during training); eval-only logs take the last one."""
    if "Finish training" in text:
        tail = text[text.rindex("Finish training"):]
        if ACCURACY_RE.search(tail):
            return _last_result_block(tail), None
        return None, "training finished but no test result followed (crashed while testing, or TEST.NO_TEST?)"
    if any(marker in text for marker in TRAINING_MARKERS) or EPOCH_LINE_RE.search(text):
        epochs = EPOCH_LINE_RE.findall(text)
        progress = f" (last progress line: epoch [{epochs[-1][0]}/{epochs[-1][1]}])" if epochs else ""
        return None, "training not finished: no 'Finish training' line" + progress
    if ACCURACY_RE.search(text):
        return _last_result_block(text), None
    return None, "no '* accuracy: X%' result line in the log"


def result_of_log(text):
    """(accuracy, problem) of one log (see final_result_of_log)."""
    block, problem = final_result_of_log(text)
    return (None, problem) if block is None else (float(ACCURACY_RE.search(block).group(1)), None)


def per_dataset_of_result(block):
    """{dataset: accuracy} of PerDatasetClassification's lines in a result block ({} for one dataset)."""
    return {name: float(value) for name, value in DATASET_ACCURACY_RE.findall(block)}


def read_run_details(run_dir):
    """(accuracy, per-dataset accuracies, problem, text of the log used): the newest log with a final
    result wins; a run without any gives (None, {}, why, newest log)."""
    problem, newest = None, None
    for path in reversed(_log_files(run_dir)):
        with open(path, errors="replace") as f:
            text = f.read()
        newest = text if newest is None else newest
        block, why = final_result_of_log(text)
        if block is not None:
            return float(ACCURACY_RE.search(block).group(1)), per_dataset_of_result(block), None, text
        problem = problem or f"{os.path.basename(path)}: {why}"
    return None, {}, problem, newest or ""


def read_run_result(run_dir):
    """(accuracy, problem) of a run folder (see read_run_details)."""
    accuracy, _, problem, _ = read_run_details(run_dir)
    return accuracy, problem


def logged_config_value(text, key):
    """The value (a string) of a dotted config key in the config dump a log starts with, or None.

    The engine prints the resolved config as yacs dumps it: two spaces of indent per level,
    ``KEY: value`` leaves, after a '** Config **' banner and before 'Collecting env info'.
    """
    start = text.find("** Config **")
    if start < 0:
        return None
    wanted, path = key.split("."), []
    for line in text[start:].splitlines()[1:]:
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith(("*", "- ")):
            continue  # banner lines, list items
        if ":" not in stripped:
            return None  # the end of the dump
        name, _, value = stripped.partition(":")
        path = path[:(len(line) - len(stripped)) // 2] + [name]
        if path == wanted:
            return value.strip()
    return None


def recorded_config_value(run_dir, key):
    """A dotted key's value in the run's run_settings.json ({"config": {...}}), or None when absent."""
    path = os.path.join(run_dir, RUN_SETTINGS)
    try:
        with open(path) as f:
            node = json.load(f).get("config")
    except (OSError, ValueError, AttributeError):
        return None
    for name in key.split("."):
        if not isinstance(node, dict) or name not in node:
            return None
        node = node[name]
    return node


def _truthy(value):
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")


def dept_of_run(run_dir, trainer, config, log_text):
    """(is DePT, base method). ExtrasLinearProbe<X> is DePT over X. Any other trainer is DePT when its
    recorded TRAINER.DEPT.ENABLED is true (run_settings.json, else the log's config dump); without a
    record, when its config folder ends in '_dept'."""
    if trainer.startswith(DEPT_TRAINER_PREFIX) and len(trainer) > len(DEPT_TRAINER_PREFIX):
        return True, trainer[len(DEPT_TRAINER_PREFIX):]
    value = recorded_config_value(run_dir, "TRAINER.DEPT.ENABLED")
    if value is None:
        value = logged_config_value(log_text, "TRAINER.DEPT.ENABLED")
    enabled = config.endswith(DEPT_CONFIG_SUFFIX) if value is None else _truthy(value)
    return enabled, (trainer if enabled else "")


# The MaPLe / PromptSRC / IVLP releases' few-shot and cross-dataset layout:
# <protocol...>/<dataset>/<trainer>/<config>_<K>shots/seed<S> (evaluation: .../<config>_<K>shots/<target>/seed<S>)
CONFIG_SHOTS_RE = re.compile(r"^(.+)_(\d+)shots$")


def _protocol_name(root, parts):
    """The folders above <dataset>; when the root itself is the protocol folder (nothing above, or only
    a base-to-new stage), the root's name takes its place: never '.'."""
    if not parts or (len(parts) == 1 and parts[0] in BASE2NEW_STAGES):
        root_name = os.path.basename(os.path.abspath(root)) or "."
        parts = [root_name] + list(parts)
    return "/".join(parts)


def describe_run_path(root, run_dir):
    """Fields from <protocol...>/<dataset>/shots_<K>/<trainer>/<config>/seed<S>, or the releases'
    <protocol...>/<dataset>/<trainer>/<config>_<K>shots/seed<S> and
    evaluation/<trainer>/<config>_<K>shots/<target dataset>/seed<S>; a folder that follows none of
    them gets in_layout False (protocol = its path under the root, the other fields empty)."""
    parts = os.path.relpath(run_dir, root).replace(os.sep, "/").split("/")
    seed_match = SEED_DIR_RE.match(parts[-1])
    seed = int(seed_match.group(1)) if seed_match else None
    if seed_match and len(parts) >= 5 and SHOTS_DIR_RE.match(parts[-4]):
        dataset, shots_dir, trainer, config = parts[-5:-1]
        return dict(protocol=_protocol_name(root, parts[:-5]), dataset=dataset,
                    shots=SHOTS_DIR_RE.match(shots_dir).group(1), trainer=trainer, config=config, seed=seed)
    if seed_match and len(parts) >= 4 and CONFIG_SHOTS_RE.match(parts[-3]):  # evaluation/<T>/<cfg>_<K>shots/<ds>
        config, shots = CONFIG_SHOTS_RE.match(parts[-3]).groups()
        return dict(protocol=_protocol_name(root, parts[:-4]), dataset=parts[-2], shots=shots, trainer=parts[-4],
                    config=config, seed=seed)
    if seed_match and len(parts) >= 4 and CONFIG_SHOTS_RE.match(parts[-2]):  # <ds>/<T>/<cfg>_<K>shots
        config, shots = CONFIG_SHOTS_RE.match(parts[-2]).groups()
        return dict(protocol=_protocol_name(root, parts[:-4]), dataset=parts[-4], shots=shots, trainer=parts[-3],
                    config=config, seed=seed)
    return dict(protocol="/".join(parts), dataset="", shots="", trainer="", config="", seed=seed, in_layout=False)


def find_runs(root):
    if not os.path.isdir(root):
        raise MissingFileError(f"Output folder not found: {root}. Pass the root of a CoOp-style output tree "
                               f"(the --output-dir folders of train.py lie below it).")
    runs = []
    for folder, subfolders, files in os.walk(root):
        # a run that train.py --overwrite put aside (<dir>.overwritten-<time>) is kept, never tabled
        subfolders[:] = sorted(d for d in subfolders if ASIDE_MARK not in d)
        if "log.txt" in files:
            accuracy, per_dataset, problem, text = read_run_details(folder)
            fields = describe_run_path(root, folder)
            dept, base_method = (dept_of_run(folder, fields["trainer"], fields["config"], text)
                                 if fields.get("in_layout", True) else (False, ""))
            runs.append(Run(path=folder, accuracy=accuracy, problem=problem, per_dataset=per_dataset, dept=dept,
                            base_method=base_method, **fields))
    return runs


# ---------------------------------------------------------------------------- grouping
def _shots_key(shots):
    return (0, int(shots), "") if shots.isdigit() else (1, 0, shots)


def _seed_key(seed):
    return (seed is None, seed or 0)


def _base2new_split(protocol):
    """('base2new', 'base') for 'base2new/train_base'; None for other protocols."""
    head, _, stage = protocol.rpartition("/")
    if stage in BASE2NEW_STAGES:
        return head or ".", BASE2NEW_STAGES[stage]
    return None


def _order(key):
    return (key[0], key[1], key[2], _shots_key(key[3])) + tuple(key[4:])


def summarize(runs):
    """{"groups", "averages", "base2new", "base2new_averages", "unfinished", "outside_layout", "per_dataset",
    "dept", "dept_averages", "mvlpt_targets", "mvlpt_averages"}: lists of dicts (docs/tools.md)."""
    outside = [{"path": r.path, "accuracy": r.accuracy, "problem": r.problem} for r in runs if not r.in_layout]
    runs = [r for r in runs if r.in_layout]
    plain, paired, joined, dept = {}, {}, {}, {}
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
        dept[key] = (r.dept, r.base_method) if r.dept else dept.get(key, (False, ""))
        for member, accuracy in r.per_dataset.items():
            joined.setdefault((r.protocol, r.trainer, r.config, r.shots, r.dataset, member), {})[r.seed] = accuracy

    groups, averages = [], {}
    for key in sorted(plain, key=_order):
        protocol, trainer, config, shots, dataset = key
        seeds = dict(sorted(plain[key].items(), key=lambda kv: _seed_key(kv[0])))
        groups.append(dict(protocol=protocol, trainer=trainer, config=config, shots=shots, dataset=dataset,
                           seeds=list(seeds), accuracies=list(seeds.values()), dept=dept[key][0],
                           base_method=dept[key][1], **describe_values(list(seeds.values()))))
        averages.setdefault(key[:4], []).append((dataset, groups[-1]["mean"]))
    average_rows = [
        dict(protocol=k[0], trainer=k[1], config=k[2], shots=k[3], datasets=[d for d, _ in v],
             mean=sum(m for _, m in v) / len(v))
        for k, v in averages.items()
    ]

    b2n_rows, b2n_averages = [], {}
    for key in sorted(paired, key=_order):
        protocol, trainer, config, shots, dataset = key
        row = dict(protocol=protocol, trainer=trainer, config=config, shots=shots, dataset=dataset,
                   dept=dept[key][0], base_method=dept[key][1])
        for side, other, stage in (("base", "new", "test_new"), ("new", "base", "train_base")):
            values = paired[key][side]
            row[side] = describe_values(list(values.values())) if values else None
            row[f"{side}_seeds"] = sorted(values, key=_seed_key)
            row[f"{side}_accuracies"] = [values[s] for s in row[f"{side}_seeds"]]
            for seed in sorted(set(values) - set(paired[key][other]), key=_seed_key):
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

    per_dataset = []
    for key in sorted(joined, key=_order):
        seeds = dict(sorted(joined[key].items(), key=lambda kv: _seed_key(kv[0])))
        per_dataset.append(dict(zip(("protocol", "trainer", "config", "shots", "dataset", "member"), key),
                                seeds=list(seeds), accuracies=list(seeds.values()),
                                **describe_values(list(seeds.values()))))
    dept_rows, dept_averages = dept_comparison(b2n_rows)
    mvlpt_rows, mvlpt_averages = mvlpt_tables(groups)
    return {"groups": groups, "averages": average_rows, "base2new": b2n_rows,
            "base2new_averages": b2n_average_rows, "unfinished": unfinished, "outside_layout": outside,
            "per_dataset": per_dataset, "dept": dept_rows, "dept_averages": dept_averages,
            "mvlpt_targets": mvlpt_rows, "mvlpt_averages": mvlpt_averages}


# ---------------------------------------------------------------------------- DePT against its base method
def _b2n_means(row):
    return None if row is None else {"base": row["base"]["mean"], "new": row["new"]["mean"], "hm": row["hm"]}


def _difference(with_dept, without_dept):
    if with_dept is None or without_dept is None:
        return None
    return {k: with_dept[k] - without_dept[k] for k in ("base", "new", "hm")}


def _baseline_config(configs, dept_config, base_method):
    """(config of the base method's runs to compare with, None) or (None, why there is none)."""
    wanted = dept_config[:-len(DEPT_CONFIG_SUFFIX)] if dept_config.endswith(DEPT_CONFIG_SUFFIX) else dept_config
    if wanted in configs:
        return wanted, None
    if len(configs) == 1:
        return next(iter(configs)), None
    if not configs:
        return None, f"no finished base-to-new runs of {base_method} (DePT off) to compare with"
    return None, (f"{base_method} has several configs ({', '.join(sorted(configs))}) and none is named "
                  f"{wanted}: name the DePT config <base config>{DEPT_CONFIG_SUFFIX}")


def dept_comparison(b2n_rows):
    """Per DePT base-to-new row: the base method's row without DePT, both (base, new, HM) and the delta.

    The base method's run: the same protocol, shots and dataset, trainer = the base method, DePT off,
    config = the DePT config without '_dept' (or the same name for ExtrasLinearProbe*), else the
    base method's only config. Average rows: mean over the datasets that have both, HM of the means."""
    finished = [r for r in b2n_rows if r["hm"] is not None]
    plain = {}  # (protocol, trainer, shots) -> {config: {dataset: row}}
    for r in finished:
        if not r["dept"]:
            plain.setdefault((r["protocol"], r["trainer"], r["shots"]), {}).setdefault(r["config"], {})[r["dataset"]] = r
    rows, groups = [], {}
    for r in finished:
        if not r["dept"]:
            continue
        method = r["base_method"]
        configs = plain.get((r["protocol"], method, r["shots"]), {})
        baseline_config, problem = _baseline_config(configs, r["config"], method)
        baseline = configs.get(baseline_config, {}).get(r["dataset"])
        if baseline_config is not None and baseline is None:
            problem = f"no finished {method}/{baseline_config} base-to-new run on {r['dataset']}"
        without_dept, with_dept = _b2n_means(baseline), _b2n_means(r)
        rows.append(dict(protocol=r["protocol"], base_method=method, trainer=r["trainer"], config=r["config"],
                         baseline_config=baseline_config or "", shots=r["shots"], dataset=r["dataset"],
                         without_dept=without_dept, with_dept=with_dept,
                         delta=_difference(with_dept, without_dept), problem=problem))
        groups.setdefault((r["protocol"], method, r["trainer"], r["config"], r["shots"]), []).append(rows[-1])
    rows.sort(key=lambda row: (row["protocol"], row["base_method"], _shots_key(row["shots"]), row["trainer"],
                               row["config"], row["dataset"]))
    averages = []
    for (protocol, method, trainer, config, shots), members in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], _shots_key(kv[0][4]), kv[0][2], kv[0][3])):
        both = [m for m in members if m["without_dept"] is not None]
        sides = {}
        for side in ("without_dept", "with_dept"):
            if both:
                base = sum(m[side]["base"] for m in both) / len(both)
                new = sum(m[side]["new"] for m in both) / len(both)
                sides[side] = {"base": base, "new": new, "hm": harmonic_mean(base, new)}
            else:
                sides[side] = None
        averages.append(dict(protocol=protocol, base_method=method, trainer=trainer, config=config,
                             baseline_config=next((m["baseline_config"] for m in both), ""), shots=shots,
                             datasets=[m["dataset"] for m in both],
                             without_baseline=[m["dataset"] for m in members if m["without_dept"] is None],
                             delta=_difference(sides["with_dept"], sides["without_dept"]), **sides))
    return rows, averages


# ---------------------------------------------------------------------------- MVLPT's ELEVATER targets
def _plain_name(name):
    return re.sub(r"[^0-9a-z]", "", name.lower())


ELEVATER_BY_PLAIN_NAME = {_plain_name(alias): name for name, aliases in ELEVATER_TARGETS.items()
                          for alias in (name,) + aliases}


def elevater_target(dataset):
    """The ELEVATER name of one of the 12 targets for a dataset folder name ('CIFAR10' -> 'cifar-10'), or None;
    the launchers name folders after the YAML stems (configs/datasets/elevater_cifar10.yaml), prefix dropped."""
    plain = _plain_name(dataset)
    return ELEVATER_BY_PLAIN_NAME.get(plain) or ELEVATER_BY_PLAIN_NAME.get(plain[len("elevater"):]
                                                                       if plain.startswith("elevater") else "")


def is_mvlpt_target_group(group):
    """<root>/mvlpt/target/<dataset>/shots_<K>/MVLPT/<cfg>/seed<S>: protocol ending in 'target', trainer MVLPT."""
    return group["trainer"] == MVLPT_TRAINER and group["protocol"].rsplit("/", 1)[-1] == "target"


def mvlpt_tables(groups):
    """(rows, averages): one row per MVLPT target group (with its ELEVATER name, None for other
    datasets); per (protocol, config, shots) the mean over the 12 targets present, complete only with
    all 12 (the missing ones are named)."""
    rows = [dict(g, target=elevater_target(g["dataset"])) for g in groups if is_mvlpt_target_group(g)]
    columns = {}
    for row in rows:
        if row["target"] is not None:
            columns.setdefault((row["protocol"], row["config"], row["shots"]), {})[row["target"]] = row["mean"]
    averages = []
    for (protocol, config, shots), means in sorted(columns.items(),
                                                   key=lambda kv: (kv[0][0], kv[0][1], _shots_key(kv[0][2]))):
        averages.append(dict(protocol=protocol, trainer=MVLPT_TRAINER, config=config, shots=shots,
                             targets=[t for t in ELEVATER_TARGETS if t in means],
                             missing=[t for t in ELEVATER_TARGETS if t not in means],
                             complete=len(means) == len(ELEVATER_TARGETS), mean=sum(means.values()) / len(means)))
    return rows, averages


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


def _acc(value):
    return _num(value, TABLE_DIGITS)


def _ci(stats):
    if stats is None:
        return "–"
    return _acc(stats["mean"]) + ("" if stats["ci95"] is None else f" ± {_acc(stats['ci95'])}")


def _delta(value):
    return "–" if value is None else f"{value:+.{TABLE_DIGITS}f}"


def _values(accuracies):
    """Per-seed accuracies as the logs print them (one decimal)."""
    return " ".join(_acc(a) for a in accuracies)


def _seeds(seeds):
    return ",".join("?" if s is None else str(s) for s in seeds)


def _plain_markdown(summary):
    lines = ["## Accuracy (%) over seeds", "",
             "accuracies: per seed, as logged; mean, sample std (ddof=1), 95% CI half-width = "
             "t(0.975, n-1) * std / sqrt(n); 'average' = mean over datasets of the per-dataset means.", "",
             "| protocol | trainer | config | shots | dataset | seeds | accuracies | mean | std | 95% CI |",
             "|---|---|---|---|---|---|---|---:|---:|---:|"]
    averages = {(a["protocol"], a["trainer"], a["config"], a["shots"]): a for a in summary["averages"]}
    groups = summary["groups"]
    for i, g in enumerate(groups):
        lines.append(f"| {g['protocol']} | {g['trainer']} | {g['config']} | {g['shots']} | {g['dataset']} "
                     f"| {_seeds(g['seeds'])} | {_values(g['accuracies'])} | {_acc(g['mean'])} | {_acc(g['std'])} "
                     f"| {_acc(g['ci95'])} |")
        key = (g["protocol"], g["trainer"], g["config"], g["shots"])
        following = groups[i + 1] if i + 1 < len(groups) else None
        if following is None or (following["protocol"], following["trainer"], following["config"],
                                 following["shots"]) != key:
            a = averages[key]
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | **average ({plural(len(a['datasets']), 'dataset')})"
                         f"** | | | **{_acc(a['mean'])}** | | |")
    return lines + [""]


def _base2new_markdown(summary):
    lines = ["## Base-to-new accuracy (%)", "",
             "base / new: mean ± 95% CI over seeds; HM = harmonic mean of the mean base and mean new; "
             "'average' rows: mean over datasets, HM of those means.", "",
             "| protocol | trainer | config | shots | dataset | seeds (base/new) | base | new | HM |",
             "|---|---|---|---|---|---|---:|---:|---:|"]
    for r in summary["base2new"]:
        lines.append(f"| {r['protocol']} | {r['trainer']} | {r['config']} | {r['shots']} | {r['dataset']} "
                     f"| {len(r['base_seeds'])}/{len(r['new_seeds'])} | {_ci(r['base'])} | {_ci(r['new'])} "
                     f"| {_acc(r['hm'])} |")
    for a in summary["base2new_averages"]:
        lines.append(f"| {a['protocol']} | {a['trainer']} | {a['config']} | {a['shots']} | **average "
                     f"({plural(len(a['datasets']), 'dataset')})** | | **{_acc(a['base'])}** | **{_acc(a['new'])}** "
                     f"| **{_acc(a['hm'])}** |")
    return lines + [""]


def _three(sides):
    return [_acc(None if sides is None else sides[k]) for k in ("base", "new", "hm")]


def _three_deltas(delta):
    return [_delta(None if delta is None else delta[k]) for k in ("base", "new", "hm")]


def _dept_markdown(summary):
    lines = ["## DePT against its base method (base-to-new, %)", "",
             "Means over seeds; H = harmonic mean of base and new; Δ = with DePT - without. 'average' rows: "
             "over the datasets that have both, H of the averaged base and new.", "",
             "| protocol | base method | DePT run | compared with | shots | dataset | base | new | H "
             "| base (DePT) | new (DePT) | H (DePT) | Δ base | Δ new | Δ H |",
             "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def cells(row):
        return " | ".join(_three(row["without_dept"]) + _three(row["with_dept"]) + _three_deltas(row["delta"]))

    for r in summary["dept"]:
        baseline = f"{r['base_method']}/{r['baseline_config']}" if r["baseline_config"] else "–"
        lines.append(f"| {r['protocol']} | {r['base_method']} | {r['trainer']}/{r['config']} | {baseline} "
                     f"| {r['shots']} | {r['dataset']} | {cells(r)} |")
    for a in (a for a in summary["dept_averages"] if a["datasets"]):
        baseline = f"{a['base_method']}/{a['baseline_config']}" if a["baseline_config"] else "–"
        lines.append(f"| {a['protocol']} | {a['base_method']} | {a['trainer']}/{a['config']} | {baseline} "
                     f"| {a['shots']} | **average ({plural(len(a['datasets']), 'dataset')})** | {cells(a)} |")
    problems = [r for r in summary["dept"] if r["problem"]]
    if problems:
        lines += ["", "Without a run to compare with (left out of the averages):", ""]
        lines += [f"- {r['protocol']} {r['trainer']}/{r['config']} {r['shots']} shots {r['dataset']}: {r['problem']}"
                  for r in problems]
    return lines + [""]


def _per_dataset_markdown(summary):
    lines = ["## Per-dataset accuracy (%) of runs on joined datasets", "",
             "From the engine's '* accuracy on <dataset>' lines (PerDatasetClassification) of each run's result.", "",
             "| protocol | trainer | config | shots | run dataset | dataset | seeds | accuracies | mean | std "
             "| 95% CI |", "|---|---|---|---|---|---|---|---|---:|---:|---:|"]
    for g in summary["per_dataset"]:
        lines.append(f"| {g['protocol']} | {g['trainer']} | {g['config']} | {g['shots']} | {g['dataset']} "
                     f"| {g['member']} | {_seeds(g['seeds'])} | {_values(g['accuracies'])} | {_acc(g['mean'])} "
                     f"| {_acc(g['std'])} | {_acc(g['ci95'])} |")
    return lines + [""]


MVLPT_SHOTS = ("1", "5", "20")


def _mvlpt_markdown(summary):
    lines = []
    tables = {}
    for row in summary["mvlpt_targets"]:
        tables.setdefault((row["protocol"], row["config"]), []).append(row)
    averages = {(a["protocol"], a["config"], a["shots"]): a for a in summary["mvlpt_averages"]}
    for (protocol, config), rows in tables.items():
        shots = sorted(set(MVLPT_SHOTS) | {r["shots"] for r in rows}, key=_shots_key)
        cell = {(r["dataset"], r["shots"]): r for r in rows}
        folders = {}  # ELEVATER name (None: not one of the 12) -> dataset folders
        for r in rows:
            names = folders.setdefault(r["target"], [])
            if r["dataset"] not in names:
                names.append(r["dataset"])
        lines += [f"## MVLPT: accuracy (%) on the ELEVATER targets, {protocol}, config {config}", "",
                  "mean ± 95% CI over seeds; the average is over the 12 targets (incomplete when one is missing: "
                  "then it is the mean of those present).", "",
                  "| target | folder | " + " | ".join(plural(int(k), "shot") if k.isdigit() else k for k in shots)
                  + " |", "|---|---|" + "---:|" * len(shots)]
        others = sorted(d for t, ds in folders.items() if t is None for d in ds)
        for target in list(ELEVATER_TARGETS) + others:
            names = folders.get(target, []) if target in ELEVATER_TARGETS else [target]
            label = target if target in ELEVATER_TARGETS else f"{target} (not one of the 12)"
            if not names:
                lines.append(f"| {label} | – | " + " | ".join("–" for _ in shots) + " |")
            for name in names:
                lines.append(f"| {label} | {name} | "
                             + " | ".join(_ci(cell.get((name, k))) for k in shots) + " |")
        average_cells = []
        for k in shots:
            a = averages.get((protocol, config, k))
            if a is None:
                average_cells.append("–")
            elif a["complete"]:
                average_cells.append(f"**{_acc(a['mean'])}**")
            else:
                average_cells.append(f"**{_acc(a['mean'])}** (incomplete: {len(a['targets'])}/{len(ELEVATER_TARGETS)})")
        lines.append(f"| **average ({len(ELEVATER_TARGETS)} targets)** | | " + " | ".join(average_cells) + " |")
        missing = [(k, averages[(protocol, config, k)]["missing"]) for k in shots
                   if (protocol, config, k) in averages and not averages[(protocol, config, k)]["complete"]]
        if missing:
            lines += [""] + [f"- {plural(int(k), 'shot') if k.isdigit() else k}: missing {', '.join(m)}"
                             for k, m in missing]
        lines.append("")
    return lines


def to_markdown(summary):
    lines = []
    if summary["groups"]:
        lines += _plain_markdown(summary)
    if summary["base2new"]:
        lines += _base2new_markdown(summary)
    if summary.get("dept"):
        lines += _dept_markdown(summary)
    if summary.get("per_dataset"):
        lines += _per_dataset_markdown(summary)
    if summary.get("mvlpt_targets"):
        lines += _mvlpt_markdown(summary)
    if summary["unfinished"]:
        lines += ["## Unfinished or failed runs (not averaged)", ""]
        lines += [f"- `{u['path']}`: {u['problem']}" for u in summary["unfinished"]]
        lines.append("")
    if summary.get("outside_layout"):
        lines += ["## Runs outside the layout (not grouped)", "",
                  "Expected <protocol...>/<dataset>/shots_<K>/<trainer>/<config>/seed<S>/log.txt (or the releases' "
                  "<dataset>/<trainer>/<config>_<K>shots/seed<S>); move or rename these to have them in the tables.",
                  ""]
        lines += [f"- `{u['path']}`: " + (f"accuracy {_acc(u['accuracy'])}" if u["accuracy"] is not None
                                          else u["problem"]) for u in summary["outside_layout"]]
        lines.append("")
    if not lines:
        lines = ["No runs found (no folder with a log.txt).", ""]
    return "\n".join(lines)


CSV_COLUMNS = ["kind", "protocol", "trainer", "config", "shots", "dataset", "member", "target", "n", "seeds",
               "accuracies", "mean", "std", "ci95", "base", "base_ci95", "new", "new_ci95", "hm", "base_method",
               "baseline_config", "dept_base", "dept_new", "dept_hm", "delta_base", "delta_new", "delta_hm",
               "complete", "missing"]
KEYS = ("protocol", "trainer", "config", "shots")


def _seed_columns(g):
    return dict(n=g["n"], seeds=" ".join(map(str, g["seeds"])), accuracies=_values(g["accuracies"]),
                mean=g["mean"], std=g["std"], ci95=g["ci95"])


def _dept_columns(row):
    columns = {}
    for prefix, sides in (("", row["without_dept"]), ("dept_", row["with_dept"]), ("delta_", row["delta"])):
        if sides is not None:
            columns.update({prefix + k: sides[k] for k in ("base", "new", "hm")})
    return columns


def to_csv_rows(summary):
    """One dict per table row; ``kind`` names the table. Numbers unrounded (write_outputs rounds)."""
    rows = []
    for g in summary["groups"]:
        rows.append(dict(kind="dataset", dataset=g["dataset"], **{k: g[k] for k in KEYS}, **_seed_columns(g)))
    for a in summary["averages"]:
        rows.append(dict(kind="average", dataset="average", n=len(a["datasets"]), mean=a["mean"],
                         **{k: a[k] for k in KEYS}))
    for r in summary["base2new"]:
        row = dict(kind="base2new", hm=r["hm"], dataset=r["dataset"], **{k: r[k] for k in KEYS})
        for side in ("base", "new"):
            if r[side]:
                row[side], row[f"{side}_ci95"] = r[side]["mean"], r[side]["ci95"]
        rows.append(row)
    for a in summary["base2new_averages"]:
        rows.append(dict(kind="base2new_average", dataset="average", n=len(a["datasets"]),
                         **{k: a[k] for k in KEYS + ("base", "new", "hm")}))
    for r in summary.get("dept", []):
        rows.append(dict(kind="dept", dataset=r["dataset"], base_method=r["base_method"],
                         baseline_config=r["baseline_config"], **{k: r[k] for k in KEYS}, **_dept_columns(r)))
    for a in summary.get("dept_averages", []):
        rows.append(dict(kind="dept_average", dataset="average", n=len(a["datasets"]), base_method=a["base_method"],
                         baseline_config=a["baseline_config"], **{k: a[k] for k in KEYS}, **_dept_columns(a)))
    for g in summary.get("per_dataset", []):
        rows.append(dict(kind="per_dataset", dataset=g["dataset"], member=g["member"], **{k: g[k] for k in KEYS},
                         **_seed_columns(g)))
    for g in summary.get("mvlpt_targets", []):
        rows.append(dict(kind="mvlpt_target", dataset=g["dataset"], target=g["target"] or "",
                         **{k: g[k] for k in KEYS}, **_seed_columns(g)))
    for a in summary.get("mvlpt_averages", []):
        rows.append(dict(kind="mvlpt_average", dataset="average", n=len(a["targets"]), mean=a["mean"],
                         complete=a["complete"], missing=" ".join(a["missing"]), **{k: a[k] for k in KEYS}))
    return rows


def _csv_value(value):
    if value is None:
        return ""
    return round(value, CSV_DIGITS) if isinstance(value, float) else value


def write_outputs(summary, prefix):
    """<prefix>.md, <prefix>.csv (numbers rounded to CSV_DIGITS) and <prefix>.json (unrounded), each
    written atomically; returns the three paths."""
    paths = [prefix + ".md", prefix + ".csv", prefix + ".json"]
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in to_csv_rows(summary):
        writer.writerow({k: _csv_value(row.get(k)) for k in CSV_COLUMNS})
    for path, text in zip(paths, (to_markdown(summary), table.getvalue(), json.dumps(summary, indent=2))):
        atomic_write(path, lambda f, text=text: f.write(text), mode="w")
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

    try:
        runs = find_runs(args.root)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
