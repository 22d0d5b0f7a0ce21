"""Search-output files are written atomically: a write that fails leaves the previous file whole."""
import json
import os

import numpy as np
import pytest

from trainers import prompt_config


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
