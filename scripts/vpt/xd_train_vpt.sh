#!/bin/bash
# VPT-deep cross-dataset and domain generalisation, step 1: train on SOURCE (default imagenet),
# 16 shots, all classes.
# usage: bash scripts/vpt/xd_train_vpt.sh SEED [KEY VALUE ...]
#   CFG  configs/trainers/VPT/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_4)
# Output: <OUTPUT>/<SOURCE>/VPT/<CFG>_16shots/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=VPT CFG=${CFG:-vit_b16_c2_ep5_batch4_4}
usage_unless 1 "$@"
xd_train "$SOURCE" "$@"
