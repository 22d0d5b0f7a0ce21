"""Run a grid of ``train.py`` jobs described by a small YAML, one at a time or one per GPU.

    python -m tools.sweep configs/sweeps/dpl_fewshot.yaml --dry-run
    python -m tools.sweep configs/sweeps/dpl_fewshot.yaml --gpus 0,1,2,3

Run it from the repository root (commands use the relative paths of the spec). For every
(dataset, shots, seed) the stages run as a chain: search -> train (one job per train config)
-> test (base-to-new only). The train stage gets TRAINER.TRAINERSUBNET.PROMPT_CONFIG
<search output>/searched_config.json. Finished runs are skipped, unfinished ones are started again
with the same command (the engine resumes from its output folder), a failing job does not stop
the others, and the jobs that needed it are reported as skipped. Nothing is ever deleted; each
job's stdout and stderr are appended to <output>/sweep_output.txt.
"""
import argparse
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import List, Optional

import yaml

from tools.parse_results import result_of_log

PROMPT_CONFIG_KEY = "TRAINER.TRAINERSUBNET.PROMPT_CONFIG"
PROTOCOLS = ("fewshot", "base2new")
JOB_LOG = "sweep_output.txt"
SPEC_KEYS = {"data_root", "output_root", "protocol", "datasets", "seeds", "shots", "stages", "opts", "python",
             "train_script"}
STAGE_KEYS = {"trainer", "config", "configs", "opts", "load_epoch"}


@dataclass
class Job:
    stage: str  # "search", "train" or "test"
    dataset: str
    shots: int
    seed: int
    trainer: str
    config: str
    output_dir: str
    command: List[str]
    after: Optional[int] = None  # index of the job whose output this one needs
    eval_only: bool = False

    def label(self):
        return f"[{self.stage}] {self.dataset} shots={self.shots} seed={self.seed} {self.trainer}/{self.config}"


@dataclass
class SweepResult:
    status: List[str]  # per job: "ok", "finished" (skipped), "failed", "blocked"
    messages: dict = field(default_factory=dict)  # job index -> why it failed / was blocked

    @property
    def ok(self):
        return all(s in ("ok", "finished") for s in self.status)


