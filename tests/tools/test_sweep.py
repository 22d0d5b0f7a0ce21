import json
import os
import shlex
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import yaml

from tools import sweep
from tools.sweep import PROMPT_CONFIG_KEY, build_jobs, check_spec, run_jobs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Stands in for train.py: records its call, fails for datasets named "broken", refuses to train a
# subnet before its searched_config.json exists, writes a Dassl-like log (log.txt, or log.txt-<n>
# when the folder already has one, as the engine does), the run records (run_settings.json with its
# command, run_complete.json at the end) and, for the search, searched_config.json. With FAKE_PID
# set it writes its pid there and sleeps (a long job, to be killed).
FAKE_TRAIN = r'''
import json, os, sys, time
args = sys.argv[1:]
out = args[args.index("--output-dir") + 1]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps({"argv": args, "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")
if os.environ.get("FAKE_PID"):
    with open(os.environ["FAKE_PID"] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.environ["FAKE_PID"] + ".tmp", os.environ["FAKE_PID"])
    time.sleep(120)
if "broken" in args[args.index("--dataset-config-file") + 1]:
    print("Traceback: the broken dataset cannot be read", file=sys.stderr)
    sys.exit(3)
if "TRAINER.TRAINERSUBNET.PROMPT_CONFIG" in args:
    config = args[args.index("TRAINER.TRAINERSUBNET.PROMPT_CONFIG") + 1]
    if not os.path.isfile(config):
        sys.exit("prompt config missing: " + config)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "run_settings.json"), "w") as f:
    json.dump({"command": args}, f)
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
with open(os.path.join(out, "run_complete.json"), "w") as f:
    json.dump({"kind": "eval" if "--eval-only" in args else "train"}, f)
'''


@pytest.fixture(autouse=True)
def no_launcher_variables(monkeypatch):
    """The caller's $DATA / $CLIP_WEIGHTS would change the spec's values."""
    monkeypatch.delenv("DATA", raising=False)
    monkeypatch.delenv("CLIP_WEIGHTS", raising=False)


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


def finished_and_unfinished_runs(tmp_path, spec_path):
    """A finished search of dtd seed 1 (log, run records of its command, searched_config.json) and an
    unfinished train of seed 2 (a log, no completion record)."""
    finished_search = out_dir(tmp_path, "search", "dtd", "TrainerSupernet", "vit_b16_search", 1)
    os.makedirs(finished_search)
    job = next(j for j in build_jobs(sweep.load_spec(spec_path)) if j.output_dir == finished_search)
    with open(os.path.join(finished_search, "log.txt"), "w") as f:
        f.write("Finish training\nElapsed: 0:10:00\n")
    with open(os.path.join(finished_search, "run_settings.json"), "w") as f:
        json.dump({"command": job.command[2:]}, f)
    with open(os.path.join(finished_search, "run_complete.json"), "w") as f:
        json.dump({"kind": "train"}, f)
    with open(os.path.join(finished_search, "searched_config.json"), "w") as f:
        f.write("{}")
    unfinished_train = out_dir(tmp_path, "fewshot", "dtd", "TrainerSubnet", "vit_b16_ep40", 2)
    os.makedirs(unfinished_train)
    with open(os.path.join(unfinished_train, "log.txt"), "w") as f:
        f.write("No checkpoint found\nepoch [1/40] batch [1/1]\n")
    return finished_search, unfinished_train


def test_sweep_skips_finished_resumes_unfinished_and_reports_failures(tmp_path, fake, capsys):
    script, read_calls = fake
    path, _ = make_spec(tmp_path, script)
    finished_search, unfinished_train = finished_and_unfinished_runs(tmp_path, path)

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


