"""Grad-CAM heat-maps of CLIP's ViT image tower, several methods side by side (the paper's figure 3 view).

    python -m tools.gradcam --run CoOp=output/fewshot/dtd/shots_16/CoOp/vit_b16/seed1 \
        --run DPL=output/fewshot/dtd/shots_16/TrainerSubnet/vit_b16/seed1 --zeroshot \
        --images test --num-images 4 --class "banded" --out results/gradcam_dtd.png

One row per image, columns: the image, then one heat-map per method (``--run`` / ``--method`` in the
order given, then zero-shot CLIP with ``--zeroshot``). Next to the PNG, ``<out>.npz`` holds the raw
maps. Everything runs on CPU (no GPU needed).

Methods:
  --run NAME=RUN_DIR       a train.py output folder: its log.txt gives the command line of the run
                           (trainer, config files, overrides), rebuilt with train.py's own setup_cfg;
                           the weights are the run's checkpoints (an --eval-only run: its --model-dir
                           and --load-epoch); --load-epoch overrides the epoch.
  --method NAME TRAINER CONFIG_FILE MODEL_DIR
                           a trainer, its YAML ("" for none) and a checkpoint folder, with the shared
                           --root / --dataset-config-file and trailing KEY VALUE overrides.
  --zeroshot               CLIP with the dataset's hand-written template (ZeroshotCLIP), configured
                           like the first method (or by --root / --dataset-config-file / overrides).

Grad-CAM for a ViT (Selvaraju et al. 2017, on tokens): the tokens that block L reads (``--layer L``,
default the last block; that is the output of block L - 1) are made a leaf of the graph; the chosen
class's logit is back-propagated to them; channel weights = the gradient averaged over the patch
tokens; map = ReLU(sum over channels of weight x token), one value per patch, reshaped to the patch
grid and upsampled to the image for display. The last block's *output* is not used: only its class
token reaches the logit, so the gradient at its patch tokens is zero (the usual choice for CLIP,
e.g. the ``ln_1`` of the last block in pytorch-grad-cam, reads the same tokens after the norm).
"""
import argparse
import ast
import contextlib
import difflib
import io
import os
import re
import shutil
import sys
import tempfile

import numpy as np

from dassl.errors import ConfigError, MissingFileError, UnknownNameError, UnreadableImageError, UserError, \
    user_message
from trainers.prompt_config import atomic_write, new_figure, save_figure

SPLITS = ("train", "val", "test")
NORMALISING_TRANSFORMS = ("normalize", "instance_norm", "gaussian_noise")


# ---------------------------------------------------------------------------- Grad-CAM
def vit_block(vision, layer):
    """(block index, block) of a ViT image tower; ConfigError for a ResNet tower or a bad index."""
    blocks = getattr(getattr(vision, "transformer", None), "resblocks", None)
    if blocks is None or not hasattr(vision, "num_prefix_tokens"):
        raise ConfigError(
            f"Grad-CAM here needs a ViT image tower (patch tokens); this model's is {type(vision).__name__}. "
            "Use a ViT backbone (e.g. MODEL.BACKBONE.NAME ViT-B/16).")
    n = len(blocks)
    if not -n <= layer < n:
        raise ConfigError(f"--layer {layer} is out of range: the image tower has {n} blocks (0..{n - 1}, "
                          f"or -1 for the last).")
    index = layer % n
    return index, blocks[index]


def patch_grid(vision):
    """Side of the patch grid: the positional embedding holds the class token and grid**2 patches."""
    return round((vision.positional_embedding.shape[0] - vision.num_prefix_tokens) ** 0.5)


