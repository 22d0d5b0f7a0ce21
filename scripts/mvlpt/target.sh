#!/bin/bash
# MVLPT stage 2: few-shot target runs started from the averaged source prompt (source.sh), for
# 1 / 5 / 20 shots and seeds $SEEDS. Without a source (SOURCE_DIR=none) the same runs are the
# single-task baselines (CoOp / VPT / UPT with the MVLPT recipe).
# usage: bash scripts/mvlpt/target.sh DATASET [KEY VALUE ...]
#   DATASET    a DATASET.NAME with a YAML in configs/datasets (e.g. OxfordPets)
# Environment (common.sh): SHOTS_LIST (default "1 5 20"), SOURCES, SOURCE_SHOTS (default 16),
# SOURCE_DIR (default $OUTPUT/mvlpt/source/<SOURCES>/shots_<SOURCE_SHOTS>/MVLPT/<CFG>/avg), CFG, DATA,
# OUTPUT, CLIP_WEIGHTS, SEEDS, PYTHON.
# Output: $OUTPUT/mvlpt/target/<DATASET>/shots_<K>/MVLPT/<CFG>/seed<S>
set -e
source "$(dirname "$0")/common.sh"
if [ $# -lt 1 ]; then awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 2; fi
DATASET=$1
shift
SHOTS_LIST=${SHOTS_LIST:-1 5 20}
SOURCES=${SOURCES:-$MVLPT_SOURCES}
SOURCE_DIR=${SOURCE_DIR:-${OUTPUT}/mvlpt/source/${SOURCES}/shots_${SOURCE_SHOTS:-16}/MVLPT/${CFG}/avg}
INIT=()
if [ "$SOURCE_DIR" != "none" ]; then INIT=(TRAINER.MVLPT.SOURCE_CHECKPOINT "$SOURCE_DIR"); fi
YAML=$(dataset_yaml "$DATASET")
for SHOTS in $SHOTS_LIST; do
    for SEED in $SEEDS; do
        DIR=${OUTPUT}/mvlpt/target/${DATASET}/shots_${SHOTS}/MVLPT/${CFG}/seed${SEED}
        if is_finished "$DIR"; then echo "Results are available in ${DIR}. Skip this job"; continue; fi
        echo "Run this job and save the output to ${DIR}"
        $PYTHON train.py --root "$DATA" --seed "$SEED" --trainer MVLPT \
            --dataset-config-file "$YAML" --config-file configs/trainers/MVLPT/${CFG}.yaml --output-dir "$DIR" \
            DATASET.NUM_SHOTS "$SHOTS" TEST.FINAL_MODEL best_val "${INIT[@]}" "${BACKBONE[@]}" "$@"
    done
done
