#!/bin/bash
# MaPLe cross-dataset transfer / domain generalisation, step 1: train on the source dataset
# (imagenet in the paper), 16 shots, all classes, 2 epochs, prompt depth 3.
# usage: bash scripts/maple/xd_train_maple.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/maple/xd_train_maple.sh imagenet 1
#   CFG  configs/trainers/MaPLe/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_2ctx_cross_datasets)
# Output: <OUTPUT>/<DATASET>/MaPLe/<CFG>_16shots/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=MaPLe CFG=${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}
xd_train "$@"