def test_a_log_with_elapsed_is_not_a_finished_run_and_another_command_runs_train_py(tmp_path, fake):
    """Finished = the engine's run_complete.json written for the job's command; train.py decides the rest."""
    script, read_calls = fake
    path, spec = make_spec(tmp_path, script, datasets=["dtd"], seeds=[1], stages={
        "train": {"trainer": "CoOp", "config": "vit_b16"}})
    folder = out_dir(tmp_path, "fewshot", "dtd", "CoOp", "vit_b16", 1)
    os.makedirs(folder)
    with open(os.path.join(folder, "log.txt"), "w") as f:
        f.write("Finish training\nElapsed: 0:10:00\n")  # the old signal: no longer trusted
    assert sweep.main([path]) == 0 and called_dirs(read_calls()) == [folder]
    assert sweep.main([path]) == 0 and len(read_calls()) == 1  # now recorded as finished: skipped
    path, _ = make_spec(tmp_path, script, **dict(spec, opts={"OPTIM.MAX_EPOCH": 4}))
    assert sweep.main([path]) == 0 and len(read_calls()) == 2  # another command: train.py compares
    assert read_calls()[-1]["argv"][-1] == "4"


def test_data_and_clip_weights_come_from_the_environment(tmp_path, monkeypatch):
    raw = make_spec(tmp_path, "train.py", datasets=["dtd"], seeds=[1])[1]
    raw.update(data_root="${DATA}", clip_weights="${CLIP_WEIGHTS:-}")
    with pytest.raises(ValueError, match=r"environment variable DATA is not set: export DATA="):
        check_spec(raw)
    monkeypatch.setenv("DATA", "/datasets")
    command = build_jobs(check_spec(raw))[0].command
    assert command[command.index("--root") + 1] == "/datasets" and "MODEL.BACKBONE.PATH" not in command
    monkeypatch.setenv("CLIP_WEIGHTS", "/weights/ViT-B-16.pt")
    command = build_jobs(check_spec(dict(raw, data_root=None)))[0].command  # no data_root: $DATA
    assert command[command.index("--root") + 1] == "/datasets"
    assert command[command.index("MODEL.BACKBONE.PATH") + 1] == "/weights/ViT-B-16.pt"


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stopping_the_sweep_stops_its_running_job(tmp_path, fake, signum, status):
    script, read_calls = fake
    path, _ = make_spec(tmp_path, script, datasets=["dtd"], seeds=[1])
    pid_file = tmp_path / "child.pid"
    env = dict(os.environ, FAKE_PID=str(pid_file))
    process = subprocess.Popen([sys.executable, "-m", "tools.sweep", path], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    os.kill(child, 0)  # running
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    assert "Traceback" not in err and err.strip().count("\n") == 0 and "Sweep interrupted" in err
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # ended with the sweep, not orphaned
    assert len(read_calls()) == 1  # the train job after it was never started


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


# ---------------------------------------------------------------------------- SLURM (submitit)
SLURM_SECTION = {"partition": "gpu", "gpus_per_job": 2, "time": 90, "cpus_per_task": 8, "mem_gb": 64,
                 "account": "lab", "additional_parameters": {"mail-type": "END"}}


def test_slurm_settings_from_the_spec_and_the_command_line(tmp_path):
    spec = check_spec(make_spec(tmp_path, "train.py", slurm=SLURM_SECTION)[1])
    assert spec["slurm"]["log_folder"] == os.path.join(str(tmp_path / "out"), "slurm_logs")
    settings = sweep.slurm_settings(spec, partition="debug", time_limit="30")
    assert settings["partition"] == "debug" and settings["time"] == 30 and settings["gpus_per_job"] == 2
    assert sweep.executor_parameters(settings) == {
        "nodes": 1, "tasks_per_node": 1, "gpus_per_node": 2, "timeout_min": 30, "cpus_per_task": 8, "mem_gb": 64,
        "slurm_partition": "debug", "slurm_account": "lab", "slurm_additional_parameters": {"mail-type": "END"}}
    # without a slurm: section: one GPU per job, the time from the command line
    bare = sweep.slurm_settings(check_spec(make_spec(tmp_path, "train.py")[1]), time_limit="45")
    assert sweep.executor_parameters(bare) == {"nodes": 1, "tasks_per_node": 1, "gpus_per_node": 1,
                                               "timeout_min": 45}


def test_slurm_parameters_reach_submitit(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    spec = check_spec(make_spec(tmp_path, "train.py", slurm=SLURM_SECTION)[1])
    settings = sweep.slurm_settings(spec, gpus_per_job="4")
    local = sweep.make_executor(settings, cluster="local")
    assert {k: local.parameters[k] for k in ("gpus_per_node", "timeout_min", "tasks_per_node")} == \
        {"gpus_per_node": 4, "timeout_min": 90, "tasks_per_node": 1}
    # the SLURM executor needs only an srun on the PATH to be built: its sbatch parameters
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(RuntimeError, match="could not find SLURM here"):
        sweep.make_executor(settings)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    parameters = sweep.make_executor(settings).parameters
    assert {k: parameters[k] for k in ("partition", "account", "time", "gpus_per_node", "cpus_per_task", "mem",
                                       "ntasks_per_node", "additional_parameters")} == {
        "partition": "gpu", "account": "lab", "time": 90, "gpus_per_node": 4, "cpus_per_task": 8, "mem": "64GB",
        "ntasks_per_node": 1, "additional_parameters": {"mail-type": "END"}}


def test_several_gpus_per_job_run_through_torchrun(tmp_path, capsys):
    path, spec = make_spec(tmp_path, "train.py", datasets=["dtd"], seeds=[1], slurm={"time": 60})
    command = build_jobs(check_spec(spec))[0].command
    assert sweep.launch_command(command, 1) == command
    assert sweep.launch_command(command, 4) == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", *command[1:]]
    assert sweep.main([path, "--slurm", "--gpus-per-job", "4", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert shlex.join(sweep.launch_command(command, 4)) in printed and "'gpus_per_node': 4" in printed


def test_bad_slurm_settings_say_what_to_do(tmp_path, capsys):
    raw = make_spec(tmp_path, "train.py")[1]
    for section, message in (({"time": "4h"}, r"slurm.time must be a whole number >= 1 \(minutes"),
                             ({"gpus_per_job": 0}, "slurm.gpus_per_job must be a whole number >= 1"),
                             ({"mem_gb": "lots"}, "slurm.mem_gb must be a number of GB"),
                             ({"partition": ""}, "slurm.partition must be a non-empty string"),
                             ({"additional_parameters": ["x"]}, "must map sbatch option names"),
                             ({"gpus": 2}, r"keys among .*found \['gpus'\]"),
                             (["gpu"], "'slurm' must be a mapping")):
        with pytest.raises(ValueError, match=message):
            check_spec(dict(raw, slurm=section))
    spec = check_spec(raw)
    with pytest.raises(ValueError, match="needs a time limit per job: set slurm.time"):
        sweep.slurm_settings(spec)
    with pytest.raises(ValueError, match="--time must be a whole number >= 1"):
        sweep.slurm_settings(spec, time_limit="-5")
    path = make_spec(tmp_path, "train.py")[0]
    for argv, message in (([path, "--time", "60"], "add --slurm"),
                          ([path, "--slurm", "--time", "60", "--gpus", "0,1"], "Use one of the two")):
        with pytest.raises(SystemExit):
            sweep.main(argv)
        assert message in capsys.readouterr().err


def test_slurm_without_submitit_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    path = make_spec(tmp_path, "train.py", slurm={"time": 60})[0]
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit now raises ImportError
    with pytest.raises(ImportError, match="pip install submitit"):
        sweep.main([path, "--slurm"])
    assert sweep.main([path, "--slurm", "--dry-run"]) == 0  # a dry run needs no submitit


def test_slurm_sweep_chains_skips_finished_and_reports_failures(tmp_path, fake, capsys):
    pytest.importorskip("submitit")
    script, read_calls = fake
    path, _ = make_spec(tmp_path, script, slurm={"time": 600, "partition": "gpu"})
    finished_search, unfinished_train = finished_and_unfinished_runs(tmp_path, path)

    assert sweep.main([path, "--slurm", "--time", "5"], cluster="local", poll_s=0.05) == 1
    ran = called_dirs(read_calls())
    assert finished_search not in ran and len(ran) == 5  # dtd: train 1, search 2, train 2; broken: two searches
    assert not any("fewshot/broken" in d for d in ran)
    search = ran.index(out_dir(tmp_path, "search", "dtd", "TrainerSupernet", "vit_b16_search", 2))
    assert search < ran.index(unfinished_train)  # submitted once its search had succeeded
    assert len([n for n in os.listdir(unfinished_train) if n.startswith("log.txt-")]) == 1  # resumed
    with open(os.path.join(unfinished_train, sweep.JOB_LOG)) as f:
        assert "=== " in f.read()  # the job's output went to the output folder, as with the local runner
    logs = tmp_path / "out" / "slurm_logs"
    assert len(list(logs.glob("*_submitted.pkl"))) == 5  # nothing submitted for the finished search

    printed = capsys.readouterr().out
    assert printed.count(": SLURM job ") == 5 and str(logs) in printed
    assert "Sweep: 8 jobs: 3 ran, 1 already finished, 2 failed, 2 skipped" in printed
    assert "exit code 3" in printed and "Traceback: the broken dataset cannot be read" in printed
    assert "Skipped (a job they need failed):" in printed and "[train] broken shots=4 seed=2" in printed
    assert "resume [train] dtd shots=4 seed=2" in printed

    # a second sweep submits only what has not finished
    assert sweep.main([path, "--slurm", "--time", "5"], cluster="local", poll_s=0.05) == 1
    again = called_dirs(read_calls())[len(ran):]
    assert len(again) == 2 and all("/search/broken/" in d for d in again)
    assert len(list(logs.glob("*_submitted.pkl"))) == 7


def test_slurm_jobs_that_cannot_be_submitted_block_only_their_chain(tmp_path, monkeypatch):
    class FakeJob:  # a submitit job that has succeeded
        job_id, paths = "42", SimpleNamespace(stdout="42_0_log.out")

        def done(self):
            return True

        def result(self):
            return 0

    class FakeExecutor:
        def update_parameters(self, **parameters):
            self.name = parameters.get("name", getattr(self, "name", None))

        def submit(self, task):
            if "broken" in self.name:
                raise RuntimeError("sbatch: error: invalid partition specified: gpu")
            return FakeJob()

    monkeypatch.setattr(sweep, "make_executor", lambda settings, cluster: FakeExecutor())
    spec = check_spec(make_spec(tmp_path, "train.py", seeds=[1], slurm={"time": 5})[1])
    result = sweep.run_slurm_jobs(build_jobs(spec), sweep.slurm_settings(spec), poll_s=0, echo=lambda line: None)
    assert result.status == ["ok", "ok", "failed", "blocked"]
    assert "could not start: sbatch: error: invalid partition" in result.messages[2]


def test_slurm_task_appends_to_the_job_log_and_requeues_itself(tmp_path, fake):
    submitit = pytest.importorskip("submitit")
    script, read_calls = fake
    spec = check_spec(make_spec(tmp_path, script, datasets=["dtd"], seeds=[1])[1])
    job = build_jobs(spec)[0]
    task = sweep.SlurmTask(job.command, job.output_dir)
    assert task() == 0 and called_dirs(read_calls()) == [job.output_dir]
    with open(os.path.join(job.output_dir, sweep.JOB_LOG)) as f:
        assert shlex.join(job.command) in f.read()
    requeued = task.checkpoint()  # what submitit submits again at the time limit
    assert isinstance(requeued, submitit.helpers.DelayedSubmission) and requeued.function == task


@pytest.mark.parametrize("name", sorted(os.listdir(os.path.join(REPO, "configs", "sweeps"))))
def test_every_shipped_spec_names_registered_trainers_and_existing_configs(name):
    import trainers
    from dassl.engine import TRAINER_REGISTRY

    trainers.register_all()
    spec = sweep.load_spec(os.path.join(REPO, "configs", "sweeps", name))
    for stage in spec["stages"].values():
        assert stage["trainer"] in TRAINER_REGISTRY._obj_map, (name, stage["trainer"])
        for config in stage["configs"]:
            assert os.path.isfile(os.path.join(REPO, "configs", "trainers", stage["trainer"], f"{config}.yaml")), config
