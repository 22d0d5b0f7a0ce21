#!/bin/bash
# CoCoOp base-to-new, step 1: train on the base half of the classes (16 shots).
# usage: bash scripts/cocoop/base2new_train.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/cocoop/base2new_train.sh oxford_pets 1
#   CFG  configs/trainers/CoCoOp/<CFG>.yaml or a YAML path (default vit_b16_c4_ep10_batch1_ctxv1)
# Output: <OUTPUT>/base2new/train_base/<DATASET>/shots_16/CoCoOp/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=CoCoOp CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
base2new_train "$@"
