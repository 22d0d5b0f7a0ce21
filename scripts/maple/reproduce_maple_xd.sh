#!/bin/bash
# Evaluate the released ImageNet-trained MaPLe weights on a cross-dataset target or an ImageNet
# variant, all classes.
# usage: bash scripts/maple/reproduce_maple_xd.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
#   e.g. bash scripts/maple/reproduce_maple_xd.sh caltech101 1 /path/to/maple_weights/imagenet
#   WEIGHTSPATH  holds the release's seed<SEED>/MultiModalPromptLearner/model.pth.tar-2
#   CFG          as for xd_train_maple.sh
# Output: <OUTPUT>/evaluation/MaPLe/<CFG>_16shots/<DATASET>/seed<SEED> (as xd_test_maple.sh)
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=MaPLe CFG=${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}
usage_unless 3 "$@"
use_dataset "$1"; use_config; SEED=$2; MODEL_DIR=$(abspath "$3")/seed$2; shift 3; take_overrides "$@"
evaluate "$OUTPUT/evaluation/$TRAINER/${CONFIG_TAG}_${SHOTS}shots/$DATASET_TAG/seed$SEED" "$MODEL_DIR" "$SEED"
