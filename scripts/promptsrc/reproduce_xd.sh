#!/bin/bash
# PromptSRC: evaluate released ImageNet weights on DATASET (cross-dataset transfer or domain
# generalisation), all classes.
# usage: bash scripts/promptsrc/reproduce_xd.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/reproduce_xd.sh food101 1 /path/to/imagenet
#   WEIGHTSPATH  holds seed<SEED>/VLPromptLearner/model.pth.tar-20, as the release ships it
#   CFG          as for xd_train.sh
# Output: <OUTPUT>/evaluation/PromptSRC/<CFG>_16shots/<DATASET>/seed<SEED> (as xd_test.sh)
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=PromptSRC CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets}
usage_unless 3 "$@"
use_dataset "$1"; use_config; SEED=$2; MODEL_DIR=$(abspath "$3")/seed$2; shift 3; take_overrides "$@"
evaluate "$OUTPUT/evaluation/$TRAINER/${CONFIG_TAG}_${SHOTS}shots/$DATASET_TAG/seed$SEED" "$MODEL_DIR" "$SEED"
