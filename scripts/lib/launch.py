"""What the launchers (scripts/lib/launch.sh) ask Python: names resolved, overrides checked.

    python scripts/lib/launch.py dataset NAME         # tag, YAML, then the extra KEY VALUE tokens
    python scripts/lib/launch.py config TRAINER CFG   # the trainer YAML of a stem or a path
    python scripts/lib/launch.py keys KEY VALUE ...   # every KEY is a config key (did you mean ...)
    python scripts/lib/launch.py last-epoch DIR       # the latest model.pth.tar-N under DIR
    python scripts/lib/launch.py present ROOT NAME... # "present NAME" / "missing NAME FOLDER" lines

Answers go to stdout one item a line (the shell reads them with mapfile); a mistake prints one
``error:`` line that says what to do and exits with status 2, as train.py does. Only ``keys`` and
``present`` import the repository's config or dataset modules (seconds); ``keys`` caches the list
of config keys, keyed by the sources that declare them, in $LAUNCH_CACHE (default .cache/launch).
"""
import difflib
import glob
import hashlib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATASET_DIR = os.path.join(ROOT, "configs", "datasets")
TRAINER_DIR = os.path.join(ROOT, "configs", "trainers")


class LaunchError(Exception):
    pass


def did_you_mean(word, choices, casefold=True):
    """' (did you mean "x"?)' for the closest of ``choices``, or ''."""
    index = {c.lower() if casefold else c: c for c in choices}
    close = difflib.get_close_matches(word.lower() if casefold else word, list(index), n=1, cutoff=0.5)
    return ' (did you mean "{}"?)'.format(index[close[0]]) if close else ""


def read_yaml(path):
    import yaml

    try:
        with open(path) as f:
            return yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise LaunchError("cannot read the dataset YAML {}: {}".format(path, e))


