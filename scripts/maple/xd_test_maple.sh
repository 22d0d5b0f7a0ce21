#!/bin/bash
# MaPLe cross-dataset transfer / domain generalisation, step 2: evaluate the ImageNet-trained
# prompts (epoch 2) on another dataset, all its classes: the 10 cross-dataset targets and the
# 4 ImageNet variants (imagenetv2, imagenet_sketch, imagenet_a, imagenet_r).
# usage: bash scripts/maple/xd_test_maple.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/maple/xd_test_maple.sh caltech101 1
# Expects the output of `scripts/maple/xd_train_maple.sh imagenet SEED`.
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

CFG=vit_b16_c2_ep5_batch4_2ctx_cross_datasets
SHOTS=16
LOADEP=${LOADEP:-2}

MODEL_DIR=${OUTPUT}/imagenet/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
DIR=${OUTPUT}/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${DATASET}/seed${SEED}
if grep -qs "^\* accuracy" "${DIR}"/log.txt*; then
    echo "Results are available in ${DIR}. Skip this job"
    exit 0
fi
echo "Evaluating ${MODEL_DIR} (epoch ${LOADEP}) on ${DATASET}; output in ${DIR}"
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
    "${WEIGHTS[@]}" "$@"
