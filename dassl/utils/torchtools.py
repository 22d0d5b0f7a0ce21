"""Checkpoints (atomic, plain data, weights_only-loadable), resume, pretrained weights.

A checkpoint file is ``torch.save`` of a dict with the Dassl keys ``state_dict``,
``epoch`` (completed epochs), ``optimizer``, ``scheduler``, ``val_result`` and, ours,
``rng_state`` (python / numpy / torch / cuda generator states as lists and tensors),
so that ``torch.load(path)`` with torch's default ``weights_only=True`` reads it.
"""

import os
import os.path as osp
import pickle
import random
import shutil
import tempfile
import warnings
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

from ..errors import CheckpointError, MissingFileError
from .tools import mkdir_if_missing

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "list_checkpoints",
    "remove_superseded_checkpoints",
    "resume_from_checkpoint",
    "load_pretrained_weights",
    "count_num_param",
    "get_rng_state",
    "set_rng_state",
    "open_all_layers",
    "open_specified_layers",
    "init_network_weights",
]


def get_rng_state():
    """Every global RNG state as plain data (lists, ints, tensors)."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss),
                  float(np_gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state):
    """Inverse of ``get_rng_state``; CUDA states are restored only if devices exist."""
    py_version, py_internal, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_internal), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)


def _file_mode():
    """Permissions a plain ``open(..., "w")`` would give (mkstemp makes files owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(fpath, write_fn):
    """Call ``write_fn(tmp_path)`` then rename onto ``fpath``: readers never see half a file."""
    directory = osp.dirname(fpath) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + osp.basename(fpath) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, fpath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _write_text(fpath, text):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    _atomic_write(fpath, write)


def save_checkpoint(state, save_dir, is_best=False, remove_module_from_keys=True, model_name=""):
    """Save ``state`` to ``save_dir/<model_name or model.pth.tar-<epoch>>`` atomically.

    Also rewrites ``save_dir/checkpoint`` (the name of the last file saved) and, when
    ``is_best``, copies the file to ``model-best.pth.tar``.
    """
    mkdir_if_missing(save_dir)
    if remove_module_from_keys:
        state["state_dict"] = OrderedDict(
            (k[len("module."):] if k.startswith("module.") else k, v) for k, v in state["state_dict"].items()
        )
    if not model_name:
        model_name = "model.pth.tar-" + str(state["epoch"])
    fpath = osp.join(save_dir, model_name)
    _atomic_write(fpath, lambda tmp: torch.save(state, tmp))
    print("Checkpoint saved to {}".format(fpath))
    _write_text(osp.join(save_dir, "checkpoint"), "{}\n".format(osp.basename(fpath)))
    if is_best:
        best_fpath = osp.join(osp.dirname(fpath), "model-best.pth.tar")
        _atomic_write(best_fpath, lambda tmp: shutil.copyfile(fpath, tmp))
        print('Best checkpoint saved to "{}"'.format(best_fpath))


EPOCH_FILE_PREFIX = "model.pth.tar-"


def _epoch_of(name):
    """The epoch of a ``model.pth.tar-<epoch>`` file name, else None."""
    suffix = name[len(EPOCH_FILE_PREFIX):] if name.startswith(EPOCH_FILE_PREFIX) else ""
    return int(suffix) if suffix.isdigit() else None


def list_checkpoints(folder):
    """The checkpoint files of ``folder`` (one model's folder): epochs in order, then model-best.pth.tar."""
    if not osp.isdir(folder):
        return []
    names = os.listdir(folder)
    epochs = sorted((_epoch_of(n), n) for n in names if _epoch_of(n) is not None)
    return [n for _, n in epochs] + (["model-best.pth.tar"] if "model-best.pth.tar" in names else [])


def remove_superseded_checkpoints(folder, keep_epoch):
    """Delete the ``model.pth.tar-<epoch>`` files of ``folder`` that are not kept.

    ``keep_epoch(epoch) -> bool``; the file the ``checkpoint`` pointer names is always kept. Call it
    after the new checkpoint and its pointer are written: a kill at any moment leaves the pointer
    naming a complete file.
    """
    pointer = osp.join(folder, "checkpoint")
    current = open(pointer).readline().strip() if osp.isfile(pointer) else None
    for name in os.listdir(folder) if osp.isdir(folder) else ():
        epoch = _epoch_of(name)
        if epoch is not None and name != current and not keep_epoch(epoch):
            os.remove(osp.join(folder, name))


def load_checkpoint(fpath):
    """Load a checkpoint on CUDA when available, else CPU.

    Plain-data files (ours) load with ``weights_only=True``. Files written by stock Dassl
    pickle scheduler objects; those are the user's own outputs, so we fall back to a full
    unpickle with a warning rather than refuse them.
    """
    if fpath is None:
        raise ValueError("File path is None")
    if not osp.exists(fpath):
        raise MissingFileError('Checkpoint not found at "{}"; check the path you gave (--model-dir, --resume, '
                               "MODEL.INIT_WEIGHTS).".format(fpath))
    map_location = None if torch.cuda.is_available() else "cpu"
    try:
        try:
            return torch.load(fpath, map_location=map_location, weights_only=True)
        except UnicodeDecodeError:
            return torch.load(fpath, map_location=map_location, weights_only=True, encoding="latin1")
    except pickle.UnpicklingError:
        warnings.warn(
            '"{}" holds Python objects beyond plain tensors (probably written by stock Dassl); '
            "loading it with weights_only=False. Only do this for files you trust.".format(fpath)
        )
    except Exception as err:  # a truncated or foreign file
        raise _unreadable_checkpoint(fpath, err) from err
    try:
        return torch.load(fpath, map_location=map_location, weights_only=False)
    except Exception as err:
        raise _unreadable_checkpoint(fpath, err) from err


def _unreadable_checkpoint(fpath, err):
    return CheckpointError('Cannot read checkpoint "{}" ({}: {}). Expected a file written by torch.save '
                           "(model.pth.tar-<epoch>, model-best.pth.tar); it may be truncated or of another "
                           "format: replace it or train again.".format(fpath, type(err).__name__, err))


def resume_from_checkpoint(fdir, model, optimizer=None, scheduler=None, restore_rng=True):
    """Restore model/optimizer/scheduler (and RNG states) from the file named in ``fdir/checkpoint``.

    Returns the number of completed epochs stored in the file.
    """
    pointer = osp.join(fdir, "checkpoint")
    if not osp.isfile(pointer):
        raise MissingFileError(
            'Cannot resume: "{}" is missing. It names the last checkpoint saved in that folder; '
            "delete the folder to train from scratch.".format(pointer)
        )
    with open(pointer, "r") as f:
        fname = f.readline().strip("\n")
    fpath = osp.join(fdir, fname)
    print('Loading checkpoint from "{}"'.format(fpath))
    checkpoint = load_checkpoint(fpath)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:  # names or shapes differ
        raise CheckpointError('Cannot resume from "{}": it does not fit the model ({}). Resume with the config '
                              "that wrote it, or delete the folder to train from scratch.".format(fpath, err)) from None
    print("Loaded model weights")
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        print("Loaded optimizer")
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
        print("Loaded scheduler")
    if restore_rng and checkpoint.get("rng_state") is not None:
        set_rng_state(checkpoint["rng_state"])
        print("Loaded random number generator states")
    start_epoch = checkpoint["epoch"]
    print("Previous epoch: {}".format(start_epoch))
    return start_epoch


def load_pretrained_weights(model, weight_path):
    """Load every tensor of ``weight_path`` whose name and shape match ``model``."""
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint["state_dict"] if "state_dict" in checkpoint else checkpoint
    model_dict = model.state_dict()
    matched, discarded = OrderedDict(), []
    for k, v in state_dict.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k in model_dict and model_dict[k].size() == v.size():
            matched[k] = v
        else:
            discarded.append(k)
    model_dict.update(matched)
    model.load_state_dict(model_dict)
    if not matched:
        warnings.warn("Cannot load {} (check the key names manually)".format(weight_path))
        return
    print("Successfully loaded pretrained weights from {}".format(weight_path))
    if discarded:
        print("Layers discarded due to unmatched keys or size: {}".format(discarded))


def count_num_param(model=None, params=None):
    """Number of scalars in ``model.parameters()`` or in ``params`` (tensors or param-group dicts)."""
    if model is not None:
        return sum(p.numel() for p in model.parameters())
    if params is not None:
        total = 0
        for p in params:
            if isinstance(p, dict):
                total += p["params"].numel()
            else:
                total += p.numel()
        return total
    raise ValueError("count_num_param() needs model or params, got neither")


def open_all_layers(model):
    """Train mode and ``requires_grad`` for every parameter."""
    model.train()
    for p in model.parameters():
        p.requires_grad = True


def open_specified_layers(model, open_layers):
    """Train only the named direct children; the others are frozen and in eval mode."""
    if isinstance(model, nn.DataParallel):
        model = model.module
    if isinstance(open_layers, str):
        open_layers = [open_layers]
    for layer in open_layers:
        assert hasattr(model, layer), '"{}" is not an attribute of the model, please provide the correct name'.format(
            layer
        )
    for name, module in model.named_children():
        is_open = name in open_layers
        module.train(is_open)
        for p in module.parameters():
            p.requires_grad = is_open


def init_network_weights(model, init_type="normal", gain=0.02):
    """Initialise Conv/Linear weights (bias 0) and norm-layer affines (weight 1, bias 0)."""

    def init_func(m):
        classname = m.__class__.__name__
        if hasattr(m, "weight") and ("Conv" in classname or "Linear" in classname):
            if init_type == "normal":
                nn.init.normal_(m.weight.data, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight.data, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight.data, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(m.weight.data, gain=gain)
            else:
                raise NotImplementedError("initialization method {} is not implemented".format(init_type))
            if getattr(m, "bias", None) is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif "BatchNorm" in classname or "InstanceNorm" in classname:
            if getattr(m, "weight", None) is not None:
                nn.init.constant_(m.weight.data, 1.0)
            if getattr(m, "bias", None) is not None:
                nn.init.constant_(m.bias.data, 0.0)

    model.apply(init_func)