def known_datasets():
    """{stem: registered name} of every configs/datasets/*.yaml."""
    known = {}
    for path in sorted(glob.glob(os.path.join(DATASET_DIR, "*.yaml"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        known[stem] = str(read_yaml(path).get("DATASET", {}).get("NAME", ""))
    return known


def dataset_yaml(entry):
    """The YAML of one entry: a path to a YAML, a configs/datasets stem, or a registered name in any case."""
    if entry.endswith((".yaml", ".yml")) or os.sep in entry:
        if os.path.isfile(entry):
            return os.path.abspath(entry)
        raise LaunchError("dataset YAML {} not found; give a path to a dataset YAML, a stem of configs/datasets/ "
                          "(e.g. caltech101) or a registered name (e.g. Caltech101)".format(entry))
    known = known_datasets()
    if entry in known:
        return os.path.join(DATASET_DIR, entry + ".yaml")
    for stem, name in known.items():
        if entry.lower() in (stem.lower(), name.lower()):
            return os.path.join(DATASET_DIR, stem + ".yaml")
    raise LaunchError("unknown dataset '{}'{}: not a stem of configs/datasets/ nor a registered name there. "
                      "Known: {}. A dataset of your own: give the path to its YAML.".format(
                          entry, did_you_mean(entry, list(known) + [n for n in known.values() if n]),
                          " ".join(known)))


def flatten(node, prefix=""):
    """[(dotted key, value)] of the leaves of a YAML mapping."""
    items = []
    for key, value in node.items():
        if isinstance(value, dict):
            items.extend(flatten(value, prefix + str(key) + "."))
        else:
            items.append((prefix + str(key), value))
    return items


def resolve_dataset(spec):
    """(tag for folder names, the --dataset-config-file, extra KEY VALUE tokens) of "A" or "A,B".

    Several datasets are joined by DATASET.NAME "A,B" (dassl/data/datasets/joined.py). train.py
    reads one dataset YAML: the first entry with keys besides DATASET.NAME (an ImageFolder YAML),
    else the first entry; the other entries' keys are passed as overrides (so two ImageFolder
    YAMLs whose keys differ cannot be joined, and are refused here)."""
    entries = [e.strip() for e in spec.split(",")]
    if not all(entries):
        raise LaunchError('dataset list "{}" has an empty entry; give "A,B" (names or YAML paths '
                          "separated by single commas)".format(spec))
    paths = [dataset_yaml(e) for e in entries]
    tags = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    if len(paths) == 1:
        return tags[0], paths[0], []
    names, extras = [], []
    for path in paths:
        keys = dict(flatten(read_yaml(path)))
        name = keys.pop("DATASET.NAME", "")
        if not name:
            raise LaunchError("{} sets no DATASET.NAME; every dataset YAML names its dataset".format(path))
        names.append(str(name))
        extras.append(keys)
    primary = next((i for i, keys in enumerate(extras) if keys), 0)
    tokens = ["DATASET.NAME", ",".join(names)]
    for i, keys in enumerate(extras):
        for key, value in keys.items():
            theirs = extras[primary].get(key, value)
            if i != primary and theirs != value:
                raise LaunchError("{} and {} give {} different values ({!r}, {!r}); joined datasets share one "
                                  "config, so only one of them may set it".format(
                                      paths[primary], paths[i], key, theirs, value))
            if i != primary and key not in extras[primary]:
                tokens += [key, repr(value)]
    return "+".join(tags), paths[primary], tokens


def trainer_yaml(trainer, cfg):
    """configs/trainers/<trainer>/<cfg>.yaml, or ``cfg`` itself when it is a path to a YAML."""
    if cfg.endswith((".yaml", ".yml")) or os.sep in cfg:
        if os.path.isfile(cfg):
            return os.path.abspath(cfg)
        raise LaunchError("config file {} not found".format(cfg))
    path = os.path.join(TRAINER_DIR, trainer, cfg + ".yaml")
    if os.path.isfile(path):
        return path
    stems = sorted(os.path.splitext(os.path.basename(p))[0]
                   for p in glob.glob(os.path.join(TRAINER_DIR, trainer, "*.yaml")))
    raise LaunchError("no config '{}' for {}{}: expected {}. Configs there: {}. A config of your own: give "
                      "the path to its YAML.".format(cfg, trainer, did_you_mean(cfg, stems, casefold=False),
                                                     os.path.relpath(path, ROOT), " ".join(stems) or "none"))


def sources_fingerprint():
    """A hash of the files that declare config keys (their names, sizes and times)."""
    files = [os.path.join(ROOT, "train.py")]
    for folder in ("dassl", "trainers", "datasets"):
        files += glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True)
    digest = hashlib.sha256()
    for path in sorted(files):
        stat = os.stat(path)
        digest.update("{}\0{}\0{}\n".format(os.path.relpath(path, ROOT), stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def config_keys():
    """Every dotted config key train.py accepts (its get_cfg_default + extend_cfg), cached."""
    cache = os.environ.get("LAUNCH_CACHE") or os.path.join(ROOT, ".cache", "launch")
    path = os.path.join(cache, "config_keys-{}.txt".format(sources_fingerprint()))
    if os.path.isfile(path):
        with open(path) as f:
            return f.read().split()
    sys.path.insert(0, ROOT)
    import train
    from dassl.config import get_cfg_default

    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    keys = train.all_keys(cfg)
    os.makedirs(cache, exist_ok=True)
    partial = "{}.{}.tmp".format(path, os.getpid())
    with open(partial, "w") as f:
        f.write("\n".join(keys) + "\n")
    os.replace(partial, path)  # atomic: a concurrent launcher reads the whole list or none
    return keys


def check_keys(opts):
    if len(opts) % 2:
        raise LaunchError("trailing config overrides must be KEY VALUE pairs, got an odd number of items: {}".format(
            " ".join(opts)))
    keys = opts[0::2]
    if not keys:
        return
    known = set(config_keys())
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = ' (did you mean "{}"?)'.format(close[0]) if close else ""
            raise LaunchError('unknown config key "{}" in the overrides{}. Overrides are KEY VALUE pairs after the '
                              "launcher's own arguments; every key is listed in docs/options.md.".format(key, hint))


def last_epoch(directory):
    epochs = [int(m.group(1)) for p in glob.glob(os.path.join(directory, "*", "model.pth.tar-*"))
              for m in [re.search(r"model\.pth\.tar-(\d+)$", p)] if m]
    if not epochs:
        raise LaunchError("no checkpoint (*/model.pth.tar-N) in {}: run the training stage first, or set LOADEP".format(
            directory))
    return max(epochs)


def presence(root, names):
    """Whether each dataset's folder is under ``root`` (the registered class's ``dataset_dir``)."""
    sys.path.insert(0, ROOT)
    import datasets  # noqa: F401  (registers every dataset)
    from dassl.data.datasets import DATASET_REGISTRY

    lines = []
    for name in names:
        _, path, _ = resolve_dataset(name)
        registered = str(read_yaml(path).get("DATASET", {}).get("NAME", ""))
        folder = getattr(DATASET_REGISTRY.get(registered), "dataset_dir", "") if registered else ""
        if folder and not os.path.isdir(os.path.join(root, folder)):
            lines.append("missing {} {}".format(name, os.path.join(root, folder)))
        else:
            lines.append("present {}".format(name))
    return lines


def main(argv):
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "dataset" and len(args) == 1:
        tag, path, tokens = resolve_dataset(args[0])
        lines = [tag, path] + tokens
    elif command == "config" and len(args) == 2:
        lines = [trainer_yaml(*args)]
    elif command == "keys":
        check_keys(args)
        lines = []
    elif command == "last-epoch" and len(args) == 1:
        lines = [str(last_epoch(args[0]))]
    elif command == "present" and args:
        lines = presence(args[0], args[1:])
    else:
        raise LaunchError("usage: see the docstring of scripts/lib/launch.py")
    for line in lines:
        if "\n" in str(line):
            raise LaunchError("a value with a line break cannot be passed by the launchers: {!r}".format(line))
        print(line)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except LaunchError as error:
        print("error: {}".format(error), file=sys.stderr)
        sys.exit(2)
