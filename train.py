"""Train or evaluate a registered trainer on a registered dataset (CoOp's command line).

    python train.py --root DATA --trainer CoOp \
        --dataset-config-file configs/datasets/oxford_pets.yaml \
        --config-file configs/trainers/CoOp/vit_b16.yaml \
        --output-dir output/coop/oxford_pets/seed1 --seed 1 \
        DATASET.NUM_SHOTS 16 TRAINER.COOP.N_CTX 16

Trailing ``KEY VALUE`` pairs override any config key; every key and its default is in
``dassl/config/defaults.py`` (engine) or ``extend_cfg`` below (this project).

Options may also follow the overrides (``... DATASET.NUM_SHOTS 2 --output-dir X``): every ``--name``
in a KEY position of the trailing pairs is taken as the option it names.

The output folder records its run (``dassl/engine/run_record.py``): ``run_settings.json`` when
the run starts, ``run_complete.json`` when it has finished. Given a folder that holds a run, a
finished one with the same settings is skipped (exit status 0), an unfinished one resumes, and
one of other settings is refused with the differences listed (exit status 2); ``--overwrite``
moves the old run aside to ``<folder>.overwritten-<time>`` and starts afresh.

A mistake in the input (``dassl/errors.py``: unknown name or key, missing file, weights or
checkpoint that do not fit, ...) prints one ``error:`` line and exits with status 2; ``--debug``
or ``DPL_DEBUG=1`` shows its traceback. Any other exception is a bug and keeps its traceback.
Once the run has its ``log.txt``, the error (and the traceback, if shown) is appended to it too.
"""

import argparse
import ast
import os
import re
import sys
import traceback

import torch
import yaml
from yacs.config import CfgNode as CN

import datasets  # registers every dataset
import trainers
from dassl.config import get_cfg_default
from dassl.engine import TRAINER_REGISTRY, build_trainer, run_record
from dassl.utils import (
    ConfigError,
    Logger,
    MissingFileError,
    UnknownNameError,
    UserError,
    collect_env_info,
    get_most_similar_str_to_a_from_b,
    set_random_seed,
    setup_logger,
    user_message,
)
from dassl.utils.dist import broadcast_object, get_rank, get_world_size, init_distributed_from_env, is_main_process

trainers.register_all()  # imports every method module: each registers its trainers


def print_args(args, cfg):
    print("***************")
    print("** Arguments **")
    print("***************")
    for key in sorted(args.__dict__.keys()):
        print("{}: {}".format(key, args.__dict__[key]))
    print("************")
    print("** Config **")
    print("************")
    print(cfg)


def reset_cfg(cfg, args):
    """Copy the command-line options that were given onto the config."""
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    if args.seed >= 0:  # CoOp tests `if args.seed:`, which silently ignores seed 0
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head


# The project's own keys outside any method or dataset (those are declared in their files).
OPTIONS = {
    "MODEL.BACKBONE": {
        "PATH": ("", "local CLIP weights (TorchScript archive or state dict); wins over NAME, no download"),
    },
    "": {
        "USE_WRITER": (False, "write tensorboard scalars to <OUTPUT_DIR>/tensorboard"),
    },
}


# Config keys that name input files: a run records each file's SHA256 and compares the content, not
# the path (run_record.py). Trainer modules add theirs (``INPUT_FILE_KEYS``, e.g. the subnet's alpha
# files); the CLIP weights (MODEL.BACKBONE.PATH / NAME) are recorded as "CLIP weights".
INPUT_FILE_KEYS = ("MODEL.INIT_WEIGHTS",)


def declared_options():
    """Every option this project adds: train.py's, then each trainer and dataset module's
    ``OPTIONS`` (trainers/options.py), in module-name order."""
    from trainers import options

    return options.collect([sys.modules[__name__]] + options.project_modules())


def extend_cfg(cfg):
    """Add every config section of this project, with its defaults (docs/options.md)."""
    from trainers import options

    for _, declared in declared_options():
        options.add_options(cfg, declared)


def all_keys(node, prefix=""):
    """Dotted names of every leaf of a CfgNode."""
    keys = []
    for key, value in node.items():
        name = prefix + key
        keys.extend(all_keys(value, name + ".") if isinstance(value, CN) else [name])
    return keys


