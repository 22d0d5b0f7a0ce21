"""Run a grid of ``train.py`` jobs described by a small YAML: one at a time, one per GPU, or on SLURM.

    python -m tools.sweep configs/sweeps/dpl_fewshot.yaml --dry-run
    python -m tools.sweep configs/sweeps/dpl_fewshot.yaml --gpus 0,1,2,3
    python -m tools.sweep configs/sweeps/dpl_fewshot.yaml --slurm --partition gpu --time 240

Run it from the repository root (commands use the relative paths of the spec). For every
(dataset, shots, seed) the stages run as a chain: search -> train (one job per train config)
-> test (base-to-new only). The train stage gets TRAINER.TRAINERSUBNET.PROMPT_CONFIG
<search output>/searched_config.json. A run whose folder holds the engine's completion record
(run_complete.json) written for the same command is skipped; every other job runs train.py, which
itself skips a finished run of the same settings, resumes an unfinished one and refuses one of other
settings (dassl/engine/run_record.py). A failing job does not stop the others, and the jobs that
needed it are reported as skipped. Nothing is ever deleted; each job's stdout and stderr are appended
to <output>/sweep_output.txt. ``data_root`` and ``clip_weights`` of the spec may name environment
variables (``${DATA:-data}``, ``${CLIP_WEIGHTS:-}``, the shipped specs' values). Each job runs in a
process group of its own: SIGTERM or Ctrl-C (SIGINT) to the sweep is passed on to the running jobs,
and the sweep exits with one line (status 130 for Ctrl-C, 143 for SIGTERM) once they have ended.
With --slurm every job is a SLURM job submitted through submitit (settings: the spec's ``slurm:``
section and the command line), submitted once the job it needs has succeeded, so the same rules and
the same report hold.
"""
import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import List, Optional

import yaml

from dassl.engine import run_record

PROMPT_CONFIG_KEY = "TRAINER.TRAINERSUBNET.PROMPT_CONFIG"
PROTOCOLS = ("fewshot", "base2new")
JOB_LOG = "sweep_output.txt"
SPEC_KEYS = {"data_root", "output_root", "protocol", "datasets", "seeds", "shots", "stages", "opts", "python",
             "train_script", "slurm", "clip_weights"}
CLIP_WEIGHTS_KEY = "MODEL.BACKBONE.PATH"
ENV_REF = re.compile(r"\$(?:\{(\w+)(?::-([^}]*))?\}|(\w+))")  # $VAR, ${VAR}, ${VAR:-default}
STOP_GRACE_S = 30  # seconds the jobs get to end after the sweep passed them its signal; then SIGKILL
STAGE_KEYS = {"trainer", "config", "configs", "opts", "load_epoch"}
# The spec's slurm: section -> submitit's update_parameters() names (generic ones, or slurm_* for sbatch
# options); log_folder is the executor's folder. The only place the two vocabularies meet.
SUBMITIT_NAMES = {"gpus_per_job": "gpus_per_node", "time": "timeout_min", "cpus_per_task": "cpus_per_task",
                  "mem_gb": "mem_gb", "partition": "slurm_partition", "account": "slurm_account",
                  "qos": "slurm_qos", "constraint": "slurm_constraint",
                  "additional_parameters": "slurm_additional_parameters"}
SLURM_KEYS = set(SUBMITIT_NAMES) | {"log_folder"}
SLURM_FLAGS = {"partition": "--partition", "gpus_per_job": "--gpus-per-job", "time": "--time"}
SLURM_POLL_S = 20  # seconds between looks at the submitted jobs (submitit reads result files, sacct rarely)


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


def expand_env(value, where):
    """``value`` with $VAR, ${VAR} and ${VAR:-default} replaced from the environment; an unset variable
    without a default is an error naming it."""
    def replace(match):
        name = match.group(1) or match.group(3)
        if name in os.environ:
            return os.environ[name]
        if match.group(2) is not None:
            return match.group(2)
        raise ValueError(f"{where} is {value!r}, but the environment variable {name} is not set: export {name}=... "
                         f"or give a default (${{{name}:-...}}).")

    return ENV_REF.sub(replace, str(value))