def grad_cam(logits_fn, vision, images, class_indices, layer=-1):
    """Grad-CAM maps (batch, grid, grid) (float32, >= 0, not normalised) and the logits (batch, n_cls).

    logits_fn(images) -> logits (batch, n_cls), differentiable (e.g. a trainer's ``model_inference``);
    vision: the ViT it runs (``model.image_encoder``); class_indices: one class per image.
    """
    import torch

    index, block = vit_block(vision, layer)
    captured = {}

    def make_leaf(module, args, kwargs):
        # the first gradient-tracking call only (a head may run the tower again without prompts, no_grad)
        if "tokens" in captured or not torch.is_grad_enabled():
            return None
        x = args[0] if args else kwargs["x"]
        leaf = x.detach().requires_grad_(True)  # (n_tokens, batch, width): frozen CLIP has no graph otherwise
        captured["tokens"] = leaf
        return ((leaf,) + tuple(args[1:]), kwargs) if args else (args, dict(kwargs, x=leaf))

    handle = block.register_forward_pre_hook(make_leaf, with_kwargs=True)
    try:
        with torch.enable_grad():
            logits = logits_fn(images)
            if "tokens" not in captured:
                raise RuntimeError(f"Block {index} of the image tower did not run in the model's forward pass.")
            labels = torch.as_tensor(class_indices, device=logits.device).long().reshape(-1)
            score = logits.float().gather(1, labels[:, None]).sum()  # images are independent: one backward
            (gradient,) = torch.autograd.grad(score, captured["tokens"], allow_unused=True)
    finally:
        handle.remove()
    tokens = captured["tokens"].detach().float()
    gradient = torch.zeros_like(tokens) if gradient is None else gradient.float()
    grid = patch_grid(vision)
    start = vision.num_prefix_tokens
    patches = tokens[start:start + grid * grid].permute(1, 0, 2)  # (batch, grid**2, width)
    patch_gradient = gradient[start:start + grid * grid].permute(1, 0, 2)
    weights = patch_gradient.mean(dim=1, keepdim=True)  # (batch, 1, width): one weight per channel
    maps = torch.relu((weights * patches).sum(dim=-1))  # (batch, grid**2)
    return maps.reshape(-1, grid, grid).cpu().numpy(), logits.detach().float().cpu().numpy()


def upsample(maps, size):
    """(n, grid, grid) -> (n, H, W) bilinear, each map scaled to [0, 1] (all-zero maps stay zero)."""
    import torch
    import torch.nn.functional as F

    up = F.interpolate(torch.as_tensor(maps, dtype=torch.float32)[:, None], size=size, mode="bilinear",
                       align_corners=False)[:, 0].numpy()
    peak = up.reshape(len(up), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, up / np.where(peak > 0, peak, 1), 0.0)


