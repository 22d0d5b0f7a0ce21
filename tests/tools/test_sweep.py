import json
import os
import shlex
import sys

import pytest
import yaml

from tools import sweep
from tools.sweep import PROMPT_CONFIG_KEY, build_jobs, check_spec, run_jobs

# Stands in for train.py: records its call, fails for datasets named "broken", refuses to train a
# subnet before its searched_config.json exists, writes a Dassl-like log (log.txt, or log.txt-<n>
# when the folder already has one, as the engine does) and, for the search, searched_config.json.
FAKE_TRAIN = r'''
import json, os, sys
args = sys.argv[1:]
out = args[args.index("--output-dir") + 1]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps({"argv": args, "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")
if "broken" in args[args.index("--dataset-config-file") + 1]:
    print("Traceback: the broken dataset cannot be read", file=sys.stderr)
    sys.exit(3)
if "TRAINER.TRAINERSUBNET.PROMPT_CONFIG" in args:
    config = args[args.index("TRAINER.TRAINERSUBNET.PROMPT_CONFIG") + 1]
    if not os.path.isfile(config):
        sys.exit("prompt config missing: " + config)
os.makedirs(out, exist_ok=True)
log = os.path.join(out, "log.txt")
resumed = os.path.exists(log)
if resumed:
    log += "-%d" % len(os.listdir(out))
with open(log, "w") as f:
    if "--eval-only" in args:
        f.write("=> result\n* accuracy: 61.0%\n")
    else:
        f.write("Found checkpoint at %s (will resume training)\n" % out if resumed else "No checkpoint found\n")
        f.write("Finish training\n=> result\n* accuracy: 70.0%\nElapsed: 0:00:01\n")
if "TrainerSupernet" in args:
    with open(os.path.join(out, "searched_config.json"), "w") as f:
        json.dump({"image": {"prompt_lengths": [1]}, "text": {"prompt_lengths": [0]}}, f)
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_CALLS", str(calls))

    def read_calls():
        if not calls.exists():
            return []
        return [json.loads(line) for line in calls.read_text().splitlines()]

    return script, read_calls


def make_spec(tmp_path, script, **changes):
    spec = {
        "data_root": str(tmp_path / "data"),
        "output_root": str(tmp_path / "out"),
        "datasets": ["dtd", "broken"],
        "seeds": [1, 2],
        "shots": [4],
        "python": sys.executable,
        "train_script": str(script),
        "opts": {"OPTIM.MAX_EPOCH": 2},
        "stages": {"search": {"trainer": "TrainerSupernet", "config": "vit_b16_search"},
                   "train": {"trainer": "TrainerSubnet", "config": "vit_b16_ep40", "opts": ["TRAIN.PRINT_FREQ", 5]}},
    }
    spec.update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path), spec


def out_dir(tmp_path, branch, dataset, trainer, config, seed):
    return os.path.join(str(tmp_path / "out"), branch, dataset, "shots_4", trainer, config, f"seed{seed}")


def called_dirs(calls):
    return [c["argv"][c["argv"].index("--output-dir") + 1] for c in calls]


def test_job_commands_chain_search_into_train(tmp_path):
    spec = check_spec(make_spec(tmp_path, "train.py")[1])
    jobs = build_jobs(spec)
    assert [(j.stage, j.dataset, j.seed) for j in jobs] == [
        ("search", "dtd", 1), ("train", "dtd", 1), ("search", "dtd", 2), ("train", "dtd", 2),
        ("search", "broken", 1), ("train", "broken", 1), ("search", "broken", 2), ("train", "broken", 2)]
    search_dir = out_dir(tmp_path, "search", "dtd", "TrainerSupernet", "vit_b16_search", 1)
    train_dir = out_dir(tmp_path, "fewshot", "dtd", "TrainerSubnet", "vit_b16_ep40", 1)
    assert jobs[0].command == [
        sys.executable, "train.py", "--root", str(tmp_path / "data"), "--seed", "1", "--trainer", "TrainerSupernet",
        "--dataset-config-file", "configs/datasets/dtd.yaml",
        "--config-file", "configs/trainers/TrainerSupernet/vit_b16_search.yaml",
        "--output-dir", search_dir, "DATASET.NUM_SHOTS", "4", "OPTIM.MAX_EPOCH", "2"]
    assert jobs[1].after == 0 and jobs[1].output_dir == train_dir
    assert jobs[1].command[-6:] == ["OPTIM.MAX_EPOCH", "2", "TRAIN.PRINT_FREQ", "5", PROMPT_CONFIG_KEY,
                                    os.path.join(search_dir, "searched_config.json")]


def test_base2new_adds_a_test_on_new_classes(tmp_path):
    raw = make_spec(tmp_path, "train.py", protocol="base2new", datasets=["dtd"], seeds=[1])[1]
    with pytest.raises(ValueError, match="load_epoch"):
        check_spec(raw)
    raw["stages"]["train"]["load_epoch"] = 40
    search, train, test = build_jobs(check_spec(raw))
    assert "base2new/search/dtd" in search.output_dir and "base2new/train_base/dtd" in train.output_dir
    assert test.output_dir == out_dir(tmp_path, "base2new/test_new", "dtd", "TrainerSubnet", "vit_b16_ep40", 1)
    for job in (search, train):
        assert job.command[job.command.index("DATASET.SUBSAMPLE_CLASSES") + 1] == "base"
    assert test.command[test.command.index("DATASET.SUBSAMPLE_CLASSES") + 1] == "new"
    assert test.command[test.command.index("--model-dir") + 1] == train.output_dir
    assert test.command[test.command.index("--load-epoch") + 1] == "40" and "--eval-only" in test.command
    assert test.eval_only and test.after == 1


def test_spec_errors_name_the_key(tmp_path):
    raw = make_spec(tmp_path, "train.py")[1]
    with pytest.raises(ValueError, match="data_root"):
        check_spec({k: v for k, v in raw.items() if k != "data_root"})
    with pytest.raises(ValueError, match="unknown keys"):
        check_spec(dict(raw, dataset=["dtd"]))
    with pytest.raises(ValueError, match="one search config"):
        check_spec(dict(raw, stages={"search": {"trainer": "TrainerSupernet", "configs": ["a", "b"]}}))


def test_dry_run_prints_commands_and_runs_nothing(tmp_path, fake, capsys):
    script, read_calls = fake
    path, spec = make_spec(tmp_path, script)
    assert sweep.main([path, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    for job in build_jobs(check_spec(spec)):
        assert shlex.join(job.command) in printed
    assert "new, after its search job" in printed
    assert read_calls() == [] and not (tmp_path / "out").exists()


def test_sweep_skips_finished_resumes_unfinished_and_reports_failures(tmp_path, fake, capsys):
    script, read_calls = fake
    path, _ = make_spec(tmp_path, script)
    finished_search = out_dir(tmp_path, "search", "dtd", "TrainerSupernet", "vit_b16_search", 1)
    os.makedirs(finished_search)
    with open(os.path.join(finished_search, "log.txt"), "w") as f:
        f.write("Finish training\nElapsed: 0:10:00\n")
    with open(os.path.join(finished_search, "searched_config.json"), "w") as f:
        f.write("{}")
    unfinished_train = out_dir(tmp_path, "fewshot", "dtd", "TrainerSubnet", "vit_b16_ep40", 2)
    os.makedirs(unfinished_train)
    with open(os.path.join(unfinished_train, "log.txt"), "w") as f:
        f.write("No checkpoint found\nepoch [1/40] batch [1/1]\n")

    assert sweep.main([path]) == 1
    ran = called_dirs(read_calls())
    assert finished_search not in ran
    assert ran.count(unfinished_train) == 1
    assert ran.count(out_dir(tmp_path, "search", "broken", "TrainerSupernet", "vit_b16_search", 1)) == 1
    assert not any("fewshot/broken" in d for d in ran)  # its search failed: never started
    assert len(ran) == 5  # dtd: train 1, search 2, train 2; broken: two searches
    # the unfinished run was resumed with the same command; its first log is kept
    with open(os.path.join(unfinished_train, "log.txt")) as f:
        assert "epoch [1/40]" in f.read()
    resumed_logs = [n for n in os.listdir(unfinished_train) if n.startswith("log.txt-")]
    assert len(resumed_logs) == 1

    printed = capsys.readouterr().out
    assert "2 failed, 2 skipped" in printed
    assert "Failed:" in printed and "exit code 3" in printed
    assert "Traceback: the broken dataset cannot be read" in printed  # tail of the job's output
    assert "Skipped (a job they need failed):" in printed and "[train] broken shots=4 seed=1" in printed

    # a second sweep only retries what has not finished
    assert sweep.main([path]) == 1
    again = called_dirs(read_calls())[len(ran):]
    assert len(again) == 2 and all("/search/broken/" in d for d in again)


def test_one_job_per_gpu(tmp_path, fake):
    script, read_calls = fake
    path, _ = make_spec(tmp_path, script, datasets=["dtd", "eurosat"], seeds=[1, 2])
    assert sweep.main([path, "--gpus", "0,1"]) == 0
    calls = read_calls()
    assert len(calls) == 8 and {c["gpu"] for c in calls} == {"0", "1"}
    for dataset in ("dtd", "eurosat"):
        for seed in (1, 2):
            dirs = called_dirs(calls)
            search = dirs.index(out_dir(tmp_path, "search", dataset, "TrainerSupernet", "vit_b16_search", seed))
            train = dirs.index(out_dir(tmp_path, "fewshot", dataset, "TrainerSubnet", "vit_b16_ep40", seed))
            assert search < train


def test_runner_callable_and_exceptions(tmp_path):
    spec = check_spec(make_spec(tmp_path, "train.py", datasets=["dtd"], seeds=[1, 2])[1])
    jobs = build_jobs(spec)
    seen = []

    def runner(command, env, log_path):
        seen.append((command, env.get("CUDA_VISIBLE_DEVICES"), log_path))
        if "2" == command[command.index("--seed") + 1]:
            raise OSError("python not found")
        return 0

    result = run_jobs(jobs, runner=runner, gpus=["3"], echo=lambda line: None)
    assert result.status == ["ok", "ok", "failed", "blocked"] and not result.ok
    assert "python not found" in result.messages[2]
    assert [s[1] for s in seen] == ["3", "3", "3"]
    assert seen[0][2] == os.path.join(jobs[0].output_dir, sweep.JOB_LOG)
