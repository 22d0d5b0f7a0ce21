#!/bin/bash
# IVLP cross-dataset and domain generalisation, step 2: evaluate the SOURCE prompts (default
# imagenet; its last epoch) on DATASET: one of the 10 other datasets (cross-dataset) or
# imagenetv2, imagenet_sketch, imagenet_a, imagenet_r (domain generalisation).
# usage: bash scripts/independent-vlp/xd_test_ivlp.sh DATASET SEED [KEY VALUE ...]   (after xd_train_ivlp.sh SEED)
#   CFG  configs/trainers/IVLP/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_2+2ctx)
# Output: <OUTPUT>/evaluation/IVLP/<CFG>_16shots/<DATASET>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=IVLP CFG=${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}
xd_test "$@"