# ---------------------------------------------------------------------------- methods
def parse_logged_arguments(log_path):
    """The ``** Arguments **`` block train.py prints at the top of log.txt -> {name: text}."""
    if not os.path.isfile(log_path):
        raise MissingFileError(f"No log.txt in {os.path.dirname(log_path)}: --run needs a train.py output folder "
                               "(its log.txt names the trainer and configs of the run).")
    values, inside = {}, False
    with open(log_path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line == "** Arguments **":
                inside = True
            elif inside and line.startswith("** Config"):
                break
            elif inside and ": " in line or (inside and line.endswith(":")):
                key, _, value = line.partition(":")
                values[key] = value[1:] if value.startswith(" ") else value
    if "trainer" not in values:
        raise ConfigError(f"{log_path} has no '** Arguments **' block with a trainer: not a train.py log.")
    return values


def arguments_of_run(run_dir):
    """train.py's parsed arguments (argparse Namespace) as the run at ``run_dir`` was started."""
    import train

    logged = parse_logged_arguments(os.path.join(run_dir, "log.txt"))
    args = train.get_parser().parse_args([])
    for action in train.get_parser()._actions:
        if action.dest not in logged or action.dest == "help":
            continue
        text = logged[action.dest]
        if text == "None":
            value = None
        elif action.nargs in ("+", "*", argparse.REMAINDER):
            value = ast.literal_eval(text)
        elif action.const is True or action.const is False:  # store_true / store_false
            value = text == "True"
        elif action.type is int:
            value = int(text)
        else:
            value = text
        setattr(args, action.dest, value)
    return args


CHECKPOINT_RE = re.compile(r"^model\.pth\.tar-(\d+)$")


def checkpoint_of_run(run_dir, args):
    """(model dir, epoch) of a run: what an --eval-only run loaded; for a training run its own folder,
    its model-best.pth.tar when there is one (TEST.FINAL_MODEL best_val), else its last epoch."""
    if args.eval_only:
        return args.model_dir, args.load_epoch
    epochs, best = [], False
    for sub in sorted(os.listdir(run_dir)):
        folder = os.path.join(run_dir, sub)
        if os.path.isdir(folder):
            best = best or os.path.isfile(os.path.join(folder, "model-best.pth.tar"))
            epochs += [int(m.group(1)) for m in map(CHECKPOINT_RE.match, os.listdir(folder)) if m]
    if not epochs and not best:
        raise MissingFileError(f"No checkpoint (<model>/model.pth.tar-<epoch>) under {run_dir}: the run did not "
                               "finish an epoch that saves one. Pass a finished run, or --load-epoch.")
    return run_dir, None if best else max(epochs)


@contextlib.contextmanager
def quiet(verbose):
    """The engine prints a lot while building a trainer; shown with --verbose only."""
    if verbose:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def build_method(args, model_dir, epoch, overrides=(), verbose=False):
    """A trainer built as train.py builds it (config from ``args``), weights loaded from ``model_dir``."""
    import warnings

    import train
    import trainers
    from dassl.engine import build_trainer

    args = argparse.Namespace(**vars(args))
    args.opts = list(args.opts or []) + ["DATALOADER.NUM_WORKERS", "0", "USE_WRITER", "False"] + list(overrides)
    args.output_dir = tempfile.mkdtemp(prefix="gradcam-")  # never the run's folder: nothing is written there
    args.resume = ""
    try:
        cfg = train.setup_cfg(args)
        trainers.register_all()
        trainers.check_registered(cfg.TRAINER.NAME)
        with quiet(verbose), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fp16 -> fp32 on CPU and the like
            trainer = build_trainer(cfg)
            if model_dir:
                trainer.load_model(model_dir, epoch=epoch)
    finally:
        shutil.rmtree(args.output_dir, ignore_errors=True)
    trainer.model.eval()  # no dropout in CLIP; zero-shot registers no model for set_model_mode
    return trainer


def resolve_class(name, classnames):
    """Index of class ``name`` (case and '_' / ' ' insensitive); UnknownNameError with close names otherwise."""
    def norm(text):
        return text.replace("_", " ").strip().lower()

    matches = [i for i, c in enumerate(classnames) if norm(c) == norm(name)]
    if matches:
        return matches[0]
    close = difflib.get_close_matches(norm(name), [norm(c) for c in classnames], n=5, cutoff=0.3)
    close = [next(c for c in classnames if norm(c) == n) for n in close]
    shown = classnames if len(classnames) <= 20 else classnames[:20] + ["..."]
    raise UnknownNameError(
        f"--class {name!r} is not a class of this dataset ({len(classnames)} classes). "
        + (f"Close names: {close}. " if close else "")
        + f"Expected one of: {shown}."
    )


# ---------------------------------------------------------------------------- images
def read_images(paths, tfm, display_tfm):
    """[(input tensor (3, H, W), display array (H, W, 3) in [0, 1])] of image files."""
    from PIL import Image

    out = []
    for path in paths:
        if not os.path.isfile(path):
            raise MissingFileError(f"Image {path} not found; --images takes image files or a split name {SPLITS}.")
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
        except OSError as e:
            raise UnreadableImageError(f"Cannot read image {path}: {e}") from e
        shown = display_tfm(image).permute(1, 2, 0).clamp(0, 1).numpy()
        out.append((tfm(image), shown))
    return out


def choose_split_images(items, count, class_index=None):
    """Up to ``count`` Datum of a split: of ``class_index`` if given, else spread over the split."""
    if class_index is not None:
        items = [item for item in items if item.label == class_index]
    if not items:
        raise ConfigError("The chosen split has no image of that class; pick another --images split or --class.")
    picks = np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int)
    return [items[i] for i in sorted(set(picks.tolist()))]


def test_transforms(cfg):
    """(the run's test transform, the same geometry without normalisation: what is displayed)."""
    from dassl.data.transforms import build_transform

    with quiet(False):
        tfm = build_transform(cfg, is_train=False)
        shown = [c for c in cfg.INPUT.TRANSFORMS if c not in NORMALISING_TRANSFORMS]
        display = build_transform(cfg, is_train=False, choices=shown)
    return tfm, display