def check_spec(spec, source="sweep spec"):
    """Fill defaults and check the spec; errors name the key and the expected form."""
    if not isinstance(spec, dict):
        raise ValueError(f"{source}: expected a YAML mapping, found {type(spec).__name__}.")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ValueError(f"{source}: unknown keys {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}.")
    spec = dict(spec)
    if spec.get("data_root") in (None, "") and os.environ.get("DATA"):
        spec["data_root"] = "${DATA}"  # the launchers' variable
    for key in ("data_root", "datasets", "seeds", "shots", "stages"):
        if spec.get(key) in (None, [], {}):
            hint = " (or set the environment variable DATA)" if key == "data_root" else ""
            raise ValueError(f"{source}: '{key}' is required{hint} (see docs/tools.md for an example spec).")
    spec["data_root"] = expand_env(spec["data_root"], f"{source}: data_root")
    spec["clip_weights"] = expand_env(spec.get("clip_weights", "${CLIP_WEIGHTS:-}") or "", f"{source}: clip_weights")
    spec.setdefault("output_root", "output")
    spec["output_root"] = expand_env(spec["output_root"], f"{source}: output_root")
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
    spec["slurm"] = check_slurm(spec.get("slurm"), source, spec["output_root"])
    return spec


def _slurm_value(key, value, name):
    """One SLURM setting, checked and converted; value comes from YAML or, as a string, from the command line."""
    if key in ("gpus_per_job", "time", "cpus_per_task"):
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
            hint = " (minutes, e.g. 240 for four hours)" if key == "time" else ""
            raise ValueError(f"{name} must be a whole number >= 1{hint}, found {value!r}.")
        return int(text)
    if key == "mem_gb":
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or number is None or number <= 0:
            raise ValueError(f"{name} must be a number of GB > 0 (e.g. 64), found {value!r}.")
        return value if isinstance(value, (int, float)) else number
    if key == "additional_parameters":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{name} must map sbatch option names to values (e.g. {{mail-type: END}}), "
                             f"found {value!r}.")
        return dict(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, found {value!r}.")
    return value


def check_slurm(section, source, output_root):
    """The spec's slurm: section checked, with defaults (one GPU per job, logs in <output_root>/slurm_logs)."""
    if section is None:
        section = {}
    if not isinstance(section, dict) or set(section) - SLURM_KEYS:
        found = sorted(set(section) - SLURM_KEYS) if isinstance(section, dict) else repr(section)
        raise ValueError(f"{source}: 'slurm' must be a mapping with keys among {sorted(SLURM_KEYS)}, found {found}.")
    checked = {key: _slurm_value(key, value, f"{source}: slurm.{key}")
               for key, value in section.items() if value is not None}
    checked.setdefault("gpus_per_job", 1)
    checked.setdefault("log_folder", os.path.join(output_root, "slurm_logs"))
    return checked


def slurm_settings(spec, partition=None, gpus_per_job=None, time_limit=None):
    """The spec's SLURM settings with the command line's values on top; a time limit is required."""
    given = {"partition": partition, "gpus_per_job": gpus_per_job, "time": time_limit}
    settings = dict(spec["slurm"])
    settings.update({key: _slurm_value(key, value, SLURM_FLAGS[key]) for key, value in given.items()
                     if value is not None})
    if "time" not in settings:
        raise ValueError("--slurm needs a time limit per job: set slurm.time (minutes) in the sweep spec or pass "
                         "--time MINUTES. A job still running at its limit is requeued with the same command.")
    return settings


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
    if spec.get("clip_weights"):
        command += [CLIP_WEIGHTS_KEY, spec["clip_weights"]]
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
def recorded_command(job):
    """The train.py arguments the run in the job's folder recorded (run_settings.json), or None."""
    try:
        settings = run_record.read_settings(job.output_dir)
    except ValueError:  # unreadable: train.py will say so
        return None
    return (settings or {}).get("command")


def is_finished(job):
    """The engine's completion record is there, written for this job's command: nothing to run.
    (Finished with another command: train.py decides, skipping the same settings, refusing others.)"""
    return run_record.is_finished(job.output_dir) and recorded_command(job) == job.command[2:]


def job_state(job):
    if is_finished(job):
        return "finished"
    if run_record.is_finished(job.output_dir):
        return "finished with another command (train.py compares the settings)"
    return "resume" if run_record.holds_a_run(job.output_dir) else "new"


# ---------------------------------------------------------------------------- running
class SweepInterrupted(Exception):
    """SIGINT or SIGTERM reached the sweep."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_children = set()  # the running jobs' processes (each the leader of its own process group)
_children_lock = threading.Lock()
_stopping = threading.Event()


def run_command(command, env, log_path):
    """Default runner: the command in a subprocess of its own process group (so a signal to the
    sweep reaches it only through ``stop_children``), stdout and stderr appended to log_path."""
    with open(log_path, "a") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n")
        log.flush()
        with _children_lock:
            if _stopping.is_set():
                return 128 + signal.SIGTERM
            child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            _children.add(child)
        try:
            return child.wait()
        finally:
            with _children_lock:
                _children.discard(child)


def _signal_group(child, signum):
    try:
        os.killpg(child.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # already ended


def stop_children(signum=signal.SIGTERM, grace_s=STOP_GRACE_S):
    """Pass ``signum`` to every running job's process group; SIGKILL those still there after grace_s."""
    _stopping.set()
    with _children_lock:
        running = list(_children)
    for child in running:
        _signal_group(child, signum)
    deadline = time.time() + grace_s
    for child in running:
        try:
            child.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.wait()
    return len(running)


class forwarded_signals:
    """While active, SIGINT and SIGTERM raise SweepInterrupted in the main thread (no traceback, no
    orphaned jobs: the caller stops the children). A no-op outside the main thread."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._raise)
        _stopping.clear()
        return self

    @staticmethod
    def _raise(signum, frame):
        raise SweepInterrupted(signum)

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False


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


def _schedule(jobs, start, slots, wait_any, echo):
    """The loop of both runners: start each job once the job it needs succeeded, skip finished ones.

    start(job, slot) -> (handle, where): handle.done(), handle.result() -> exit code; where ends the
    'start' line (" on GPU 1", the SLURM job id). wait_any(handles) -> the handles that are done.
    """
    status, messages = {}, {}
    pending, running = list(range(len(jobs))), {}

    def record(i, code, why=None):
        status[i] = "ok" if code == 0 else "failed"
        if why is not None:
            messages[i] = why
        elif code != 0:
            messages[i] = f"exit code {code}; output in {os.path.join(jobs[i].output_dir, JOB_LOG)}"
        echo(f"{'done' if code == 0 else 'FAIL'}  {jobs[i].label()}" + ("" if code == 0 else f": {messages[i]}"))

    while pending or running:
        moved = False
        for i in list(pending):
            job, dep = jobs[i], jobs[i].after
            if dep is not None and status.get(dep) in ("failed", "blocked"):
                status[i], messages[i] = "blocked", f"not run: {jobs[dep].stage} job it needs did not succeed " \
                                                    f"({jobs[dep].output_dir})"
                echo(f"skip  {job.label()}: {messages[i]}")
            elif dep is not None and dep not in status:
                continue  # its dependency is still queued or running
            elif is_finished(job):
                status[i] = "finished"
                echo(f"skip  {job.label()}: already finished ({job.output_dir})")
            elif slots:
                slot = slots.pop(0)
                verb = "resume" if job_state(job) == "resume" else "start"
                try:
                    handle, where = start(job, slot)
                except Exception as err:  # e.g. sbatch refused the job: the others go on
                    slots.append(slot)
                    record(i, None, f"could not start: {err}")
                else:
                    echo(f"{verb} {job.label()}{where}")
                    running[handle] = (i, slot)
            else:
                continue
            pending.remove(i)
            moved = True
        if not running:
            if pending and not moved:  # only possible with a dependency that points forward
                raise ValueError(f"Jobs {pending} wait for jobs that never run; check their 'after' indices.")
            continue
        for handle in wait_any(list(running)):
            i, slot = running.pop(handle)
            slots.append(slot)
            try:
                record(i, handle.result())
            except Exception as err:  # the runner itself failed (missing python, a killed SLURM job): keep going
                record(i, None, f"could not run: {err}")
    return SweepResult([status[i] for i in range(len(jobs))], messages)


def run_jobs(jobs, runner=run_command, gpus=None, echo=print):
    """Run jobs in list order, each after the job it depends on; one at a time, or one per GPU.

    runner(command, env, log_path) -> exit code. Returns a SweepResult.
    """
    slots = list(gpus) if gpus else [None]
    pool = ThreadPoolExecutor(max_workers=len(slots))

    def start(job, gpu):
        return pool.submit(_run_one, job, gpu, runner), (f" on GPU {gpu}" if gpu is not None else "")

    try:
        return _schedule(jobs, start, slots, lambda futures: wait(futures, return_when=FIRST_COMPLETED)[0], echo)
    except SweepInterrupted as stop:
        stop_children(stop.signum)  # before the pool waits for its threads: they wait for the jobs
        raise
    finally:
        pool.shutdown(wait=True)


# ---------------------------------------------------------------------------- SLURM (submitit)
def _import_submitit():
    try:
        import submitit
    except ImportError as err:
        raise ImportError("--slurm submits the jobs through submitit, which is not installed here: "
                          "pip install submitit (or pip install -r requirements-dev.txt).") from err
    return submitit


def launch_command(command, gpus_per_job):
    """What a SLURM job runs: the train.py command, or with several GPUs the same through torchrun
    (python -m torch.distributed.run, so the spec's interpreter), one process per GPU."""
    if gpus_per_job <= 1:
        return list(command)
    return [command[0], "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus_per_job}",
            *command[1:]]


def executor_parameters(settings):
    """submitit's update_parameters() arguments for checked SLURM settings (see SUBMITIT_NAMES)."""
    parameters = {"nodes": 1, "tasks_per_node": 1}  # one task: torchrun starts the per-GPU processes itself
    parameters.update({SUBMITIT_NAMES[key]: value for key, value in settings.items() if key in SUBMITIT_NAMES})
    return parameters


def make_executor(settings, cluster="slurm"):
    """A submitit executor with the settings; cluster="local" runs the jobs on this machine (tests)."""
    submitit = _import_submitit()
    try:
        executor = submitit.AutoExecutor(folder=settings["log_folder"], cluster=cluster)
    except RuntimeError as err:  # no srun on this machine
        raise RuntimeError(f"--slurm could not find SLURM here ({err}). Run the sweep where sbatch works "
                           f"(a login node), or without --slurm to run the jobs on this machine.") from err
    executor.update_parameters(**executor_parameters(settings))
    return executor


@dataclass
class SlurmTask:
    """The callable a SLURM job runs (pickled by submitit): the command, output appended to the job log."""
    command: List[str]
    output_dir: str

    def __call__(self):
        os.makedirs(self.output_dir, exist_ok=True)
        return run_command(self.command, None, os.path.join(self.output_dir, JOB_LOG))  # the job's own env

    def checkpoint(self):
        """Called by submitit at the time limit or on preemption: requeue the same command, which
        resumes from the output folder (up to 3 time-outs, submitit's default)."""
        return _import_submitit().helpers.DelayedSubmission(self)


class _SubmittedJob:
    """A submitit job as _schedule sees it; a job that ended without an exit code says why."""

    def __init__(self, job):
        self.job = job

    def done(self):
        return self.job.done()

    def result(self):
        try:
            return self.job.result()
        except Exception as err:  # the command could not start, time limit reached too often, cancelled, ...
            raise RuntimeError(f"SLURM job {self.job.job_id} ended without an exit code (state {self.job.state}): "
                               f"{_error_line(err)}; see {self.job.paths.stderr}") from err


def _error_line(err):
    """One line of a submitit error: the exception the job raised (its traceback sits between two
    rules of dashes), else the first line."""
    text = str(err)
    parts = text.split("\n" + "-" * 22 + "\n")
    if len(parts) >= 3 and parts[1].strip():
        return parts[1].strip().splitlines()[-1]
    return (text.strip().splitlines() or [type(err).__name__])[0]


def _poll(handles, poll_s):
    while True:
        done = [handle for handle in handles if handle.done()]
        if done:
            return done
        time.sleep(poll_s)


def run_slurm_jobs(jobs, settings, cluster="slurm", poll_s=SLURM_POLL_S, echo=print):
    """Like run_jobs, each job a SLURM job: submitted when the job it needs has succeeded (no
    SLURM dependencies, so nothing is left pending behind a failure). Returns a SweepResult."""
    executor = make_executor(settings, cluster)
    submitted = []

    def start(job, slot):
        executor.update_parameters(name=f"{job.stage}-{job.dataset}-{job.shots}shots-seed{job.seed}")
        submitit_job = executor.submit(SlurmTask(launch_command(job.command, settings["gpus_per_job"]),
                                                 job.output_dir))
        submitted.append(_SubmittedJob(submitit_job))
        return submitted[-1], f": SLURM job {submitit_job.job_id} (submitit log {submitit_job.paths.stdout})"

    echo(f"SLURM: {executor_parameters(settings)}; submitit logs in {settings['log_folder']}")
    try:
        slots = [None] * len(jobs)  # no limit of our own: SLURM queues what it cannot run yet
        return _schedule(jobs, start, slots, lambda handles: _poll(handles, poll_s), echo)
    except (KeyboardInterrupt, SweepInterrupted):
        left = [s.job.job_id for s in submitted if not s.done()]
        echo(f"Interrupted. Submitted jobs keep running: {' '.join(left) or 'none'}. Wait for them (or scancel "
             f"them) before starting the sweep again, or those runs would be started twice.")
        raise


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


def dry_run(jobs, echo=print, settings=None):
    """Print each job's state and command; with SLURM settings, the command the SLURM job runs."""
    if settings is not None:
        echo(f"# SLURM, every job: {executor_parameters(settings)}; submitit logs in {settings['log_folder']}")
    for job in jobs:
        state = job_state(job)
        if job.after is not None and state != "finished" and job_state(jobs[job.after]) != "finished":
            state += f", after its {jobs[job.after].stage} job"
        echo(f"# {job.label()}: {state}")
        echo(shlex.join(job.command if settings is None else launch_command(job.command, settings["gpus_per_job"])))


def main(argv=None, runner=run_command, cluster="slurm", poll_s=SLURM_POLL_S):
    """cluster and poll_s are for the tests: cluster="local" is submitit's executor on this machine."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="sweep YAML (see configs/sweeps/)")
    parser.add_argument("--gpus", help="comma-separated GPU ids: one job per GPU at a time (CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and each run's state, run nothing")
    slurm = parser.add_argument_group("SLURM", "submit every job to SLURM through submitit; the settings come "
                                               "from the spec's slurm: section, these options override it")
    slurm.add_argument("--slurm", action="store_true", help="one SLURM job per run (needs: pip install submitit)")
    slurm.add_argument("--partition", help="SLURM partition (slurm.partition)")
    slurm.add_argument("--gpus-per-job", metavar="N",
                       help="GPUs of each job; N > 1 runs train.py through torchrun (slurm.gpus_per_job, default 1)")
    slurm.add_argument("--time", dest="time_limit", metavar="MINUTES", help="time limit of each job (slurm.time)")
    args = parser.parse_args(argv)

    overrides = {"partition": args.partition, "gpus_per_job": args.gpus_per_job, "time_limit": args.time_limit}
    if not args.slurm and any(value is not None for value in overrides.values()):
        parser.error("--partition, --gpus-per-job and --time set SLURM jobs: add --slurm (or drop them).")
    if args.slurm and args.gpus:
        parser.error("--gpus picks local GPUs; with --slurm each job gets its own (slurm.gpus_per_job or "
                     "--gpus-per-job). Use one of the two.")
    spec = load_spec(args.spec)
    jobs = build_jobs(spec)
    settings = slurm_settings(spec, **overrides) if args.slurm else None
    if args.dry_run:
        dry_run(jobs, settings=settings)
        return 0
    try:
        with forwarded_signals():
            if settings is not None:
                result = run_slurm_jobs(jobs, settings, cluster=cluster, poll_s=poll_s)
            else:
                gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
                result = run_jobs(jobs, runner=runner, gpus=gpus)
    except SweepInterrupted as stop:
        what = "the submitted SLURM jobs keep running" if settings is not None else "its running jobs were stopped"
        print(f"Sweep interrupted ({stop}): {what}; run it again to resume the unfinished runs.", file=sys.stderr)
        return 128 + stop.signum
    print(report(jobs, result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
