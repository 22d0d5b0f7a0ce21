"""Train or evaluate a registered trainer on a registered dataset (CoOp's command line).

    python train.py --root DATA --trainer CoOp \
        --dataset-config-file configs/datasets/oxford_pets.yaml \
        --config-file configs/trainers/CoOp/vit_b16.yaml \
        --output-dir output/coop/oxford_pets/seed1 --seed 1 \
        DATASET.NUM_SHOTS 16 TRAINER.COOP.N_CTX 16

Trailing ``KEY VALUE`` pairs override any config key; every key and its default is in
``dassl/config/defaults.py`` (engine) or ``extend_cfg`` below (this project).

A mistake in the input (``dassl/errors.py``: unknown name or key, missing file, weights or
checkpoint that do not fit, ...) prints one ``error:`` line and exits with status 2; ``--debug``
or ``DPL_DEBUG=1`` shows its traceback. Any other exception is a bug and keeps its traceback.
"""

import argparse
import ast
import os
import sys

import torch
import yaml
from yacs.config import CfgNode as CN

import datasets  # registers every dataset
import trainers
from dassl.config import get_cfg_default
from dassl.engine import build_trainer
from dassl.utils import (
    ConfigError,
    MissingFileError,
    UnknownNameError,
    UserError,
    collect_env_info,
    get_most_similar_str_to_a_from_b,
    set_random_seed,
    setup_logger,
    user_message,
)
from dassl.utils.dist import get_rank, get_world_size, init_distributed_from_env

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
    cfg.freeze()
    return cfg


def main(args):
    cfg = setup_cfg(args)
    init_distributed_from_env(use_cuda=cfg.USE_CUDA)  # before the logger: only rank 0 writes log.txt
    if cfg.SEED >= 0:
        print("Setting fixed seed: {}".format(cfg.SEED))
        set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)

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

    if args.eval_only:
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        if cfg.TEST.SAVE_PREDICTIONS:  # <OUTPUT_DIR>/predictions_<split>.npz
            trainer.test(save_predictions=True)
        else:
            trainer.test()
        return trainer

    if not args.no_train:
        trainer.train()
    return trainer


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=str, default="", help="path to dataset")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument("--resume", type=str, default="", help="checkpoint directory (from which the training resumes)")
    parser.add_argument("--seed", type=int, default=-1, help="only positive value enables a fixed seed")
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
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an input error too (also: environment DPL_DEBUG=1)")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER,
                        help="modify config options using the command-line")
    return parser


def debug_requested(args):
    return args.debug or os.environ.get("DPL_DEBUG", "") not in ("", "0")


def run(argv=None):
    """The program: ``main`` with an input error (``UserError``) printed as one line, exit status 2."""
    args = get_parser().parse_args(argv)
    try:
        return main(args)
    except UserError as error:
        if debug_requested(args):
            raise
        sys.stdout.flush()
        print("error: {}".format(user_message(error)), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
