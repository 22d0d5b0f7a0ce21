#!/bin/bash
# MaPLe base-to-new, step 2: evaluate the base-trained prompts (epoch 5) on the new half of the classes.
# usage: bash scripts/maple/base2new_test_maple.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/maple/base2new_test_maple.sh oxford_pets 1
# Expects the output of scripts/maple/base2new_train_maple.sh for the same DATASET and SEED.
# An evaluation whose log already holds an accuracy is skipped (delete its folder to rerun).
# Environment: DATA, OUTPUT, CLIP_WEIGHTS, PYTHON as for training; LOADEP (the epoch to load).
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
LOADEP=${LOADEP:-5}
SUB=new

COMMON_DIR=${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
MODEL_DIR=${OUTPUT}/base2new/train_base/${COMMON_DIR}
DIR=${OUTPUT}/base2new/test_${SUB}/${COMMON_DIR}
if grep -qs "^\* accuracy" "${DIR}"/log.txt*; then
    echo "Results are available in ${DIR}. Skip this job"
    exit 0
fi
echo "Evaluating ${MODEL_DIR} (epoch ${LOADEP}) on the ${SUB} classes; output in ${DIR}"
${PYTHON} train.py \
    --root ${DATA} \
    --seed ${SEED} \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir ${DIR} \
    --model-dir ${MODEL_DIR} \
    --load-epoch ${LOADEP} \
    --eval-only \
    DATASET.NUM_SHOTS ${SHOTS} \
    DATASET.SUBSAMPLE_CLASSES ${SUB} \
    "${WEIGHTS[@]}" "$@"
