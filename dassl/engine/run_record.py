"""Run records: what a run folder was made with, and whether it finished.

Two files in every output folder, both written atomically by rank 0:

    run_settings.json   written by train.py when a run starts: the resolved config, the identity of
                        the CLIP weights and of every input file (path + SHA256), the eval-only
                        checkpoints it loads, the world size and the command line
    run_complete.json   written by the engine when the run has finished (training done and its final
                        test written, or an eval-only run's test written): the ONLY "finished" signal

train.py compares the settings a command asks for with the recorded ones (``compare``): the same
and finished -> skip; the same and unfinished -> resume; different -> refuse, listing the
differences; ``--overwrite`` moves the old run aside (``move_aside``) and starts afresh.

Settings that cannot change results are not compared (``NOT_COMPARED``, with the reason of each).
Config keys that name input files are compared by the files' SHA256, not by their paths, so a
moved or copied file of the same content is the same setting. SHA256s are cached by (path, size,
mtime) in ``$DPL_CACHE_DIR/sha256.json`` (default ``~/.cache/dpl``): a 350 MB file is hashed once.

For shell scripts:

    python -m dassl.engine.run_record finished DIR     # exit 0: DIR holds a completion record; 1: not

This module needs the standard library only (no torch), so that call is quick.
"""
import datetime
import hashlib
import json
import os
import sys
import tempfile

from dassl.errors import ConfigError

SETTINGS_FILE = "run_settings.json"
COMPLETE_FILE = "run_complete.json"
SETTINGS_FORMAT = "dpl-run-settings/1"
COMPLETE_FORMAT = "dpl-run-complete/1"
# "<run folder>.overwritten-<UTC time>": no seed<S> pattern, so tools/parse_results.py never counts it
# as a seed of its group.
ASIDE_MARK = ".overwritten-"

# Config keys that cannot change a run's results: never compared. Keep each reason.
NOT_COMPARED = {
    "OUTPUT_DIR": "where the outputs go (the folder being compared)",
    "RESUME": "which folder a training resumes from, not what it computes",
    "DATASET.ROOT": "where the datasets are on this machine ($DATA); their content is fixed by the split files",
    "DATALOADER.NUM_WORKERS": "loader processes: speed only",
    "TRAIN.PRINT_FREQ": "how often the progress line is printed",
    "TRAIN.CHECKPOINT_FREQ": "which epochs keep their checkpoint file, not what is trained",
    "VERBOSE": "how much is printed",
    "USE_WRITER": "tensorboard scalars beside the run",
}


# Compared as "CLIP weights" (the file's SHA256, or the official name's published one), not as values.
WEIGHTS_KEYS = ("MODEL.BACKBONE.NAME", "MODEL.BACKBONE.PATH")


# ---------------------------------------------------------------------------- files
def _write_json(path, obj):
    """Through a temporary file in the same folder, then renamed: never half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would (mkstemp makes it owner-only)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise ConfigError(f"Cannot read the run record {path} ({type(err).__name__}: {err}). Move the folder away "
                          f"or rerun with --overwrite.") from err


def read_settings(folder):
    """The recorded settings of the run in ``folder``, or None."""
    path = os.path.join(folder, SETTINGS_FILE)
    return _read_json(path) if os.path.isfile(path) else None


def is_finished(folder):
    return os.path.isfile(os.path.join(folder, COMPLETE_FILE))


def read_completion(folder):
    path = os.path.join(folder, COMPLETE_FILE)
    return _read_json(path) if os.path.isfile(path) else None


def holds_a_run(folder):
    """Anything of a run in ``folder``: a record, a log, a checkpoint folder (tools/sweep.py's own
    sweep_output.txt alone is not a run)."""
    if not os.path.isdir(folder):
        return False
    for name in os.listdir(folder):
        if name in (SETTINGS_FILE, COMPLETE_FILE) or name == "log.txt" or name.startswith("log.txt-"):
            return True
        if not name.startswith(".") and os.path.isdir(os.path.join(folder, name)):
            return True
    return False


# ---------------------------------------------------------------------------- SHA256, cached
def cache_path():
    return os.path.join(os.environ.get("DPL_CACHE_DIR") or os.path.expanduser("~/.cache/dpl"), "sha256.json")


def _hash_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256(path):
    """SHA256 of a file; remembered by (real path, size, mtime) so an unchanged file is read once."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = [stat.st_size, stat.st_mtime_ns]
    cache_file = cache_path()
    try:
        with open(cache_file) as f:
            cache = json.load(f)
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(real)
    if isinstance(entry, dict) and entry.get("key") == key:
        return entry["sha256"]
    digest = _hash_file(real)
    cache = {p: e for p, e in cache.items() if os.path.exists(p)}  # forget files that are gone
    cache[real] = {"key": key, "sha256": digest}
    try:
        _write_json(cache_file, cache)
    except OSError:
        pass  # a read-only home: hash again next time
    return digest