def check_override_keys(cfg, opts):
    """Fail with the key's name (and the closest existing one) before yacs sees a bad override."""
    if len(opts) % 2 != 0:
        raise ConfigError("Config overrides must be KEY VALUE pairs, got an odd number of items: {}".format(opts))
    known = all_keys(cfg)
    for key in opts[0::2]:
        if key not in known:
            raise UnknownNameError(
                'Unknown config key "{}" in the command-line overrides (did you mean "{}"?). '
                "Every key is listed in dassl/config/defaults.py or train.py: extend_cfg.".format(
                    key, get_most_similar_str_to_a_from_b(key, known))
            )


def value_aliases():
    """{dotted key: {release value: ours}}: values a release's files give a key in another type than ours,
    declared beside the method (``VALUE_ALIASES``; e.g. KgCoOp's boolean TRAINER.COOP.CTX_INIT)."""
    from trainers import options

    aliases = {}
    for module in options.project_modules():
        aliases.update(getattr(module, "VALUE_ALIASES", {}))
    return aliases


def our_value(key, value, aliases):
    """``value`` of config ``key``, mapped when it is one of the release values (same type and value)."""
    for theirs, ours in aliases.get(key, {}).items():
        if type(value) is type(theirs) and value == theirs:
            return ours
    return value


def apply_value_aliases(node, aliases, prefix=""):
    """Map the release values of a loaded YAML (a CfgNode) in place."""
    for key, value in node.items():
        if isinstance(value, CN):
            apply_value_aliases(value, aliases, prefix + key + ".")
        else:
            node[key] = our_value(prefix + key, value, aliases)


def aliased_overrides(opts, aliases):
    """The command line's KEY VALUE pairs with release values mapped (decoded as yacs decodes them)."""
    opts = list(opts)
    for i in range(1, len(opts), 2):
        if opts[i - 1] in aliases:
            try:
                value = ast.literal_eval(opts[i])
            except (ValueError, SyntaxError):
                continue
            ours = our_value(opts[i - 1], value, aliases)
            if ours is not value:
                opts[i] = ours
    return opts


def merge_file(cfg, path):
    if not os.path.isfile(path):
        raise MissingFileError("Config file {} not found; check --config-file / --dataset-config-file (the "
                               "files of this repository are under configs/).".format(path))
    try:
        with open(path) as f:
            loaded = CN.load_cfg(f)
        apply_value_aliases(loaded, value_aliases())
        cfg.merge_from_other_cfg(loaded)
    except KeyError as e:
        raise UnknownNameError("{}: {} (keys are listed in dassl/config/defaults.py and train.py: extend_cfg)".format(
            path, e.args[0] if e.args else e)) from e
    except (ValueError, yaml.YAMLError) as e:  # a value of the wrong type, or not YAML
        raise ConfigError("{}: {}".format(path, e)) from e


def setup_cfg(args):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    if args.dataset_config_file:
        merge_file(cfg, args.dataset_config_file)
    if args.config_file:
        merge_file(cfg, args.config_file)
    reset_cfg(cfg, args)
    check_override_keys(cfg, args.opts)
    try:
        cfg.merge_from_list(aliased_overrides(args.opts, value_aliases()))
    except ValueError as e:  # yacs: a value of the wrong type
        raise ConfigError("In the command-line overrides: {}".format(e)) from e
    if args.eval_only and args.model_dir:
        cfg.merge_from_list(model_dir_overrides(cfg, args.model_dir))
    cfg.freeze()
    return cfg


def model_dir_overrides(cfg, model_dir):
    """KEY VALUE pairs the trainer reads off the training folder it evaluates (``model_dir_overrides``
    of the trainer class; e.g. the subnet's prompt configuration), printed when there are any."""
    if cfg.TRAINER.NAME not in TRAINER_REGISTRY:
        return []
    hook = getattr(TRAINER_REGISTRY.get(cfg.TRAINER.NAME), "model_dir_overrides", None)
    overrides = list(hook(cfg, model_dir)) if hook is not None else []
    for key, value in zip(overrides[0::2], overrides[1::2]):
        print("From --model-dir: {} {}".format(key, value))
    return overrides


# ----------------------------------------------------------------------------- run records
def input_file_keys():
    from trainers import options

    keys = list(INPUT_FILE_KEYS)
    for module in options.project_modules():
        keys.extend(getattr(module, "INPUT_FILE_KEYS", ()))
    return keys


