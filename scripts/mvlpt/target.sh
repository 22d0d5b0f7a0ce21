#!/bin/bash
# MVLPT stage 2: few-shot target runs started from the averaged source prompt (source.sh), for
# 1 / 5 / 20 shots and seeds $SEEDS. Without a source (SOURCE_DIR=none) the same runs are the
# single-task baselines (CoOp / VPT / UPT with the MVLPT recipe).
# usage: bash scripts/mvlpt/target.sh DATASET [KEY VALUE ...]
#   DATASET      a stem of configs/datasets/ (e.g. elevater_cifar10), a registered name, or a YAML path
#   SHOTS_LIST   (environment) default "1 5 20"
#   SOURCES, SOURCE_SHOTS (default 16), CFG: which source run (as source.sh); or
#   SOURCE_DIR   the source checkpoint folder (default
#                $OUTPUT/mvlpt/source/<SOURCES>/shots_<SOURCE_SHOTS>/MVLPT/<CFG>/avg), or "none"
# Output: $OUTPUT/mvlpt/target/<DATASET>/shots_<K>/MVLPT/<CFG>/seed<S>
# DATA, OUTPUT, CLIP_WEIGHTS, PYTHON, OVERWRITE, SEEDS and the trailing overrides: scripts/lib/launch.sh.
set -e
source "$(dirname "$0")/../lib/launch.sh"
source "$(dirname "$0")/sources.sh"
usage_unless 1 "$@"
TRAINER=MVLPT; CFG=${CFG:-vit_b16_mupt}; use_config
use_dataset "${SOURCES:-$MVLPT_SOURCES}"
SOURCE_DIR=${SOURCE_DIR:-$OUTPUT/mvlpt/source/$DATASET_TAG/shots_${SOURCE_SHOTS:-16}/MVLPT/$CONFIG_TAG/avg}
use_dataset "$1"; shift
take_overrides "$@"
INIT=()
if [ "$SOURCE_DIR" != "none" ]; then
    [ -d "$SOURCE_DIR" ] || die "no source checkpoint in $SOURCE_DIR: run scripts/mvlpt/source.sh first, or SOURCE_DIR=none"
    INIT=(TRAINER.MVLPT.SOURCE_CHECKPOINT "$SOURCE_DIR")
fi
for K in ${SHOTS_LIST:-1 5 20}; do
    for SEED in $SEEDS; do
        train_py "$OUTPUT/mvlpt/target/$DATASET_TAG/shots_$K/MVLPT/$CONFIG_TAG/seed$SEED" "$SEED" \
            -- DATASET.NUM_SHOTS "$K" TEST.FINAL_MODEL best_val "${INIT[@]}"
    done
done
