#!/bin/bash
# IVLP cross-dataset and domain generalisation, step 1: train on ImageNet, 16 shots, all classes.
# usage: bash scripts/language-prompting/xd_train_lp.sh SEED [KEY VALUE ...]
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
PYTHON=${PYTHON:-python}
OUTPUT=${OUTPUT:-output}  # the folder of every run
WEIGHTS=()  # $CLIP_WEIGHTS: local CLIP weights (no download)
if [ -n "${CLIP_WEIGHTS:-}" ]; then WEIGHTS=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi
TRAINER=IVLP
SEED=$1
shift 1
CFG=vit_b16_c2_ep5_batch4_4ctx_language_only
SHOTS=16

DIR=${OUTPUT}/imagenet/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
if [ -d "$DIR" ]; then
    echo "Results are available in ${DIR}. Skip this job"
else
    $PYTHON train.py --root ${DATA} --seed ${SEED} --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/imagenet.yaml --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir ${DIR} DATASET.NUM_SHOTS ${SHOTS} "${WEIGHTS[@]}" "$@"
fi