def file_identity(path):
    """{"path", "sha256"} of an input file; a missing file is recorded as such (the run reports it)."""
    if not path:
        return None
    if not os.path.isfile(path):
        return {"path": os.path.abspath(path), "sha256": None}
    return {"path": os.path.abspath(path), "sha256": sha256(path)}


# ---------------------------------------------------------------------------- settings
def flatten(node, prefix=""):
    """{dotted key: value} of a nested dict (a CfgNode is one), values as JSON gives them back."""
    flat = {}
    for key, value in node.items():
        name = prefix + str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = json.loads(json.dumps(value))  # tuples -> lists, as in the recorded file
    return flat


def make_settings(config, weights, inputs, evaluation=None, world_size=1, command=None):
    """The content of run_settings.json.

    config: the resolved config as a nested dict; weights: {"path", "sha256"} or {"name", "sha256"};
    inputs: {config key: file_identity} of the keys that name input files; evaluation: for
    --eval-only, {"model_dir", "load_epoch", "checkpoints": {relative path: sha256}}.
    """
    return {
        "format": SETTINGS_FORMAT,
        "config": json.loads(json.dumps(config)),
        "weights": weights,
        "inputs": inputs,
        "evaluation": evaluation,
        "world_size": world_size,
        "command": list(command) if command is not None else list(sys.argv),
        "started": _now(),
    }


def _compared(settings):
    """{name: comparable value} of a settings record: what decides that two runs are the same."""
    inputs = settings.get("inputs") or {}
    values = {key: value for key, value in flatten(settings.get("config") or {}).items()
              if key not in NOT_COMPARED and key not in inputs and key not in WEIGHTS_KEYS}
    for key, identity in inputs.items():
        values[key] = identity and identity.get("sha256")
    weights = settings.get("weights") or {}
    values["CLIP weights"] = weights.get("sha256") or weights.get("name")
    evaluation = settings.get("evaluation") or {}
    values["--eval-only"] = bool(evaluation)
    if evaluation:
        values["--load-epoch"] = evaluation.get("load_epoch")
        for name, digest in (evaluation.get("checkpoints") or {}).items():
            values[f"--model-dir checkpoint {name}"] = digest
    values["processes (world size)"] = settings.get("world_size", 1)
    return values


def _shown(settings, name, value):
    """How a compared value is printed: files by path and a short hash."""
    if value is None:
        return "(none)"
    inputs = settings.get("inputs") or {}
    if name in inputs and inputs[name]:
        return f"{inputs[name]['path']} (sha256 {str(value)[:12]})"
    if name == "CLIP weights":
        weights = settings.get("weights") or {}
        where = weights.get("path") or weights.get("name")
        return f"{where} (sha256 {str(weights.get('sha256'))[:12]})"
    if name.startswith("--model-dir checkpoint"):
        return f"sha256 {str(value)[:12]}"
    return json.dumps(value) if not isinstance(value, str) else value


