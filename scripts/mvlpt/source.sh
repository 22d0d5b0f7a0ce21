#!/bin/bash
# MVLPT stage 1: multitask source training on several datasets at once, seeds $SEEDS, then the
# seeds' prompts averaged (tools/average_checkpoints.py) into .../avg, the target runs' source.
# usage: bash scripts/mvlpt/source.sh [SHOTS] [KEY VALUE ...]
#   SHOTS      shots per class of every source (default 16)
#   KEY VALUE  overrides, e.g. DATALOADER.TRAIN_X.SAMPLER TaskBalancedSampler, DATASET.LABEL_SPACE per_task
# Environment (common.sh): SOURCES (comma-separated DATASET.NAMEs; default the release's 11 CoOp
# datasets), CFG (vit_b16_mcoop | vit_b16_mvpt | vit_b16_mupt), DATA, OUTPUT, CLIP_WEIGHTS, SEEDS, PYTHON.
# Model selection: best_val on the mean per-task val accuracy; ImageNet's val is a held-out part of
# train (DATASET.VAL_SPLIT train_holdout), never its test images.
# Output: $OUTPUT/mvlpt/source/<SOURCES>/shots_<K>/MVLPT/<CFG>/seed<S> and .../<CFG>/avg
set -e
source "$(dirname "$0")/common.sh"
SHOTS=${1:-16}
if [ $# -gt 0 ]; then shift; fi
SOURCES=${SOURCES:-$MVLPT_SOURCES}
YAML=$(dataset_yaml "$SOURCES")
BASE=${OUTPUT}/mvlpt/source/${SOURCES}/shots_${SHOTS}/MVLPT/${CFG}
RUNS=()
for SEED in $SEEDS; do
    DIR=${BASE}/seed${SEED}
    RUNS+=("$DIR")
    if is_finished "$DIR"; then echo "Results are available in ${DIR}. Skip this job"; continue; fi
    echo "Run this job and save the output to ${DIR}"
    $PYTHON train.py --root "$DATA" --seed "$SEED" --trainer MVLPT \
        --dataset-config-file "$YAML" --config-file configs/trainers/MVLPT/${CFG}.yaml --output-dir "$DIR" \
        DATASET.NAME "$SOURCES" DATASET.NUM_SHOTS "$SHOTS" DATASET.LABEL_SPACE concatenated \
        DATASET.VAL_SPLIT train_holdout TEST.FINAL_MODEL best_val "${BACKBONE[@]}" "$@"
done
$PYTHON -m tools.average_checkpoints "${BASE}/avg" "${RUNS[@]}"