# ---------------------------------------------------------------------------- spec -> jobs (pure)
def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _opts(value, where):
    """Extra options as a flat KEY VALUE list; a YAML mapping {KEY: value} is accepted too."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [str(x) for kv in value.items() for x in kv]
    if isinstance(value, list) and len(value) % 2 == 0:
        return [str(x) for x in value]
    raise ValueError(f"{where}: opts must be a KEY: value mapping or a KEY VALUE ... list of even length, "
                     f"found {value!r}.")


def check_spec(spec, source="sweep spec"):
    """Fill defaults and check the spec; errors name the key and the expected form."""
    if not isinstance(spec, dict):
        raise ValueError(f"{source}: expected a YAML mapping, found {type(spec).__name__}.")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ValueError(f"{source}: unknown keys {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}.")
    for key in ("data_root", "datasets", "seeds", "shots", "stages"):
        if spec.get(key) in (None, [], {}):
            raise ValueError(f"{source}: '{key}' is required (see docs/tools.md for an example spec).")
    spec = dict(spec)
    spec.setdefault("output_root", "output")
    spec.setdefault("protocol", "fewshot")
    spec.setdefault("python", sys.executable)
    spec.setdefault("train_script", "train.py")
    spec["opts"] = _opts(spec.get("opts"), source)
    if spec["protocol"] not in PROTOCOLS:
        raise ValueError(f"{source}: protocol must be one of {PROTOCOLS}, found {spec['protocol']!r}.")
    stages = spec["stages"]
    if not isinstance(stages, dict) or not set(stages) <= {"search", "train"}:
        raise ValueError(f"{source}: 'stages' must map 'search' and/or 'train' to {{trainer, config, opts}}, "
                         f"found {stages!r}.")
    checked = {}
    for name, stage in stages.items():
        where = f"{source}: stages.{name}"
        if not isinstance(stage, dict) or "trainer" not in stage or ("config" in stage) == ("configs" in stage):
            raise ValueError(f"{where} needs 'trainer' and exactly one of 'config' / 'configs', found {stage!r}.")
        if set(stage) - STAGE_KEYS:
            raise ValueError(f"{where}: unknown keys {sorted(set(stage) - STAGE_KEYS)}; allowed {sorted(STAGE_KEYS)}.")
        configs = _as_list(stage.get("config", stage.get("configs")))
        if name == "search" and len(configs) != 1:
            raise ValueError(f"{where}: one search config per sweep (the train stage is chained to it), "
                             f"found {configs}.")
        checked[name] = dict(trainer=stage["trainer"], configs=configs, opts=_opts(stage.get("opts"), where),
                             load_epoch=stage.get("load_epoch"))
    if spec["protocol"] == "base2new" and "train" in checked and checked["train"]["load_epoch"] is None:
        raise ValueError(f"{source}: base2new needs stages.train.load_epoch (the last epoch, e.g. 40) to test "
                         f"the trained prompts on the new classes.")
    spec["stages"] = checked
    return spec


def load_spec(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Sweep spec not found: {path}. See configs/sweeps/ for examples.")
    with open(path) as f:
        return check_spec(yaml.safe_load(f), source=path)


def _config_path(name, folder):
    return name if name.endswith((".yaml", ".yml")) else os.path.join(folder, f"{name}.yaml")


def output_dir(spec, stage, dataset, shots, trainer, config, seed):
    """<root>/<search|fewshot>/... or <root>/base2new/<search|train_base|test_new>/... (CoOp layout)."""
    if spec["protocol"] == "base2new":
        branch = os.path.join("base2new", {"search": "search", "train": "train_base", "test": "test_new"}[stage])
    else:
        branch = "search" if stage == "search" else "fewshot"
    return os.path.join(spec["output_root"], branch, dataset, f"shots_{shots}", trainer, config, f"seed{seed}")


def job_command(spec, stage, dataset, shots, seed, trainer, config, out_dir, stage_opts=(), prompt_config=None,
                model_dir=None, load_epoch=None):
    """The train.py command line of one job (a list of arguments)."""
    command = [spec["python"], spec["train_script"], "--root", str(spec["data_root"]), "--seed", str(seed),
               "--trainer", trainer,
               "--dataset-config-file", _config_path(dataset, os.path.join("configs", "datasets")),
               "--config-file", _config_path(config, os.path.join("configs", "trainers", trainer)),
               "--output-dir", out_dir]
    if model_dir is not None:
        command += ["--eval-only", "--model-dir", model_dir, "--load-epoch", str(load_epoch)]
    command += ["DATASET.NUM_SHOTS", str(shots)]
    if spec["protocol"] == "base2new":
        command += ["DATASET.SUBSAMPLE_CLASSES", "new" if stage == "test" else "base"]
    command += list(spec["opts"]) + list(stage_opts)
    if prompt_config is not None:
        command += [PROMPT_CONFIG_KEY, prompt_config]
    return command


def _make_job(spec, stage, dataset, shots, seed, trainer, config, after=None, **command_kwargs):
    dataset_name = os.path.splitext(os.path.basename(dataset))[0]
    config_name = os.path.splitext(os.path.basename(config))[0]
    out = output_dir(spec, stage, dataset_name, shots, trainer, config_name, seed)
    command = job_command(spec, stage, dataset, shots, seed, trainer, config, out, **command_kwargs)
    return Job(stage, dataset_name, shots, seed, trainer, config_name, out, command, after,
               eval_only="model_dir" in command_kwargs)


def build_jobs(spec):
    """All jobs of a checked spec, each chain (dataset, shots, seed) in order: search, train(s), test(s)."""
    jobs, stages = [], spec["stages"]
    for dataset in _as_list(spec["datasets"]):
        for shots in _as_list(spec["shots"]):
            for seed in _as_list(spec["seeds"]):
                search, prompt_config = None, None
                if "search" in stages:
                    s = stages["search"]
                    jobs.append(_make_job(spec, "search", dataset, shots, seed, s["trainer"], s["configs"][0],
                                          stage_opts=s["opts"]))
                    search = len(jobs) - 1
                    prompt_config = os.path.join(jobs[search].output_dir, "searched_config.json")
                t = stages.get("train")
                for config in t["configs"] if t else []:
                    jobs.append(_make_job(spec, "train", dataset, shots, seed, t["trainer"], config, after=search,
                                          stage_opts=t["opts"], prompt_config=prompt_config))
                    if spec["protocol"] == "base2new":
                        train = len(jobs) - 1
                        jobs.append(_make_job(spec, "test", dataset, shots, seed, t["trainer"], config, after=train,
                                              stage_opts=t["opts"], prompt_config=prompt_config,
                                              model_dir=jobs[train].output_dir, load_epoch=t["load_epoch"]))
    return jobs


# ---------------------------------------------------------------------------- state on disk
def _logs(folder):
    if not os.path.isdir(folder):
        return []
    names = sorted(n for n in os.listdir(folder) if n == "log.txt" or n.startswith("log.txt-"))
    texts = []
    for name in names:
        with open(os.path.join(folder, name), errors="replace") as f:
            texts.append(f.read())
    return texts


def is_finished(job):
    """Training: some log of the run reached Dassl's final 'Elapsed:' line. Eval-only: a result."""
    for text in _logs(job.output_dir):
        if job.eval_only and result_of_log(text)[0] is not None:
            return True
        if not job.eval_only and "\nElapsed:" in "\n" + text:
            return True
    return False


