#!/bin/bash
# CoCoOp cross-dataset transfer / domain generalisation, step 1: train on SOURCE (default
# imagenet), 16 shots, all classes.
# usage: bash scripts/cocoop/xd_train.sh SEED [KEY VALUE ...]
#   CFG  configs/trainers/CoCoOp/<CFG>.yaml or a YAML path (default vit_b16_c4_ep10_batch1_ctxv1)
# Output: <OUTPUT>/<SOURCE>/CoCoOp/<CFG>_16shots/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=CoCoOp CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
usage_unless 1 "$@"
xd_train "$SOURCE" "$@"
