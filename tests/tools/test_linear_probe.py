"""Linear-probe CLIP (tools/linear_probe.py): the release's choice of C, the feature cache, the log."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cli_runner import run_main
from tools import linear_probe, parse_results
from tools.linear_probe import Probe, search_regularisation

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_YAML = os.path.join(REPO_ROOT, "configs", "datasets", "toy.yaml")
LP_YAML = os.path.join(REPO_ROOT, "configs", "trainers", "LinearProbe", "vit_b16.yaml")
GRID = [1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6]


# ---------------------------------------------------------------------------- the search
def test_bisection_follows_the_release_procedure():
    """A val score peaked at C = 10^2.3: sweep peak 1e2, then bisection [10, 1000] -> ... -> 10^2.296875."""
    calls = []

    def score(c):
        calls.append(c)
        return -abs(np.log10(c) - 2.3)

    chosen, history = search_regularisation(score, GRID, steps=8)
    assert calls[:7] == GRID
    assert calls[7:9] == pytest.approx([10.0, 1000.0])  # step 1: peak / 10 and peak * 10
    assert len(history) == 7 + 2 * 8
    assert np.log10(chosen) == pytest.approx(2.296875)


def test_ties_keep_the_first_sweep_value_and_the_left_end():
    chosen, _ = search_regularisation(lambda c: 50.0, GRID, steps=8)
    assert chosen == pytest.approx(1e5)  # sweep: 1e6 (first); each step: the left end, 1e5, stays
    chosen, _ = search_regularisation(lambda c: 50.0, GRID, steps=0)
    assert chosen == 1e6


def blobs(rng, centres, per_class, spread):
    features = np.concatenate([rng.normal(c, spread, (per_class, len(c))) for c in centres])
    return features, np.repeat(np.arange(len(centres)), per_class)


def test_separable_features_reach_100_percent():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 6.0
    train, val, test = (blobs(rng, centres, n, 0.3) for n in (4, 2, 25))
    probe = Probe(train, val, max_iter=1000)
    chosen, history = search_regularisation(probe.val_accuracy, GRID, steps=3)
    features, labels = test
    assert np.mean(probe.classifier(chosen).predict(features) == labels) == 1.0
    assert probe.val_accuracy(chosen) == 100.0


def test_the_chosen_value_is_the_one_the_val_split_favours():
    """Train has 6 images of class 0 near (-1, 0), 2 of class 1 near (1, 0); val holds class-0 images
    just across the middle (0.3, 0). A weak penalty (large C) draws the boundary between the clusters
    and gets val wrong; a strong one leaves the majority's intercept to decide and gets it right."""
    rng = np.random.default_rng(0)
    train = (np.vstack([rng.normal([-1, 0], 0.1, (6, 2)), rng.normal([1, 0], 0.1, (2, 2))]),
             np.array([0] * 6 + [1] * 2))
    val = (rng.normal([0.3, 0], 0.05, (4, 2)), np.zeros(4, dtype=int))
    probe = Probe(train, val, max_iter=1000)
    chosen, history = search_regularisation(probe.val_accuracy, GRID, steps=8)
    assert probe.val_accuracy(1e6) == 0.0 and probe.val_accuracy(1e-6) == 100.0
    assert probe.val_accuracy(chosen) == 100.0
    assert max(score for _, _, score in history) == 100.0
    assert chosen <= 1.0  # on the strongly regularised side of the flip


# ---------------------------------------------------------------------------- the program
@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    from clip.tiny import save_tiny_clip

    return save_tiny_clip(str(tmp_path_factory.mktemp("lp_clip") / "tiny_vit.pt"), arch="ViT")


def run_probe(argv):
    return run_main(lambda args: linear_probe.main(linear_probe.get_parser().parse_args(args)), argv)