def compare(recorded, requested):
    """Lines "KEY: recorded -> requested" for every compared setting that differs ([] = the same)."""
    old, new = _compared(recorded), _compared(requested)
    lines = []
    for name in sorted(set(old) | set(new)):
        if old.get(name, "(absent)") != new.get(name, "(absent)"):
            before = _shown(recorded, name, old[name]) if name in old else "(not recorded)"
            after = _shown(requested, name, new[name]) if name in new else "(not set)"
            lines.append(f"{name}: {before} -> {after}")
    return lines


def fingerprint(settings):
    """SHA256 of the compared settings: names a configuration in run_complete.json."""
    return hashlib.sha256(json.dumps(_compared(settings), sort_keys=True).encode()).hexdigest()


def write_settings(folder, settings):
    _write_json(os.path.join(folder, SETTINGS_FILE), settings)


# ---------------------------------------------------------------------------- decision
def decide(folder, requested, overwrite=False):
    """What train.py does with ``folder``: ("new" | "resume" | "skip", notes). Raises ConfigError when the
    folder holds a run of other settings (and not ``overwrite``).

    With ``overwrite`` an existing run is moved aside first (``move_aside``); the notes say where.
    """
    if not holds_a_run(folder):
        return "new", []
    if overwrite:
        aside = move_aside(folder)
        return "new", [f"--overwrite: the previous run in {folder} was moved aside to {aside} (a folder name "
                       f"without the seed<S> pattern: tools/parse_results.py does not count it as a seed)."]
    recorded = read_settings(folder)
    if recorded is None:
        note = (f"{folder} holds a run without {SETTINGS_FILE} (from before run records): its settings are not "
                f"checked; it resumes from its checkpoints, if any.")
        return "resume", [note]
    differences = compare(recorded, requested)
    finished = is_finished(folder)
    if differences:
        state = "a finished run" if finished else "an unfinished run"
        raise ConfigError(
            f"{folder} holds {state} with other settings ({SETTINGS_FILE}), {len(differences)} difference(s) "
            "(recorded -> requested):\n  " + "\n  ".join(differences)
            + "\nRerun with the recorded settings, pass --overwrite to start afresh (the old run is moved aside, "
              "not deleted), or choose another --output-dir."
        )
    if finished:
        return "skip", []
    return "resume", []


def move_aside(folder):
    """Rename ``folder`` to ``<folder>.overwritten-<UTC time>`` (a new name if taken); return it.

    A rename keeps everything and is atomic; where it is impossible the run is refused (nothing is deleted).
    """
    folder = os.path.normpath(folder)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    aside = f"{folder}{ASIDE_MARK}{stamp}"
    n = 1
    while os.path.exists(aside):
        n += 1
        aside = f"{folder}{ASIDE_MARK}{stamp}-{n}"
    try:
        os.rename(folder, aside)
    except OSError as err:
        raise ConfigError(f"--overwrite could not move the previous run in {folder} aside to {aside} "
                          f"({err.strerror or err}); nothing was changed. Move or delete it yourself, or choose "
                          f"another --output-dir.") from err
    return aside


# ---------------------------------------------------------------------------- completion
def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_completion(folder, kind, result=None, elapsed_s=None, epochs=None):
    """run_complete.json: ``kind`` "train" or "eval", the final test result, the settings' fingerprint."""
    settings = read_settings(folder) if os.path.isfile(os.path.join(folder, SETTINGS_FILE)) else None
    record = {
        "format": COMPLETE_FORMAT,
        "kind": kind,
        "finished": _now(),
        "result": result,
        "elapsed_s": elapsed_s,
        "epochs": epochs,
        "settings_fingerprint": fingerprint(settings) if settings else None,
    }
    _write_json(os.path.join(folder, COMPLETE_FILE), record)
    return record


# ---------------------------------------------------------------------------- command line
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv
    argv = [a for a in argv if a != "-v"]
    if len(argv) != 2 or argv[0] != "finished":
        print("usage: python -m dassl.engine.run_record finished DIR [-v]\n"
              "exit status 0 when DIR holds a completion record (run_complete.json), 1 when not", file=sys.stderr)
        return 2
    done = is_finished(argv[1])
    if verbose:
        print(f"{argv[1]}: {'finished' if done else 'not finished'}")
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
