#!/bin/bash
# MaPLe base-to-new, step 1: train on the base half of the classes (16 shots, 5 epochs).
# usage: bash scripts/maple/base2new_train_maple.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/maple/base2new_train_maple.sh oxford_pets 1
#   CFG  configs/trainers/MaPLe/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_2ctx)
# Output: <OUTPUT>/base2new/train_base/<DATASET>/shots_16/MaPLe/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=MaPLe CFG=${CFG:-vit_b16_c2_ep5_batch4_2ctx}
base2new_train "$@"
