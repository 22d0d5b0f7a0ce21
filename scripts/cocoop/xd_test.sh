#!/bin/bash
# CoCoOp cross-dataset transfer / domain generalisation, step 2: evaluate the SOURCE-trained
# prompts (default imagenet; its last epoch) on another dataset, all its classes.
# usage: bash scripts/cocoop/xd_test.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/cocoop/xd_test.sh caltech101 1    (after xd_train.sh SEED)
#   CFG  as for xd_train.sh
# Output: <OUTPUT>/evaluation/CoCoOp/<CFG>_16shots/<DATASET>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=CoCoOp CFG=${CFG:-vit_b16_c4_ep10_batch1_ctxv1}
xd_test "$@"
