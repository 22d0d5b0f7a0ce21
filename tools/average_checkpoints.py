"""Average the prompt checkpoints of several runs (e.g. seeds 1-3 of an MVLPT source run) into one.

    python -m tools.average_checkpoints OUT RUN [RUN ...] [--model-name prompt_learner] [--file model-best.pth.tar]

Each RUN is a training output folder (its ``<model-name>/<file>`` is read) or a checkpoint file.
Every tensor of the state dict is averaged element-wise with equal weights (computed in float64,
stored in the tensor's own dtype), as the MVLPT release's ``avg_ckpt.py`` does; ``epoch`` is the
integer mean, ``val_result`` the mean of those recorded. Keys, shapes and the ``mvlpt`` record
(variant, mixing, backbone) must agree. OUT gets ``<model-name>/model.pth.tar-<epoch>``, a copy
``model-best.pth.tar`` and the ``checkpoint`` pointer (written atomically), so it can be given as
``--model-dir OUT`` or ``TRAINER.MVLPT.SOURCE_CHECKPOINT OUT``. The checkpoint also lists its
sources (``averaged_from``); no optimiser or scheduler state is kept.
"""
import argparse
import os.path as osp
import sys

import torch

from dassl.errors import CheckpointError, MissingFileError, UserError
from dassl.utils import load_checkpoint, save_checkpoint


def source_file(source, model_name, file_name):
    if osp.isfile(source):
        return source
    path = osp.join(source, model_name, file_name)
    if not osp.isfile(path):
        raise MissingFileError(f'No checkpoint at "{path}": expected RUN to be a checkpoint file or a training output '
                               f"folder holding {model_name}/{file_name} (see --model-name and --file).")
    return path


def average_state_dicts(state_dicts, paths):
    """Element-wise uniform mean of ``state_dicts`` (same keys and shapes)."""
    first, first_path = state_dicts[0], paths[0]
    for state, path in zip(state_dicts[1:], paths[1:]):
        if set(state) != set(first):
            raise CheckpointError(f'"{path}" and "{first_path}" hold different tensors: only in the first '
                                  f"{sorted(set(first) - set(state))}, only in the second {sorted(set(state) - set(first))}. "
                                  "Average runs of the same trainer and prompt settings only.")
        wrong = [k for k in first if tuple(state[k].shape) != tuple(first[k].shape)]
        if wrong:
            raise CheckpointError(f'"{path}" and "{first_path}" differ in the shapes of {wrong}: they come from '
                                  "different settings (token counts, backbone).")
    averaged = {}
    for key, value in first.items():
        total = sum(state[key].detach().to("cpu", torch.float64) for state in state_dicts)
        averaged[key] = (total / len(state_dicts)).to(value.dtype)
    return averaged


def average_checkpoints(sources, out_dir, model_name="prompt_learner", file_name="model-best.pth.tar"):
    """Average the checkpoints of ``sources`` into ``out_dir/model_name``; returns the written file."""
    if len(sources) < 1:
        raise UserError("Give at least one RUN to average.")
    paths = [source_file(source, model_name, file_name) for source in sources]
    checkpoints = [load_checkpoint(path) for path in paths]
    records = [checkpoint.get("mvlpt") for checkpoint in checkpoints]
    if any(record != records[0] for record in records):
        raise CheckpointError("The checkpoints record different prompt settings (variant, mixing or backbone): "
                              + "; ".join(f'"{p}": {r}' for p, r in zip(paths, records)))
    state = average_state_dicts([checkpoint["state_dict"] for checkpoint in checkpoints], paths)
    epoch = int(sum(int(checkpoint.get("epoch") or 0) for checkpoint in checkpoints) / len(checkpoints))
    results = [checkpoint["val_result"] for checkpoint in checkpoints if checkpoint.get("val_result") is not None]
    averaged = {"state_dict": state, "epoch": epoch, "optimizer": None, "scheduler": None,
                "val_result": sum(results) / len(results) if results else None,
                "averaged_from": [osp.abspath(path) for path in paths]}
    if records[0] is not None:
        averaged["mvlpt"] = records[0]
    folder = osp.join(out_dir, model_name)
    save_checkpoint(averaged, folder, is_best=True)
    return osp.join(folder, f"model.pth.tar-{epoch}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output folder (gets <model-name>/model-best.pth.tar)")
    parser.add_argument("runs", nargs="+", help="training output folders or checkpoint files")
    parser.add_argument("--model-name", default="prompt_learner", help="checkpoint sub-folder (default prompt_learner)")
    parser.add_argument("--file", default="model-best.pth.tar",
                        help="checkpoint file in each run (default model-best.pth.tar; e.g. model.pth.tar-200)")
    args = parser.parse_args(argv)
    try:
        path = average_checkpoints(args.runs, args.out, args.model_name, args.file)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Averaged {len(args.runs)} checkpoints into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
