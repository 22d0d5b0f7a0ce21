#!/bin/bash
# PromptSRC: evaluate released base-to-new weights on the base and the new classes.
# usage: bash scripts/promptsrc/reproduce_base2novel_setting.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/reproduce_base2novel_setting.sh imagenet 1 /path/to/imagenet
#   WEIGHTSPATH  the unzipped folder of the release: base/seed<SEED>/VLPromptLearner/model.pth.tar-20
#                (the whole model; its prompts are taken, docs/baselines.md)
#   CFG          as for base2new_train.sh
# Output: <OUTPUT>/base2new/test_{base,new}/<DATASET>/shots_16/PromptSRC/<CFG>/seed<SEED>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, LOADEP and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
TRAINER=PromptSRC CFG=${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}
usage_unless 3 "$@"
use_dataset "$1"; use_config; SEED=$2; MODEL_DIR=$(abspath "$3")/base/seed$2; shift 3; take_overrides "$@"
for SUB in base new; do
    evaluate "$OUTPUT/base2new/test_$SUB/$DATASET_TAG/shots_$SHOTS/$TRAINER/$CONFIG_TAG/seed$SEED" "$MODEL_DIR" "$SEED" \
        DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES "$SUB"
done
