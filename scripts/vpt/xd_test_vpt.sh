#!/bin/bash
# VPT-deep cross-dataset and domain generalisation, step 2: evaluate the SOURCE prompts (default
# imagenet; its last epoch) on DATASET: one of the 10 other datasets (cross-dataset) or
# imagenetv2, imagenet_sketch, imagenet_a, imagenet_r (domain generalisation).
# usage: bash scripts/vpt/xd_test_vpt.sh DATASET SEED [KEY VALUE ...]   (after xd_train_vpt.sh SEED)
#   CFG  configs/trainers/VPT/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_4)
# Output: <OUTPUT>/evaluation/VPT/<CFG>_16shots/<DATASET>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=VPT CFG=${CFG:-vit_b16_c2_ep5_batch4_4}
xd_test "$@"
