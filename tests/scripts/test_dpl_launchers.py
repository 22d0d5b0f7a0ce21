"""The launchers with the real train.py on tiny data and a tiny CLIP: the DPL stages with the
release's arguments, the dataset forms, DePT's base-to-new pair; and, with the run records of
dassl/engine/run_record.py (the runs branch), skipping finished runs and OVERWRITE=1."""
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from clip.tiny import save_tiny_clip

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "32",
        "OPTIM.MAX_EPOCH", "1", "TRAIN.PRINT_FREQ", "100"]
ZS_FAST = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "TRAINER.ZSCLIP.PREC", "fp32"]
needs_run_records = pytest.mark.skipif(
    not os.path.isfile(os.path.join(REPO_ROOT, "dassl", "engine", "run_record.py")),
    reason="needs train.py's run records (dassl/engine/run_record.py, the runs branch)")


def launch(script, *args, env, cwd=None, ok=True):
    done = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", script), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    if ok:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.fixture
def env(tmp_path, launch_cache):
    return dict(os.environ, PYTHON=sys.executable, DATA=str(tmp_path / "data"), OUTPUT=str(tmp_path / "out"),
                CLIP_WEIGHTS=save_tiny_clip(str(tmp_path / "clip.pt"), "ViT"), LAUNCH_CACHE=launch_cache)


def search(env, directory):
    # "Toy" is the registered name (the release's style); configs/datasets/toy.yaml is found by its NAME.
    return launch("trainersupernet/launch_nas.sh", "Toy", directory, 1, 4, *FAST,
                  "TRAINER.TRAINERSUPERNET.N_CTX_VISION", 2, "TRAINER.TRAINERSUPERNET.N_CTX_TEXT", 2, env=env)


@pytest.mark.slow
def test_search_then_train_with_release_style_arguments(tmp_path, env):
    directory = tmp_path / "search"
    search(env, directory)
    config = json.loads((directory / "searched_config.json").read_text())
    assert config["epoch"] == 1 and (directory / "alpha_e1_img.npy").is_file()
    assert f"Loading CLIP (backbone: {env['CLIP_WEIGHTS']})" in (directory / "log.txt").read_text()

    for how in ("alphas", "json"):
        out = tmp_path / f"train_{how}"
        prompt_args = ([directory / "alpha_e1_img.npy", directory / "alpha_e1_txt.npy"] if how == "alphas"
                       else [directory / "searched_config.json"])
        launch("trainersubnet/launch_train.sh", "toy", out, *prompt_args, 1, 4, *FAST, env=env)
        assert (out / "MultiModalPromptLearner" / "model.pth.tar-1").is_file()
        assert "* accuracy:" in (out / "log.txt").read_text()


@pytest.mark.slow
def test_zero_shot_on_a_registered_name_and_on_a_joined_image_folder(tmp_path, env):
    for c, colour in [("rose", (200, 0, 0)), ("daisy", (0, 0, 200))]:
        os.makedirs(tmp_path / "data" / "flowers" / c)
        for i in range(6):
            Image.new("RGB", (32, 32), colour).save(tmp_path / "data" / "flowers" / c / f"{i}.png")
    (tmp_path / "flowers.yaml").write_text('DATASET:\n  NAME: "ImageFolder"\n  IMAGE_FOLDER:\n    DIR: "flowers"\n')

    launch("zsclip/zeroshot.sh", "TOY", "vit_b16", *ZS_FAST, env=env)
    assert "* accuracy:" in (tmp_path / "out" / "ZeroshotCLIP" / "vit_b16" / "toy" / "log.txt").read_text()

    launch("zsclip/zeroshot.sh", "toy,flowers.yaml", "vit_b16", *ZS_FAST, env=env, cwd=str(tmp_path))
    log = (tmp_path / "out" / "ZeroshotCLIP" / "vit_b16" / "toy+flowers" / "log.txt").read_text()
    assert "accuracy on Toy:" in log and "accuracy on ImageFolder:" in log


@pytest.mark.slow
def test_dept_base_to_new_trains_then_evaluates_the_new_classes(tmp_path, env):
    env = dict(env, SHOTS="2")
    opts = FAST + ["TRAINER.COOP.PREC", "fp32", "DATALOADER.TRAIN_X.BATCH_SIZE", "8"]
    launch("dept/base2new_train.sh", "coop", "toy", 1, *opts, env=env)
    common = "toy/shots_2/ExtrasLinearProbeCoOp/vit_b16_ep10_bs4_lr35/seed1"
    train = tmp_path / "out" / "base2new" / "train_base" / common
    assert (train / "head" / "model.pth.tar-1").is_file() and (train / "PromptLearner" / "model.pth.tar-1").is_file()
    launch("dept/base2new_test.sh", "coop", "toy", 1, *opts, env=env)
    log = (tmp_path / "out" / "base2new" / "test_new" / common / "log.txt").read_text()
    assert "* accuracy:" in log and "SUBSAMPLE_CLASSES: new" in log


@needs_run_records
@pytest.mark.slow
def test_finished_stage_is_skipped_by_train_py_and_overwrite_runs_it_again(tmp_path, env):
    directory = tmp_path / "search"
    search(env, directory)
    again = search(env, directory)
    assert "already finished with these settings; skipping" in again.stdout
    assert not any(name.startswith("log.txt-") for name in os.listdir(directory))  # nothing was re-run

    other = launch("trainersupernet/launch_nas.sh", "Toy", directory, 1, 4, *FAST, env=env, ok=False)
    assert other.returncode == 2 and "N_CTX_VISION" in other.stderr  # other settings: refused, differences named

    fresh = search(dict(env, OVERWRITE="1"), directory)
    assert "already finished" not in fresh.stdout
    assert subprocess.run([sys.executable, "-m", "dassl.engine.run_record", "finished", str(directory)],
                          cwd=REPO_ROOT).returncode == 0


@needs_run_records
@pytest.mark.slow
def test_evaluation_stage_refuses_an_unfinished_training_run(tmp_path, env):
    model = tmp_path / "out" / "base2new" / "train_base" / "toy" / "shots_16" / "MaPLe" / "vit_b16_c2_ep5_batch4_2ctx"
    (model / "seed1" / "MultiModalPromptLearner").mkdir(parents=True)
    (model / "seed1" / "MultiModalPromptLearner" / "model.pth.tar-2").write_bytes(b"")  # no completion record
    done = launch("maple/base2new_test_maple.sh", "toy", 1, env=env, ok=False)
    assert done.returncode == 2 and "no finished run in" in done.stderr