def probe_argv(root, out, clip_path, shots, seed=1, *opts):
    return ["--root", root, "--seed", seed, "--dataset-config-file", TOY_YAML, "--config-file", LP_YAML,
            "--output-dir", out, "DATASET.NUM_SHOTS", shots, "MODEL.BACKBONE.PATH", clip_path,
            "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "8",
            "LINEAR_PROBE.SEARCH_STEPS", "2", "USE_CUDA", "False", *opts]


@pytest.mark.slow
def test_features_are_cached_and_the_log_is_read_by_parse_results(tmp_path, clip_path, monkeypatch):
    import clip.model

    calls = []
    forward = clip.model.VisionTransformer.forward

    def counting(self, x, *args, **kwargs):
        calls.append(x.shape[0])
        return forward(self, x, *args, **kwargs)

    monkeypatch.setattr(clip.model.VisionTransformer, "forward", counting)
    root, output = tmp_path / "data", tmp_path / "output"
    run_dir = output / "fewshot" / "toy" / "shots_{}" / "LinearProbe" / "vit_b16" / "seed{}"
    first = run_probe(probe_argv(root, str(run_dir).format(2, 1), clip_path, 2))
    # Toy: 4 classes; 2 shots -> 8 train, val min(2, 4) per class -> 8, test 28
    assert sum(calls) == 8 + 8 + 28 and first["num_test"] == 28

    calls.clear()
    again = run_probe(probe_argv(root, str(run_dir).format(2, 2) + "_again", clip_path, 2))
    assert calls == []  # every split from the cache: the image encoder is never called
    assert again["test_accuracy"] == first["test_accuracy"] and again["chosen_C"] == first["chosen_C"]

    calls.clear()
    run_probe(probe_argv(root, str(run_dir).format(4, 1), clip_path, 4))
    assert sum(calls) == 16 + 16  # other shots: new train and val subsets; the test split is cached

    calls.clear()
    run_probe(probe_argv(root, str(run_dir).format(4, 1) + "_bf16", clip_path, 4, 1, "LINEAR_PROBE.PREC", "bf16"))
    assert sum(calls) == 16 + 16 + 28  # another precision is another key

    cache = root / "clip_features" / "Toy"
    names = sorted(os.listdir(cache))
    assert len(names) == 3 + 2 + 3 and all(n.endswith(".npz") and not n.startswith(".") for n in names)

    log = (tmp_path / str(run_dir).format(2, 1) / "log.txt").read_text()
    assert "* accuracy:" in log and "Elapsed:" in log
    saved = json.loads((tmp_path / str(run_dir).format(2, 1) / "linear_probe.json").read_text())
    assert saved["chosen_C"] == first["chosen_C"] and len(saved["search"]) == 7 + 2 * 2

    runs = [r for r in parse_results.find_runs(str(output)) if r.path.endswith(("seed1",))]
    by_shots = {r.shots: r for r in runs}
    assert set(by_shots) == {"2", "4"}
    run = by_shots["2"]
    assert (run.protocol, run.dataset, run.trainer, run.config, run.seed) == ("fewshot", "toy", "LinearProbe",
                                                                               "vit_b16", 1)
    assert run.accuracy == pytest.approx(round(first["test_accuracy"], 1))


def test_a_changed_cache_entry_is_not_used(tmp_path):
    """The stored identity is checked on read: a file under the right name but of other images is ignored."""
    identity = {"split": "test", "items": "a"}
    path = str(tmp_path / "f.npz")
    linear_probe.write_cached(path, identity, np.ones((2, 3), np.float32), np.array([0, 1]))
    features, labels = linear_probe.read_cached(path, identity, np.array([0, 1]))
    assert features.shape == (2, 3) and list(labels) == [0, 1]
    assert linear_probe.read_cached(path, dict(identity, items="b"), np.array([0, 1])) is None
    assert linear_probe.read_cached(path, identity, np.array([1, 0])) is None
    assert os.listdir(tmp_path) == ["f.npz"]  # written by rename: no temporary file left


