"""The DPL launchers: release-style arguments, resume of unfinished runs, no overwrite of finished ones."""
import json
import os
import subprocess
import sys

import pytest

from clip.tiny import save_tiny_clip

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TEST.BATCH_SIZE", "32",
        "OPTIM.MAX_EPOCH", "1", "TRAIN.PRINT_FREQ", "100"]


def launch(script, *args, env):
    done = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", script), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_search_then_train_with_release_style_arguments(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, DATA=str(tmp_path / "data"),
               CLIP_WEIGHTS=save_tiny_clip(str(tmp_path / "clip.pt"), "ViT"))
    search = tmp_path / "search"
    # "Toy" is the registered name (the release's style); configs/datasets/toy.yaml is found by its NAME.
    launch("trainersupernet/launch_nas.sh", "Toy", search, 1, 4, *FAST,
           "TRAINER.TRAINERSUPERNET.N_CTX_VISION", 2, "TRAINER.TRAINERSUPERNET.N_CTX_TEXT", 2, env=env)
    config = json.loads((search / "searched_config.json").read_text())
    assert config["epoch"] == 1 and (search / "alpha_e1_img.npy").is_file()
    assert f"Loading CLIP (backbone: {env['CLIP_WEIGHTS']})" in (search / "log.txt").read_text()

    again = launch("trainersupernet/launch_nas.sh", "Toy", search, 1, 4, *FAST, env=env)
    assert "finished; not overwriting" in again
    assert not any(name.startswith("log.txt-") for name in os.listdir(search))  # nothing was re-run

    for how in ("alphas", "json"):
        out = tmp_path / f"train_{how}"
        prompt_args = ([search / "alpha_e1_img.npy", search / "alpha_e1_txt.npy"] if how == "alphas"
                       else [search / "searched_config.json"])
        launch("trainersubnet/launch_train.sh", "toy", out, *prompt_args, 1, 4, *FAST, env=env)
        assert (out / "MultiModalPromptLearner" / "model.pth.tar-1").is_file()
        assert "* accuracy:" in (out / "log.txt").read_text()


def test_unknown_dataset_names_are_listed(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, DATA=str(tmp_path))
    done = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "trainersupernet", "launch_nas.sh"),
                           "NoSuchSet", str(tmp_path / "o"), "1", "16"], capture_output=True, text=True, env=env)
    assert done.returncode != 0
    assert "Unknown dataset 'NoSuchSet'" in done.stderr and "caltech101" in done.stderr