# ---------------------------------------------------------------------------- figure
def plot_grid(displays, maps, method_names, row_labels, path):
    """rows = images; columns = the image, then one overlay per method (maps: (methods, images, H, W))."""
    n_rows, n_cols = len(displays), len(method_names) + 1
    fig = new_figure(figsize=(0.4 + 2.0 * n_cols, 0.3 + 2.0 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for row, shown in enumerate(displays):
        axes[row, 0].imshow(shown)
        axes[row, 0].set_ylabel(row_labels[row], fontsize=8)
        for col, name in enumerate(method_names, start=1):
            axes[row, col].imshow(shown)
            axes[row, col].imshow(maps[col - 1][row], cmap="jet", alpha=0.5, vmin=0, vmax=1)
        for col in range(n_cols):
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
    for col, title in enumerate(["image"] + list(method_names)):
        axes[0, col].set_title(title, fontsize=9)
    return save_figure(fig, path)


def npz_path(png_path):
    return os.path.splitext(png_path)[0] + ".npz"


def save_maps(path, **arrays):
    def write(f):
        np.savez(f, **arrays)

    atomic_write(path, write)
    return path


# ---------------------------------------------------------------------------- program
def parse_named(text):
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ConfigError(f"--run {text!r}: expected NAME=RUN_DIR, e.g. --run CoOp=output/.../seed1.")
    return name, path


def collect_methods(opts):
    """[(name, args, model dir, epoch)] in the order of the command line, zero-shot last."""
    import train

    methods = []
    for text in opts.run or []:
        name, run_dir = parse_named(text)
        if not os.path.isdir(run_dir):
            raise MissingFileError(f"--run {name}={run_dir}: no such folder.")
        args = arguments_of_run(run_dir)
        model_dir, epoch = checkpoint_of_run(run_dir, args)
        methods.append((name, args, model_dir, opts.load_epoch if opts.load_epoch is not None else epoch))
    shared = ["--root", opts.root or "", "--dataset-config-file", opts.dataset_config_file or ""]
    for name, trainer, config_file, model_dir in opts.method or []:
        args = train.get_parser().parse_args(shared + ["--trainer", trainer, "--config-file", config_file]
                                             + list(opts.opts))
        methods.append((name, args, model_dir, opts.load_epoch))
    if opts.zeroshot:
        if methods:
            args = argparse.Namespace(**vars(methods[0][1]))
            args.opts = list(args.opts or []) + list(opts.opts)
        else:
            args = train.get_parser().parse_args(shared + list(opts.opts))
        args.trainer, args.eval_only = opts.zeroshot_trainer, True
        methods.append((opts.zeroshot_name, args, "", None))
    if not methods:
        raise ConfigError("No method given: pass --run NAME=RUN_DIR, --method NAME TRAINER CONFIG MODEL_DIR "
                          "and/or --zeroshot.")
    names = [m[0] for m in methods]
    if len(set(names)) != len(names):
        raise ConfigError(f"Method names must differ (they title the columns); got {names}.")
    return methods


def gradcam_figure(opts):
    """Build every method, compute the maps, write the PNG grid and the npz; returns the two paths."""
    import torch

    methods = collect_methods(opts)
    built = []
    for name, args, model_dir, epoch in methods:
        print(f"Building {name} ({args.trainer}" + (f", weights from {model_dir}" if model_dir else "") + ")")
        built.append((name, build_method(args, model_dir, epoch, verbose=opts.verbose)))
    classnames = list(built[0][1].dm.dataset.classnames)
    for name, trainer in built[1:]:
        if list(trainer.dm.dataset.classnames) != classnames:
            raise ConfigError(f"{name} has other classes than {built[0][0]}: the methods must be trained on the "
                              "same dataset (same DATASET.NAME and SUBSAMPLE_CLASSES).")
    cfg = built[0][1].cfg
    class_index = None if opts.class_name is None else resolve_class(opts.class_name, classnames)
    tfm, display = test_transforms(cfg)
    if len(opts.images) == 1 and opts.images[0] in SPLITS and not os.path.isfile(opts.images[0]):
        items = getattr(built[0][1].dm.dataset, opts.images[0] if opts.images[0] != "train" else "train_x")
        if not items:
            raise ConfigError(f"The dataset has no {opts.images[0]} split; use --images test or image files.")
        chosen = choose_split_images(items, opts.num_images, class_index)
        paths, labels = [d.impath for d in chosen], [d.label for d in chosen]
    else:
        if class_index is None:
            raise ConfigError("--class is required with image files (with a split, each image's label is used).")
        paths, labels = list(opts.images), [class_index] * len(opts.images)
    targets = labels if class_index is None else [class_index] * len(paths)
    loaded = read_images(paths, tfm, display)
    images = torch.stack([x for x, _ in loaded])
    displays = [shown for _, shown in loaded]

    raw, logits = [], []
    for name, trainer in built:
        maps, out = grad_cam(trainer.model_inference, trainer.model.image_encoder,
                             images.to(trainer.device), targets, opts.layer)
        raw.append(maps)
        logits.append(out)
    if len({m.shape for m in raw}) != 1:
        raise ConfigError(f"The methods' patch grids differ ({[m.shape[1:] for m in raw]}): use one backbone.")
    size = displays[0].shape[:2]
    shown_maps = [upsample(m, size) for m in raw]
    row_labels = [f"{classnames[t]}\n({os.path.basename(p)})" for t, p in zip(targets, paths)]
    png = plot_grid(displays, shown_maps, [name for name, _ in built], row_labels, opts.out)
    npz = save_maps(npz_path(opts.out), maps=np.stack(raw).astype(np.float32),
                    upsampled=np.stack(shown_maps).astype(np.float32), logits=np.stack(logits).astype(np.float32),
                    methods=np.asarray([name for name, _ in built], dtype=np.str_),
                    impaths=np.asarray(paths, dtype=np.str_), class_index=np.asarray(targets, dtype=np.int64),
                    labels=np.asarray(labels, dtype=np.int64), classnames=np.asarray(classnames, dtype=np.str_),
                    layer=np.asarray(vit_block(built[0][1].model.image_encoder, opts.layer)[0]))
    return png, npz


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__[__doc__.index("Methods:"):],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", metavar="NAME=RUN_DIR", help="a train.py output folder")
    parser.add_argument("--method", action="append", nargs=4, metavar=("NAME", "TRAINER", "CONFIG_FILE", "MODEL_DIR"),
                        help="a trainer, its config file and a checkpoint folder")
    parser.add_argument("--zeroshot", action="store_true", help="add zero-shot CLIP as the last column")
    parser.add_argument("--zeroshot-trainer", default="ZeroshotCLIP", help="ZeroshotCLIP (default) or ZeroshotCLIP2")
    parser.add_argument("--zeroshot-name", default="zero-shot CLIP", help="column title of --zeroshot")
    parser.add_argument("--images", nargs="+", default=["test"],
                        help=f"image files, or one split name {SPLITS} of the methods' dataset (default test)")
    parser.add_argument("--num-images", type=int, default=4, help="images taken from a split (default 4)")
    parser.add_argument("--class", dest="class_name",
                        help="class whose logit is explained, by name (default with a split: each image's label)")
    parser.add_argument("--layer", type=int, default=-1,
                        help="image block whose input tokens are used (0-based; default -1, the last)")
    parser.add_argument("--load-epoch", type=int, help="checkpoint epoch of every --run / --method")
    parser.add_argument("--root", help="DATASET.ROOT for --method / --zeroshot without --run")
    parser.add_argument("--dataset-config-file", help="dataset YAML for --method / --zeroshot without --run")
    parser.add_argument("--out", required=True, help="the PNG grid; the raw maps go to the same name with .npz")
    parser.add_argument("--verbose", action="store_true", help="show what the engine prints while building")
    parser.add_argument("opts", nargs=argparse.REMAINDER,
                        help="KEY VALUE config overrides for --method and --zeroshot")
    return parser


def main(argv=None):
    opts = get_parser().parse_args(argv)
    try:
        written = gradcam_figure(opts)
    except UserError as error:
        print(f"error: {user_message(error)}", file=sys.stderr)
        return 2
    for path in written:
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