STUB_PYTHON = """#!/bin/bash
# stands for python: records the linear probe's arguments and writes a finished log into --output-dir;
# anything else (the launchers' own helper) runs in the real interpreter
if [ "$2" != "tools.linear_probe" ]; then exec "$REAL_PYTHON" "$@"; fi
while [ $# -gt 0 ]; do
    if [ "$1" = "--output-dir" ]; then out=$2; fi
    echo "$1" >> "$CALLS"; shift
done
echo "---" >> "$CALLS"
mkdir -p "$out" && printf '* accuracy: 50.0%%\\nElapsed: 0:00:01\\n' > "$out/log.txt"
"""


def test_the_script_runs_every_shot_and_seed_with_the_dataset_forms(tmp_path):
    stub = tmp_path / "python"
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    calls = tmp_path / "calls.txt"
    env = dict(os.environ, PYTHON=str(stub), CALLS=str(calls), DATA=str(tmp_path / "data"),
               OUTPUT=str(tmp_path / "out"), CLIP_WEIGHTS="/weights/clip.pt", SHOTS="1 16", SEEDS="1 2",
               OVERWRITE="1", REAL_PYTHON=sys.executable)
    args = ["bash", os.path.join(REPO_ROOT, "scripts", "lpclip", "linear_probe.sh"), "OxfordPets",
            "LINEAR_PROBE.PREC", "bf16"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = [run.strip().split("\n") for run in calls.read_text().split("---") if run.strip()]
    assert len(runs) == 4
    first = runs[0]
    assert first[:2] == ["-m", "tools.linear_probe"] and "--overwrite" in first
    assert first[first.index("--output-dir") + 1] == str(tmp_path / "out" / "fewshot" / "oxford_pets" / "shots_1"
                                                           / "LinearProbe" / "vit_b16" / "seed1")
    assert first[first.index("--config-file") + 1].endswith("configs/trainers/LinearProbe/vit_b16.yaml")
    assert first[first.index("--dataset-config-file") + 1].endswith("configs/datasets/oxford_pets.yaml")
    tail = first[first.index("DATASET.NUM_SHOTS"):]
    assert tail == ["DATASET.NUM_SHOTS", "1", "MODEL.BACKBONE.PATH", "/weights/clip.pt", "LINEAR_PROBE.PREC", "bf16"]
    assert [r[r.index("DATASET.NUM_SHOTS") + 1] + "/" + r[r.index("--seed") + 1] for r in runs] == \
        ["1/1", "1/2", "16/1", "16/2"]
    summary = parse_results.summarize(parse_results.find_runs(str(tmp_path / "out")))
    assert [(g["trainer"], g["shots"], g["seeds"]) for g in summary["groups"]] == \
        [("LinearProbe", "1", [1, 2]), ("LinearProbe", "16", [1, 2])]


def test_a_finished_probe_is_skipped_and_other_settings_are_refused(tmp_path, clip_path):
    out = tmp_path / "out"
    first = run_probe(probe_argv(tmp_path / "data", str(out), clip_path, 2))
    assert (out / "run_complete.json").is_file() and (out / "run_settings.json").is_file()
    again = run_probe(probe_argv(tmp_path / "data", str(out), clip_path, 2))
    assert again["test_accuracy"] == first["test_accuracy"]  # the recorded result, nothing recomputed
    from dassl.utils import ConfigError

    with pytest.raises(ConfigError, match="DATASET.NUM_SHOTS: 2 -> 4"):
        run_probe(probe_argv(tmp_path / "data", str(out), clip_path, 4))


def test_bad_precision_is_an_input_error(tmp_path, clip_path):
    from dassl.utils import ConfigError

    argv = probe_argv(tmp_path, tmp_path / "o", clip_path, 1, 1, "LINEAR_PROBE.PREC", "fp16")
    with pytest.raises(ConfigError, match=r"LINEAR_PROBE.PREC is 'fp16'; expected one of \['fp32', 'bf16'\]"):
        linear_probe.setup_cfg(linear_probe.get_parser().parse_args([str(a) for a in argv]))
