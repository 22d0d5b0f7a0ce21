"""tools/report.py: the HTML page of a tree of real tiny train.py runs, rendered in headless Chromium."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_train
from tools import report
from tools.parse_results import find_runs, summarize

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_YAML = os.path.join(REPO_ROOT, "configs", "datasets", "toy.yaml")
SUPERNET_YAML = os.path.join(REPO_ROOT, "configs", "trainers", "TrainerSupernet", "fewshot.yaml")
FAST = ["INPUT.SIZE", "(32, 32)", "INPUT.TRANSFORMS", "['normalize']", "DATALOADER.NUM_WORKERS", "0",
        "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATALOADER.TEST.BATCH_SIZE", "64", "DATASET.NUM_SHOTS", "2",
        "OPTIM.MAX_EPOCH", "2", "TRAIN.PRINT_FREQ", "1000", "USE_CUDA", "False"]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")




@pytest.fixture(scope="module")
def output_tree(tmp_path_factory):
    """Real runs on Toy with a tiny CLIP: CoOp few-shot (2 seeds, predictions), a base-to-new pair, a DPL
    search; plus an interrupted run and a Grad-CAM figure."""
    from clip.tiny import save_tiny_clip

    base = tmp_path_factory.mktemp("report")
    clip_path = save_tiny_clip(str(base / "tiny.pt"))
    root = base / "output"
    common = ["--root", base / "data", "--dataset-config-file", TOY_YAML]
    fewshot = root / "fewshot" / "toy" / "shots_2" / "CoOp" / "tiny"
    for seed in (1, 2):
        run_train([*common, "--trainer", "CoOp", "--seed", seed, "--output-dir", fewshot / f"seed{seed}", *FAST,
                   "MODEL.BACKBONE.PATH", clip_path, "TRAINER.COOP.N_CTX", "2", "TEST.SAVE_PREDICTIONS", "True"])
    b2n = root / "base2new"
    train_base = b2n / "train_base" / "toy" / "shots_2" / "CoOp" / "tiny" / "seed1"
    run_train([*common, "--trainer", "CoOp", "--seed", 1, "--output-dir", train_base, *FAST, "OPTIM.MAX_EPOCH", "1",
               "MODEL.BACKBONE.PATH", clip_path, "TRAINER.COOP.N_CTX", "2", "DATASET.SUBSAMPLE_CLASSES", "base"])
    run_train([*common, "--trainer", "CoOp", "--seed", 1, "--output-dir",
               b2n / "test_new" / "toy" / "shots_2" / "CoOp" / "tiny" / "seed1", "--eval-only", "--model-dir",
               train_base, "--load-epoch", 1, *FAST, "MODEL.BACKBONE.PATH", clip_path, "TRAINER.COOP.N_CTX", "2",
               "DATASET.SUBSAMPLE_CLASSES", "new"])
    run_train([*common, "--trainer", "TrainerSupernet", "--config-file", SUPERNET_YAML, "--seed", 1, "--output-dir",
               root / "search" / "toy" / "shots_2" / "TrainerSupernet" / "fewshot" / "seed1", *FAST,
               "OPTIM.MAX_EPOCH", "1", "MODEL.BACKBONE.PATH", clip_path, "TRAINER.TRAINERSUPERNET.N_CTX_VISION", "2",
               "TRAINER.TRAINERSUPERNET.N_CTX_TEXT", "2", "TRAINER.TRAINERSUPERNET.VAL_BATCH_SIZE", "4"])
    # a run killed during its first epoch: the head of a real log, up to its first progress line
    log = (fewshot / "seed1" / "log.txt").read_text()
    killed = fewshot / "seed3"
    killed.mkdir()
    (killed / "log.txt").write_text(log[: log.index("\n", log.index("epoch [1/2]")) + 1])
    figure = np.zeros((40, 120, 3), dtype=np.uint8)
    figure[:, :60] = (250, 20, 20)
    Image.fromarray(figure).save(root / "gradcam_toy.png")
    return root


def chromium_binary():
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium(args, profile):
    binary = chromium_binary()
    if binary is None:
        pytest.skip(f"no headless browser: none of {CHROMIUM_NAMES} is on PATH (.ci/run installs Debian's "
                    "chromium; or apt-get install -y chromium)")
    done = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_the_page_holds_every_section_and_renders(output_tree, tmp_path):
    assert report.main([str(output_tree)]) == 0
    page = output_tree / "report.html"
    text = page.read_text()

    # self-contained: no script, nothing fetched; every image is an embedded PNG
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", text)
    sources = re.findall(r"""<img [^>]*src="([^"]+)\"""", text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for section in ("Results", "Base-to-new", "Searched configurations", "Convergence", "Alpha evolution",
                    "Per-class accuracy", "Grad-CAM", "Unfinished or failed runs"):
        assert section in text, section
    # searched configuration, 2 training-curve figures (few-shot and train_base) + the search's, the alpha
    # evolution, the Grad-CAM figure
    assert len(sources) == 6

    shot = tmp_path / "shot.png"
    chromium([f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()], tmp_path / "profile")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1200)
    assert pixels.var() > 200 and (pixels < 128).mean() > 0.01  # text, tables and figures, not a blank page

    dom = chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    summary = summarize(find_runs(str(output_tree)))
    (group,) = [g for g in summary["groups"] if g["protocol"] == "fewshot"]  # the search has its own group
    cells = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
    row = f"fewshot CoOp tiny 2 toy 1,2 {group['mean']:.2f} {group['std']:.2f} {group['ci95']:.2f}"
    assert row in cells
    (pair,) = summary["base2new"]
    assert f"base2new CoOp tiny 2 toy 1/1 {pair['base']['mean']:.2f}" in cells
    assert f"{pair['new']['mean']:.2f} – {pair['hm']:.2f}" in cells  # new, its std (one seed), H
    assert "seed3" in cells and "training not finished" in cells
    for classname in ("red circle", "green square", "blue triangle", "yellow cross"):
        assert classname in cells
    # the Grad-CAM figure is the file as it is
    import base64

    embedded = base64.b64decode(sources[-1].split(",", 1)[1])
    assert embedded == (output_tree / "gradcam_toy.png").read_bytes()


@pytest.mark.slow
def test_out_elsewhere_and_an_atomic_rewrite(output_tree, tmp_path):
    out = tmp_path / "pages" / "r.html"
    assert report.main([str(output_tree), "--out", str(out), "--title", "Toy runs"]) == 0
    text = out.read_text()
    assert "<title>Toy runs</title>" in text
    assert not [name for name in os.listdir(out.parent) if name != "r.html"]  # no temporary file left


def test_a_tree_without_finished_runs_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report.main([str(empty)]) == 2
    err = capsys.readouterr().err
    assert f"No finished run under {empty}: found no folder with a log.txt" in err
    assert "<root>/<protocol>/<dataset>/shots_<K>/<trainer>/<config>/seed<S>/" in err
    run = tmp_path / "tree" / "fewshot" / "toy" / "shots_2" / "CoOp" / "tiny" / "seed1"
    run.mkdir(parents=True)
    (run / "log.txt").write_text("epoch [1/5] batch [1/4] time 0.1 (0.1) loss 1.0 (1.0) acc 50.0 (50.0)\n")
    assert report.main([str(tmp_path / "tree")]) == 2
    err = capsys.readouterr().err
    assert "found 1 run(s), none finished (fewshot/toy/shots_2/CoOp/tiny/seed1: log.txt: training not finished" in err
    assert not (tmp_path / "tree" / "report.html").exists() and not (empty / "report.html").exists()
    assert report.main([str(tmp_path / "missing")]) == 2
    assert "Output folder not found" in capsys.readouterr().err


def test_epoch_curves_take_the_last_line_of_each_epoch_and_resumed_logs(tmp_path):
    lines = ["epoch [1/2] batch [1/2] time 0.1 (0.1) data 0.0 (0.0) loss 2.0000 (2.0000) acc 10.0 (10.0) lr 1e-3",
             "epoch [1/2] batch [2/2] time 0.1 (0.1) data 0.0 (0.0) loss 1.0000 (1.5000) acc 30.0 (20.0) lr 1e-3"]
    (tmp_path / "log.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "log.txt-2026-01-01-00-00-00").write_text(
        "epoch [2/2] batch [2/2] time 0.1 (0.1) data 0.0 (0.0) loss 0.5000 (0.7500) acc 60.0 (55.0) lr 1e-4\n")
    assert report.epoch_curves(str(tmp_path)) == {"loss": {1: 1.5, 2: 0.75}, "acc": {1: 20.0, 2: 55.0}}
