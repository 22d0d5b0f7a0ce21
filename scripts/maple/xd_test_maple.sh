#!/bin/bash
# MaPLe cross-dataset transfer / domain generalisation, step 2: evaluate the SOURCE-trained
# prompts (default imagenet; its last epoch) on another dataset, all its classes: the 10
# cross-dataset targets and imagenetv2, imagenet_sketch, imagenet_a, imagenet_r.
# usage: bash scripts/maple/xd_test_maple.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/maple/xd_test_maple.sh caltech101 1   (after xd_train_maple.sh imagenet SEED)
#   CFG  as for xd_train_maple.sh
# Output: <OUTPUT>/evaluation/MaPLe/<CFG>_16shots/<DATASET>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=MaPLe CFG=${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}
xd_test "$@"
