#!/bin/bash
# MaPLe base-to-new, step 1: train on the base half of the classes (16 shots, 5 epochs).
# usage: bash scripts/maple/base2new_train_maple.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/maple/base2new_train_maple.sh oxford_pets 1
# Environment: DATA (datasets, default ./data), OUTPUT (default output), CLIP_WEIGHTS (local CLIP
# weights), PYTHON. Trailing KEY VALUE pairs go to train.py.
# A finished run (its log has the final "Elapsed:" line) is skipped; an unfinished one resumes from its
# checkpoints, as the release's script does.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
PYTHON=${PYTHON:-python}
OUTPUT=${OUTPUT:-output}  # the folder of every run
WEIGHTS=()  # $CLIP_WEIGHTS: local CLIP weights (MODEL.BACKBONE.PATH, no download)
if [ -n "${CLIP_WEIGHTS:-}" ]; then WEIGHTS=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi
TRAINER=MaPLe

DATASET=$1
SEED=$2
shift 2

CFG=vit_b16_c2_ep5_batch4_2ctx
SHOTS=16

DIR=${OUTPUT}/base2new/train_base/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
if grep -qs "^Elapsed:" "${DIR}"/log.txt*; then  # a finished run
    echo "Results are available in ${DIR}. Skip this job"
    exit 0
fi
if [ -d "$DIR" ]; then
    echo "Resuming the run in ${DIR}"
else
    echo "Run this job and save the output to ${DIR}"
fi
${PYTHON} train.py \
    --root ${DATA} \
    --seed ${SEED} \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir ${DIR} \
    DATASET.NUM_SHOTS ${SHOTS} \
    DATASET.SUBSAMPLE_CLASSES base \
    "${WEIGHTS[@]}" "$@"
