"""Run records (dassl/engine/run_record.py) and what train.py does with a folder that holds a run:
the same settings finished -> skip, other settings -> refused with the differences, --overwrite ->
afresh with the old run kept aside; options after the overrides; --allow-untrained."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from dassl.engine import run_record

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY_YAML = os.path.join(REPO_ROOT, "configs", "datasets", "toy.yaml")
FAST_OPTS = ["INPUT.SIZE", "(32, 32)", "INPUT.TRANSFORMS", "['normalize']", "DATALOADER.NUM_WORKERS", "0",
             "DATASET.NUM_SHOTS", "2", "OPTIM.MAX_EPOCH", "1", "USE_CUDA", "False", "TRAIN.PRINT_FREQ", "100"]


@pytest.fixture(autouse=True)
def own_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DPL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DPL_DEBUG", raising=False)


# ----------------------------------------------------------------------------- the module
def settings(config, weights_sha="w1", inputs=None):
    return run_record.make_settings(config, {"path": "/w.pt", "sha256": weights_sha}, inputs or {}, command=[])


def test_compare_lists_differences_and_skips_settings_that_cannot_change_results():
    base = {"OPTIM": {"MAX_EPOCH": 10, "LR": 0.002}, "OUTPUT_DIR": "a", "DATALOADER": {"NUM_WORKERS": 4},
            "TRAIN": {"PRINT_FREQ": 5}}
    same = json.loads(json.dumps(base))
    same.update(OUTPUT_DIR="b", DATALOADER={"NUM_WORKERS": 0}, TRAIN={"PRINT_FREQ": 1})
    assert run_record.compare(settings(base), settings(same)) == []
    other = json.loads(json.dumps(base))
    other["OPTIM"]["MAX_EPOCH"] = 20
    assert run_record.compare(settings(base), settings(other, weights_sha="w2")) == [
        "CLIP weights: /w.pt (sha256 w1) -> /w.pt (sha256 w2)", "OPTIM.MAX_EPOCH: 10 -> 20"]
    assert {"OUTPUT_DIR", "DATALOADER.NUM_WORKERS", "TRAIN.PRINT_FREQ"} <= set(run_record.NOT_COMPARED)


def test_input_files_are_compared_by_content_not_by_path(tmp_path):
    first, copy, other = tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "c.npy"
    first.write_bytes(b"alphas")
    copy.write_bytes(b"alphas")
    other.write_bytes(b"other alphas")
    key = "TRAINER.TRAINERSUBNET.IMG_ALPHA_PATH"

    def with_file(path):
        return settings({"TRAINER": {"TRAINERSUBNET": {"IMG_ALPHA_PATH": str(path)}}},
                        inputs={key: run_record.file_identity(str(path))})

    assert run_record.compare(with_file(first), with_file(copy)) == []
    [line] = run_record.compare(with_file(first), with_file(other))
    assert line.startswith(f"{key}: {first} (sha256 ") and f"-> {other} (sha256 " in line


def test_sha256_is_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"x" * 1000)
    calls = []
    real = run_record._hash_file
    monkeypatch.setattr(run_record, "_hash_file", lambda p: calls.append(p) or real(p))
    digest = run_record.sha256(str(path))
    assert run_record.sha256(str(path)) == digest and len(calls) == 1  # the second time from the cache
    path.write_bytes(b"y" * 1000)
    os.utime(path, ns=(1, 1))  # another mtime: hashed again
    assert run_record.sha256(str(path)) != digest and len(calls) == 2


def test_decide_and_move_aside(tmp_path):
    folder = tmp_path / "seed1"
    requested = settings({"OPTIM": {"MAX_EPOCH": 2}})
    assert run_record.decide(str(folder), requested) == ("new", [])
    run_record.write_settings(str(folder), requested)
    assert run_record.decide(str(folder), requested)[0] == "resume"
    run_record.write_completion(str(folder), "train", result={"value": 50.0})
    assert run_record.decide(str(folder), requested)[0] == "skip"
    with pytest.raises(ValueError, match=r"holds a finished run with other settings(.|\n)*OPTIM.MAX_EPOCH: 2 -> 3"):
        run_record.decide(str(folder), settings({"OPTIM": {"MAX_EPOCH": 3}}))
    action, [note] = run_record.decide(str(folder), requested, overwrite=True)
    assert action == "new" and not folder.exists()
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("seed1.overwritten-")]
    assert str(aside) in note and (aside / run_record.COMPLETE_FILE).exists()


def test_finished_command_for_shell_scripts(tmp_path):
    command = [sys.executable, "-m", "dassl.engine.run_record", "finished", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    run_record.write_completion(str(tmp_path), "eval")
    done = subprocess.run(command + ["-v"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "finished" in done.stdout


# ----------------------------------------------------------------------------- options after overrides
def test_options_after_the_overrides_are_taken_as_options():
    import train

    args, _ = train.parse_args(["--trainer", "CoOp", "DATASET.NUM_SHOTS", "2", "--output-dir", "X", "OPTIM.LR",
                                "0.1", "--source-domains", "a", "b", "--eval-only", "OPTIM.MAX_EPOCH", "3"])
    assert args.output_dir == "X" and args.source_domains == ["a", "b"] and args.eval_only
    assert args.opts == ["DATASET.NUM_SHOTS", "2", "OPTIM.LR", "0.1", "OPTIM.MAX_EPOCH", "3"]
    with pytest.raises(ValueError, match="Unknown option --outptu-dir among the KEY VALUE overrides"):
        train.parse_args(["--trainer", "CoOp", "OPTIM.LR", "0.1", "--outptu-dir", "X"])


# ----------------------------------------------------------------------------- train.py
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from clip.tiny import save_tiny_clip

    return save_tiny_clip(str(tmp_path_factory.mktemp("clip") / "tiny_vit.pt"))


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def train_py(out, toy_root, clip_path, *opts, flags=()):
    """train.run in this process -> exit status (0 when it returns)."""
    import train
    from dassl.utils import Logger

    argv = ["--root", toy_root, "--trainer", "CoOp", "--seed", "1", "--dataset-config-file", TOY_YAML,
            "--output-dir", out, *flags, *FAST_OPTS, "MODEL.BACKBONE.PATH", clip_path, *opts]
    old_stdout = sys.stdout
    try:
        train.run([str(a) for a in argv])
        return 0
    except SystemExit as stop:
        return stop.code
    finally:
        if isinstance(sys.stdout, Logger):
            sys.stdout.close()
        sys.stdout = old_stdout


def test_a_run_is_skipped_refused_or_overwritten(tmp_path, toy_root, tiny_clip, capsys):
    from clip.tiny import save_tiny_clip

    weights = tmp_path / "weights.pt"
    shutil.copyfile(tiny_clip, weights)
    out = tmp_path / "seed1"
    assert train_py(out, toy_root, weights) == 0
    recorded = json.loads((out / "run_settings.json").read_text())
    assert recorded["config"]["OPTIM"]["MAX_EPOCH"] == 1 and len(recorded["weights"]["sha256"]) == 64
    complete = json.loads((out / "run_complete.json").read_text())
    assert complete["kind"] == "train" and complete["result"]["value"] is not None
    assert complete["settings_fingerprint"] == run_record.fingerprint(recorded)
    capsys.readouterr()

    # the same settings (a setting that cannot change results aside): skipped, nothing written
    before = sorted(os.listdir(out))
    assert train_py(out, toy_root, weights, "TRAIN.PRINT_FREQ", "1") == 0
    assert "already finished with these settings; skipping (--overwrite runs it again)" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == before

    # more epochs, other weights: refused with the differences listed
    assert train_py(out, toy_root, weights, "OPTIM.MAX_EPOCH", "2") == 2
    error = capsys.readouterr().err
    assert "holds a finished run with other settings" in error and "OPTIM.MAX_EPOCH: 1 -> 2" in error
    assert "--overwrite" in error and sorted(os.listdir(out)) == before
    save_tiny_clip(str(weights), seed=7)  # the same path, other weights
    assert train_py(out, toy_root, weights) == 2
    assert f"CLIP weights: {weights} (sha256 {recorded['weights']['sha256'][:12]})" in capsys.readouterr().err

    # --overwrite: afresh, the old run moved aside (a name without the seed pattern), said in the log
    assert train_py(out, toy_root, weights, "OPTIM.MAX_EPOCH", "2", flags=["--overwrite"]) == 0
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("seed1.overwritten-")]
    assert sorted(os.listdir(aside)) == before
    assert json.loads((aside / "run_settings.json").read_text()) == recorded
    assert f"moved aside to {aside}" in (out / "log.txt").read_text()
    assert json.loads((out / "run_settings.json").read_text())["config"]["OPTIM"]["MAX_EPOCH"] == 2
    assert (out / "run_complete.json").exists()
    from tools.parse_results import describe_run_path

    assert describe_run_path(str(tmp_path), str(aside))["seed"] is None  # never one of the seeds


def test_eval_only_of_a_prompt_learner_needs_a_model_dir_or_allow_untrained(tmp_path, toy_root, tiny_clip, capsys):
    out = tmp_path / "eval"
    assert train_py(out, toy_root, tiny_clip, flags=["--eval-only"]) == 2
    error = capsys.readouterr().err
    assert "--eval-only without --model-dir would evaluate the untrained (initial) prompt_learner of CoOp" in error
    assert "--allow-untrained" in error and "error: --eval-only without" in (out / "log.txt").read_text()
    assert train_py(out, toy_root, tiny_clip, flags=["--eval-only", "--allow-untrained"]) == 0
    assert json.loads((out / "run_complete.json").read_text())["kind"] == "eval"
