#!/bin/bash
# PromptSRC cross-dataset transfer / domain generalisation, step 1: train on DATASET (imagenet in
# the paper), 16 shots, all classes, 20 epochs, prompt depth 3.
# usage: bash scripts/promptsrc/xd_train.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/xd_train.sh imagenet 1
#   CFG  configs/trainers/PromptSRC/<CFG>.yaml or a YAML path (default
#        vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets; the release's xd scripts name a
#        ..._ep5_... config it does not ship)
# Output: <OUTPUT>/<DATASET>/PromptSRC/<CFG>_16shots/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=PromptSRC CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets}
xd_train "$@"
