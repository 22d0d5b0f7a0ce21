#!/bin/bash
# MVLPT stage 1: multitask source training on several datasets at once, seeds $SEEDS, then the
# seeds' prompts averaged (tools/average_checkpoints.py) into .../avg, the target runs' source.
# usage: bash scripts/mvlpt/source.sh [SHOTS] [KEY VALUE ...]
#   SHOTS      shots per class of every source (default 16)
#   KEY VALUE  overrides, e.g. DATALOADER.TRAIN_X.SAMPLER TaskBalancedSampler, DATASET.LABEL_SPACE per_task
#   SOURCES    (environment) the source datasets, "A,B,..." in any form a launcher takes (default the
#              release's 11 CoOp datasets, 2,191 classes, in its order: the logit columns' order)
#   CFG        (environment) vit_b16_mcoop | vit_b16_mvpt | vit_b16_mupt (default), or a YAML path
# Model selection: best_val on the mean per-task val accuracy; val is a held-out part of train
# (DATASET.VAL_SPLIT train_holdout), so ImageNet's val is never its test images.
# Output: $OUTPUT/mvlpt/source/<SOURCES>/shots_<K>/MVLPT/<CFG>/seed<S> and .../<CFG>/avg
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, SEEDS and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
source "$(dirname "$0")/sources.sh"
SHOTS=16
if [ $# -gt 0 ] && [[ "$1" != *.* ]]; then SHOTS=$1; shift; fi
use_dataset "${SOURCES:-$MVLPT_SOURCES}"
TRAINER=MVLPT; CFG=${CFG:-vit_b16_mupt}; use_config
take_overrides "$@"
BASE=$OUTPUT/mvlpt/source/$DATASET_TAG/shots_$SHOTS/MVLPT/$CONFIG_TAG
RUNS=()
for SEED in $SEEDS; do
    RUNS+=("$BASE/seed$SEED")
    train_py "$BASE/seed$SEED" "$SEED" -- DATASET.NUM_SHOTS "$SHOTS" DATASET.LABEL_SPACE concatenated \
        DATASET.VAL_SPLIT train_holdout TEST.FINAL_MODEL best_val
    require_finished "$BASE/seed$SEED" "the source training of seed $SEED did not finish"
done
echo "+ $PYTHON -m tools.average_checkpoints $BASE/avg ${RUNS[*]}"
"$PYTHON" -m tools.average_checkpoints "$BASE/avg" "${RUNS[@]}"