def weights_identity(cfg):
    """The CLIP weights: the file (path, SHA256), or the official name with its published SHA256."""
    path = cfg.MODEL.BACKBONE.get("PATH", "")
    if path:
        return run_record.file_identity(path)
    import clip.clip

    url = clip.clip._MODELS.get(cfg.MODEL.BACKBONE.NAME)  # each URL carries the file's SHA256
    return {"name": cfg.MODEL.BACKBONE.NAME, "sha256": clip.clip._expected_sha256(url) if url else None}


def model_dir_checkpoints(model_dir, load_epoch):
    """{"<model>/<file>": SHA256} of the files --eval-only loads from ``model_dir``."""
    model_file = "model-best.pth.tar" if load_epoch is None else "model.pth.tar-{}".format(load_epoch)
    found = {}
    if os.path.isdir(model_dir):
        for name in sorted(os.listdir(model_dir)):
            path = os.path.join(model_dir, name, model_file)
            if os.path.isfile(path):
                found["{}/{}".format(name, model_file)] = run_record.sha256(path)
    return found


def requested_settings(cfg, args, argv):
    """What this command would record in run_settings.json."""
    inputs = {key: run_record.file_identity(cfg_value(cfg, key)) for key in input_file_keys()
              if cfg_value(cfg, key)}
    evaluation = None
    if args.eval_only:
        evaluation = {"model_dir": os.path.abspath(args.model_dir) if args.model_dir else "",
                      "load_epoch": args.load_epoch,
                      "checkpoints": model_dir_checkpoints(args.model_dir, args.load_epoch) if args.model_dir else {}}
    return run_record.make_settings(cfg, weights_identity(cfg), inputs, evaluation, get_world_size(),
                                    command=argv)


def cfg_value(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node.get(part, "") if hasattr(node, "get") else ""
    return node


def decide_run(cfg, args, argv):
    """("new" | "resume" | "skip", notes, settings), decided by rank 0 for every process; a refusal
    (other settings) is raised on every process."""
    outcome = None
    if is_main_process():
        try:
            settings = requested_settings(cfg, args, argv)
            action, notes = run_record.decide(cfg.OUTPUT_DIR, settings, overwrite=args.overwrite)
            outcome = ("ok", action, notes, settings)
        except UserError as error:
            outcome = ("error", type(error).__name__, str(error), None)
    outcome = broadcast_object(outcome)
    if outcome[0] == "error":
        if is_main_process():
            raise ConfigError(outcome[2])
        raise ConfigError("rank 0 refused the run: {}".format(outcome[2]))
    return outcome[1:]


def main(args, argv=None):
    cfg = setup_cfg(args)
    init_distributed_from_env(use_cuda=cfg.USE_CUDA)  # before the logger: only rank 0 writes log.txt
    recorded = not args.no_train  # --no-train only builds: nothing is run, nothing recorded
    if recorded:
        action, notes, settings = decide_run(cfg, args, sys.argv[1:] if argv is None else argv)
        if action == "skip":
            if is_main_process():
                print("{}: already finished with these settings; skipping (--overwrite runs it again)".format(
                    cfg.OUTPUT_DIR))
            return None
    if cfg.SEED >= 0:
        print("Setting fixed seed: {}".format(cfg.SEED))
        set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)
    for note in notes if recorded else ():
        print("Note: " + note)

    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True

    print_args(args, cfg)
    print("Collecting env info ...")
    print("** System info **\n{}\n".format(collect_env_info()))

    # a trainer/dataset file that failed to import is named here, not hidden behind "unknown name"
    trainers.check_registered(cfg.TRAINER.NAME)
    datasets.check_registered(cfg.DATASET.NAME)
    trainer = build_trainer(cfg)
    if cfg.SEED >= 0 and get_world_size() > 1:
        # Same seed on every rank while the model was built (identical initial prompts); from
        # here on each rank draws its own augmentations.
        set_random_seed(cfg.SEED + get_rank())

    if args.eval_only and not args.model_dir and trainer.get_model_names() and not args.allow_untrained:
        raise ConfigError(
            "--eval-only without --model-dir would evaluate the untrained (initial) {} of {}. Pass --model-dir "
            "<the training output folder>, or --allow-untrained to evaluate them on purpose.".format(
                " and ".join(trainer.get_model_names()), cfg.TRAINER.NAME))
    if recorded and is_main_process():
        run_record.write_settings(cfg.OUTPUT_DIR, settings)

    if args.eval_only:
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        if cfg.TEST.SAVE_PREDICTIONS:  # <OUTPUT_DIR>/predictions_<split>.npz
            result = trainer.test(save_predictions=True)
        else:
            result = trainer.test()
        trainer.record_completion("eval", result)
        return trainer

    if not args.no_train:
        trainer.train()
    return trainer


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=str, default="", help="path to dataset")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument("--resume", type=str, default="", help="checkpoint directory (from which the training resumes)")
    parser.add_argument("--seed", type=int, default=-1,
                        help="fixed random seed (0 included) for python, numpy and torch; a negative value (the "
                             "default) keeps SEED of the config files, whose default -1 means no fixed seed")
    parser.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    parser.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="path to config file")
    parser.add_argument("--dataset-config-file", type=str, default="", help="path to config file for dataset setup")
    parser.add_argument("--trainer", type=str, default="", help="name of trainer")
    parser.add_argument("--backbone", type=str, default="", help="name of CNN backbone")
    parser.add_argument("--head", type=str, default="", help="name of head")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="", help="load model from this directory for eval-only mode")
    parser.add_argument("--load-epoch", type=int, help="load model weights at this epoch for evaluation")
    parser.add_argument("--allow-untrained", action="store_true",
                        help="let --eval-only without --model-dir evaluate a trainer's untrained (initial) prompts")
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in an --output-dir that holds a run (finished or not, any settings): the "
                             "old run is moved aside to <output-dir>.overwritten-<time>, not deleted")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an input error too (also: environment DPL_DEBUG=1)")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="modify config options using the command-line")
    return parser


