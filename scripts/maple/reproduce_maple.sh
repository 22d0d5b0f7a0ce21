#!/bin/bash
# Evaluate the released MaPLe base-to-new weights on the base and the new classes.
# usage: bash scripts/maple/reproduce_maple.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
#   e.g. bash scripts/maple/reproduce_maple.sh oxford_pets 1 /path/to/maple_weights/oxford_pets
#   WEIGHTSPATH  the release's folder of one dataset: WEIGHTSPATH/base/seed<SEED>/
#                MultiModalPromptLearner/model.pth.tar-5 (a whole-model checkpoint: its prompts are
#                loaded and its frozen CLIP is checked against MODEL.BACKBONE)
#   CFG          as for base2new_train_maple.sh
# Output: <OUTPUT>/base2new/test_{base,new}/<DATASET>/shots_16/MaPLe/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=MaPLe CFG=${CFG:-vit_b16_c2_ep5_batch4_2ctx}
usage_unless 3 "$@"
use_dataset "$1"; use_config; SEED=$2; MODEL_DIR=$(abspath "$3")/base/seed$2; shift 3; take_overrides "$@"
for SUB in base new; do
    evaluate "$OUTPUT/base2new/test_$SUB/$DATASET_TAG/shots_$SHOTS/$TRAINER/$CONFIG_TAG/seed$SEED" "$MODEL_DIR" "$SEED" \
        DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES "$SUB"
done