def job_state(job):
    if is_finished(job):
        return "finished"
    return "resume" if _logs(job.output_dir) else "new"


# ---------------------------------------------------------------------------- running
def run_command(command, env, log_path):
    """Default runner: the command in a subprocess, stdout and stderr appended to log_path."""
    with open(log_path, "a") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n")
        log.flush()
        return subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode


def _run_one(job, gpu, runner):
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    os.makedirs(job.output_dir, exist_ok=True)
    return runner(job.command, env, os.path.join(job.output_dir, JOB_LOG))


def _tail(path, lines=5):
    if not os.path.isfile(path):
        return ""
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def run_jobs(jobs, runner=run_command, gpus=None, echo=print):
    """Run jobs in list order, each after the job it depends on; one at a time, or one per GPU.

    runner(command, env, log_path) -> exit code. Returns a SweepResult.
    """
    slots = list(gpus) if gpus else [None]
    status, messages = {}, {}
    pending, running = list(range(len(jobs))), {}
    with ThreadPoolExecutor(max_workers=len(slots)) as pool:
        while pending or running:
            for i in list(pending):
                job, dep = jobs[i], jobs[i].after
                if dep is not None and status.get(dep) in ("failed", "blocked"):
                    status[i], messages[i] = "blocked", f"not run: {jobs[dep].stage} job it needs did not succeed " \
                                                        f"({jobs[dep].output_dir})"
                    pending.remove(i)
                    echo(f"skip  {job.label()}: {messages[i]}")
                elif dep is not None and dep not in status:
                    continue  # its dependency is still queued or running
                elif is_finished(job):
                    status[i] = "finished"
                    pending.remove(i)
                    echo(f"skip  {job.label()}: already finished ({job.output_dir})")
                elif slots:
                    gpu = slots.pop(0)
                    verb = "resume" if job_state(job) == "resume" else "start"
                    echo(f"{verb} {job.label()}" + (f" on GPU {gpu}" if gpu is not None else ""))
                    running[pool.submit(_run_one, job, gpu, runner)] = (i, gpu)
                    pending.remove(i)
            if not running:
                if pending:  # only possible with a dependency that points forward
                    raise ValueError(f"Jobs {pending} wait for jobs that never run; check their 'after' indices.")
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                i, gpu = running.pop(future)
                slots.append(gpu)
                try:
                    code = future.result()
                except Exception as err:  # the runner itself failed (missing python, ...): keep going
                    code, messages[i] = None, f"could not run: {err}"
                status[i] = "ok" if code == 0 else "failed"
                if code not in (0, None):
                    messages[i] = f"exit code {code}; output in {os.path.join(jobs[i].output_dir, JOB_LOG)}"
                echo(f"{'done' if code == 0 else 'FAIL'}  {jobs[i].label()}" + ("" if code == 0 else f": {messages[i]}"))
    return SweepResult([status[i] for i in range(len(jobs))], messages)


def report(jobs, result):
    counts = {s: result.status.count(s) for s in ("ok", "finished", "failed", "blocked")}
    lines = [f"Sweep: {len(jobs)} jobs: {counts['ok']} ran, {counts['finished']} already finished, "
             f"{counts['failed']} failed, {counts['blocked']} skipped because a job they need failed."]
    for kind, title in (("failed", "Failed:"), ("blocked", "Skipped (a job they need failed):")):
        listed = [i for i, s in enumerate(result.status) if s == kind]
        if listed:
            lines.append(title)
        for i in listed:
            lines.append(f"  {jobs[i].label()}: {result.messages.get(i, '')}")
            tail = _tail(os.path.join(jobs[i].output_dir, JOB_LOG)) if kind == "failed" else ""
            lines += [f"      | {line}" for line in tail.rstrip().splitlines()]
    return "\n".join(lines)


def dry_run(jobs, echo=print):
    for job in jobs:
        state = job_state(job)
        if job.after is not None and state != "finished" and job_state(jobs[job.after]) != "finished":
            state += f", after its {jobs[job.after].stage} job"
        echo(f"# {job.label()}: {state}")
        echo(shlex.join(job.command))


def main(argv=None, runner=run_command):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="sweep YAML (see configs/sweeps/)")
    parser.add_argument("--gpus", help="comma-separated GPU ids: one job per GPU at a time (CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and each run's state, run nothing")
    args = parser.parse_args(argv)

    jobs = build_jobs(load_spec(args.spec))
    if args.dry_run:
        dry_run(jobs)
        return 0
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    result = run_jobs(jobs, runner=runner, gpus=gpus)
    print(report(jobs, result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