def debug_requested(args):
    return args.debug or os.environ.get("DPL_DEBUG", "") not in ("", "0")


# A config key as the trailing overrides spell it (TRAINER.COOP.N_CTX): never an option.
CONFIG_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Za-z0-9_]+)*$")


def split_trailing_options(parser, opts):
    """(options, KEY VALUE overrides) of the tokens after the first override: a ``--name`` where a KEY
    would be is an option (config keys never start with "-"), with the values its action takes."""
    options, overrides, i = [], [], 0
    while i < len(opts):
        token = opts[i]
        if not (token.startswith("--") and len(token) > 2):
            overrides += opts[i:i + 2]
            i += 2
            continue
        action = parser._option_string_actions.get(token.split("=", 1)[0])
        if action is None:
            raise ConfigError("Unknown option {} among the KEY VALUE overrides; the options are listed by "
                              "python train.py --help.".format(token))
        options.append(token)
        i += 1
        if "=" in token or action.nargs == 0:
            continue
        if action.nargs in (None, 1):
            options += opts[i:i + 1]
            i += 1
        else:  # "+" / "*": up to the next option or config key
            while i < len(opts) and not opts[i].startswith("--") and not CONFIG_KEY_RE.match(opts[i]):
                options.append(opts[i])
                i += 1
    return options, overrides


def parse_args(argv=None):
    """The parser's arguments, with options given after the overrides moved before them."""
    parser = get_parser()
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    args = parser.parse_args(argv)
    if args.opts and argv[len(argv) - len(args.opts):] == args.opts:
        options, overrides = split_trailing_options(parser, args.opts)
        if options:
            args = parser.parse_args(argv[:len(argv) - len(args.opts)] + options + overrides)
    return args, argv


def append_to_log(text):
    """Add ``text`` to this run's log.txt (only once the logger tees stdout into it)."""
    log = sys.stdout if isinstance(sys.stdout, Logger) else None
    if log is not None and log.file is not None and not log.file.closed:
        log.file.write(text if text.endswith("\n") else text + "\n")
        log.flush()


def run(argv=None):
    """The program: ``main`` with an input error (``UserError``) printed as one line, exit status 2.

    The error (with the traceback when it is shown) also goes to the end of the run's log.txt.
    """
    debug = debug_requested(argparse.Namespace(debug="--debug" in (sys.argv[1:] if argv is None else argv)))
    try:
        args, argv = parse_args(argv)
        return main(args, argv)
    except UserError as error:
        message = "error: {}".format(user_message(error))
        append_to_log(message + ("\n" + traceback.format_exc() if debug else ""))
        if debug:
            raise
        sys.stdout.flush()
        print(message, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        append_to_log("Interrupted (KeyboardInterrupt)")
        raise
    except Exception:
        append_to_log(traceback.format_exc())
        raise


if __name__ == "__main__":
    run()
