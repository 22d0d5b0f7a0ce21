#!/bin/bash
# VPT cross-dataset and domain generalisation, step 2: evaluate the ImageNet prompts (epoch 5) on
# DATASET: one of the 10 other datasets (cross-dataset) or imagenetv2, imagenet_sketch, imagenet_a,
# imagenet_r (domain generalisation).
# usage: bash scripts/vpt/xd_test_vpt.sh DATASET SEED [KEY VALUE ...]   (after xd_train_vpt.sh SEED)
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
PYTHON=${PYTHON:-python}
OUTPUT=${OUTPUT:-output}  # the folder of every run
WEIGHTS=()  # $CLIP_WEIGHTS: local CLIP weights (no download)
if [ -n "${CLIP_WEIGHTS:-}" ]; then WEIGHTS=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi
TRAINER=VPT
DATASET=$1
SEED=$2
shift 2
CFG=vit_b16_c2_ep5_batch4_4
SHOTS=16
LOADEP=${LOADEP:-5}

MODEL_DIR=${OUTPUT}/imagenet/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
DIR=${OUTPUT}/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${DATASET}/seed${SEED}
if [ -d "$DIR" ]; then
    echo "Results are available in ${DIR}. Skip this job"
else
    $PYTHON train.py --root ${DATA} --seed ${SEED} --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir ${DIR} --model-dir ${MODEL_DIR} --load-epoch ${LOADEP} --eval-only "${WEIGHTS[@]}" "$@"
fi
