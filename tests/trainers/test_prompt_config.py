"""Search-output files (trainers/prompt_config.py): what the search writes, read back without torch,
and written atomically (a write that fails leaves the previous file whole)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from trainers import prompt_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LN3 = float(np.log(3.0))
# image: 2 blocks x options 0..1, text: 3 blocks x options 0..2
EPOCHS = {
    0: {"image": np.zeros((2, 2), "f4"), "text": np.zeros((3, 3), "f4")},
    1: {"image": np.array([[0, LN3], [LN3, 0]], "f4"), "text": np.array([[9, 0, 0], [0, 9, 0], [0, 0, 9]], "f4")},
}


class _Crash(Exception):
    pass


def test_a_failed_alpha_write_keeps_the_previous_file_and_leaves_no_partial_one(tmp_path, monkeypatch):
    first = {"image": np.zeros((2, 3), "f4"), "text": np.ones((3, 3), "f4")}
    paths = prompt_config.save_alphas(str(tmp_path), 1, first)
    real_save = np.save

    def crashing_save(f, array, *args, **kwargs):
        f.write(b"\x93NUMPY partial")  # half a file, then the process dies
        raise _Crash()

    monkeypatch.setattr(np, "save", crashing_save)
    with pytest.raises(_Crash):
        prompt_config.save_alphas(str(tmp_path), 1, {"image": first["image"] + 5, "text": first["text"] + 5})
    monkeypatch.setattr(np, "save", real_save)
    np.testing.assert_array_equal(np.load(paths["image"]), first["image"])
    np.testing.assert_array_equal(np.load(paths["text"]), first["text"])
    assert sorted(os.listdir(tmp_path)) == ["alpha_e1_img.npy", "alpha_e1_txt.npy"]


def test_a_failed_searched_config_write_keeps_the_previous_json(tmp_path, monkeypatch):
    path = str(tmp_path / "searched_config.json")
    prompt_config.write_json(path, {"epoch": 1})

    def crashing_dumps(obj, **kwargs):
        raise _Crash()

    monkeypatch.setattr(json, "dumps", crashing_dumps)
    with pytest.raises(_Crash):
        prompt_config.write_json(path, {"epoch": 2})
    monkeypatch.undo()
    assert json.load(open(path)) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["searched_config.json"]


def test_writes_go_through_a_temporary_file_renamed_into_place(tmp_path, monkeypatch):
    renames = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renames.append((os.path.dirname(src), os.path.basename(dst), os.path.getsize(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    prompt_config.save_alphas(str(tmp_path), 3, {"image": np.zeros((2, 3), "f4"), "text": np.zeros((3, 3), "f4")})
    prompt_config.write_json(str(tmp_path / "searched_config.json"), {"epoch": 3})
    assert [(d, n) for d, n, _ in renames] == [(str(tmp_path), "alpha_e3_img.npy"), (str(tmp_path), "alpha_e3_txt.npy"),
                                               (str(tmp_path), "searched_config.json")]
    assert all(size > 0 for _, _, size in renames)  # complete before the rename


def test_search_outputs_and_summary_are_the_documented_files(tmp_path, monkeypatch):
    renamed = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renamed.append((os.path.dirname(src), os.path.basename(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    for epoch, alphas in EPOCHS.items():
        config = prompt_config.write_search_outputs(str(tmp_path), epoch, alphas, margin=0.1)
    history = prompt_config.write_search_summary(str(tmp_path), margin=0.1)

    assert sorted(os.listdir(tmp_path)) == ["alpha_e0.png", "alpha_e0_img.npy", "alpha_e0_txt.npy", "alpha_e1.png",
                                            "alpha_e1_img.npy", "alpha_e1_txt.npy", "convergence.png",
                                            "search_history.json", "searched_config.json"]
    assert {d for d, _ in renamed} == {str(tmp_path)} and {n for _, n in renamed} == set(os.listdir(tmp_path))
    assert json.loads((tmp_path / "searched_config.json").read_text()) == config
    assert config["epoch"] == 1
    assert config["image"]["prompt_lengths"] == [1, 0] and config["text"]["prompt_lengths"] == [0, 1, 2]
    np.testing.assert_allclose(config["image"]["weights"], [[0.25, 0.75], [0.75, 0.25]], atol=1e-6)
    assert config["image"]["confidence"] == [0.5, 0.5] and config["image"]["dominant_blocks"] == 2
    # epoch 1 against epoch 0: rows [.5 .5] -> [.25 .75] and [.75 .25], L1 distance 0.5 each
    assert history == json.loads((tmp_path / "search_history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1] and history[0]["alpha_difference_img"] == 0.0
    assert history[1]["alpha_difference_img"] == pytest.approx(0.5, abs=1e-6)
    assert (history[0]["dominant_img"], history[1]["dominant_img"], history[1]["dominant_txt"]) == (0, 2, 3)
    with open(tmp_path / "convergence.png", "rb") as f, open(tmp_path / "alpha_e1.png", "rb") as g:
        assert f.read(8) == g.read(8) == b"\x89PNG\r\n\x1a\n"


def test_epochs_are_listed_in_number_order_and_only_as_pairs(tmp_path):
    for epoch in (2, 10, 1):
        prompt_config.save_alphas(str(tmp_path), epoch, EPOCHS[1])
    np.save(tmp_path / "alpha_e11_img.npy", np.zeros((2, 2)))  # its text file is missing
    for stray in ("alpha_e01_img.npy", "alpha_e01_txt.npy", "alpha_e3.png", "xalpha_e4_img.npy"):
        (tmp_path / stray).write_bytes(b"")
    assert prompt_config.alpha_epochs(str(tmp_path)) == [1, 2, 10]
    assert list(prompt_config.load_search_alphas(str(tmp_path))) == [1, 2, 10]
    assert prompt_config.alpha_epochs(str(tmp_path / "missing")) == []
    with pytest.raises(FileNotFoundError, match="TrainerSupernet"):
        prompt_config.load_search_alphas(str(tmp_path / "missing"))


def test_prompt_lengths_from_a_folder_a_file_or_alpha_files_are_checked(tmp_path):
    prompt_config.save_alphas(str(tmp_path), 0, EPOCHS[0])
    prompt_config.save_alphas(str(tmp_path), 1, EPOCHS[1])
    expected = {"image": [1, 0], "text": [0, 1, 2]}
    assert prompt_config.read_prompt_lengths(str(tmp_path)) == expected  # no searched_config.json: last epoch
    prompt_config.write_json(str(tmp_path / "searched_config.json"), {"image": {"prompt_lengths": [3, 3]},
                                                                        "text": {"prompt_lengths": [0, 0, 0]}})
    assert prompt_config.read_prompt_lengths(str(tmp_path)) == {"image": [3, 3], "text": [0, 0, 0]}
    with pytest.raises(ValueError, match="image prompt_lengths has 2 entries, but the loaded CLIP's image encoder"):
        prompt_config.read_prompt_config(str(tmp_path / "searched_config.json"), {"image": 12, "text": 3})
    with pytest.raises(ValueError, match="text encoder has 12 blocks"):
        prompt_config.prompt_lengths_from_alphas(prompt_config.alpha_path(str(tmp_path), 1, "image"),
                                                 prompt_config.alpha_path(str(tmp_path), 1, "text"),
                                                 {"image": 2, "text": 12})
    with pytest.raises(ValueError, match="blocks, N \\+ 1"):
        prompt_config.softmax_rows(np.zeros(3))


READ_WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None  # every `import torch` from here on raises ImportError
import trainers.prompt_config as pc
from tools import compare_configs, plot_alpha
folder = sys.argv[1]
assert "matplotlib" not in sys.modules  # imported only when a figure is drawn
alphas = pc.load_search_alphas(folder)
pc.write_search_outputs(folder + "/again", 0, {"image": alphas[1][0], "text": alphas[1][1]}, 0.1)
compare_configs.analyse(pc.read_prompt_lengths(folder), compare_configs.Backbone(4, 2, 5, 3, 2, 3, 2, 2))
plot_alpha.main(["heatmap", folder, "--epoch", "0", "--out", folder + "/heatmap.png"])
print(json.dumps({"epochs": list(alphas), "lengths": pc.read_prompt_lengths(folder),
                  "history": [h["epoch"] for h in pc.search_history(folder, 0.1)],
                  "again": pc.read_prompt_config(folder + "/again/searched_config.json", {"image": 2, "text": 3})}))
"""


def test_search_folders_are_read_and_written_without_torch(tmp_path):
    for epoch, alphas in EPOCHS.items():
        prompt_config.save_alphas(str(tmp_path), epoch, alphas)
    done = subprocess.run([sys.executable, "-c", READ_WITHOUT_TORCH, str(tmp_path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = {"image": [1, 0], "text": [0, 1, 2]}
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"epochs": [0, 1], "lengths": expected,
                                                                 "history": [0, 1], "again": expected}
