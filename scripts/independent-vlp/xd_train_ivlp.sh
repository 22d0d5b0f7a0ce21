#!/bin/bash
# IVLP cross-dataset and domain generalisation, step 1: train on SOURCE (default imagenet),
# 16 shots, all classes.
# usage: bash scripts/independent-vlp/xd_train_ivlp.sh SEED [KEY VALUE ...]
#   CFG  configs/trainers/IVLP/<CFG>.yaml or a YAML path (default vit_b16_c2_ep5_batch4_2+2ctx)
# Output: <OUTPUT>/<SOURCE>/IVLP/<CFG>_16shots/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=IVLP CFG=${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}
usage_unless 1 "$@"
xd_train "$SOURCE" "$@"
