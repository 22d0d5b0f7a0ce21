#!/bin/bash
# PromptSRC cross-dataset transfer / domain generalisation, step 2: evaluate the SOURCE-trained
# prompts (default imagenet; its last epoch, the GPA model) on DATASET, all its classes.
# usage: bash scripts/promptsrc/xd_test.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/xd_test.sh caltech101 1   (after xd_train.sh imagenet SEED)
#   CFG  as for xd_train.sh
# Output: <OUTPUT>/evaluation/PromptSRC/<CFG>_16shots/<DATASET>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=PromptSRC CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets}
xd_test "$@"
