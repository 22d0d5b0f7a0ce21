#!/bin/bash
# VPT-deep base-to-new, step 1: train on the base half of the classes (16 shots).
# usage: bash scripts/vpt/base2new_train_vpt.sh DATASET SEED [KEY VALUE ...]
#   CFG  configs/trainers/VPT/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_4)
# Output: <OUTPUT>/base2new/train_base/<DATASET>/shots_16/VPT/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=VPT CFG=${CFG:-vit_b16_c2_ep5_batch4_4}
base2new_train "$@"
