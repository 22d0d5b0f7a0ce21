#!/bin/bash
# IVLP base-to-new, step 1: train on the base half of the classes (16 shots).
# usage: bash scripts/independent-vlp/base2new_train_ivlp.sh DATASET SEED [KEY VALUE ...]
# Datasets are read from $DATA (default ./data); trailing KEY VALUE pairs override the config.
# An existing output folder is skipped.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
PYTHON=${PYTHON:-python}
OUTPUT=${OUTPUT:-output}  # the folder of every run
WEIGHTS=()  # $CLIP_WEIGHTS: local CLIP weights (no download)
if [ -n "${CLIP_WEIGHTS:-}" ]; then WEIGHTS=(MODEL.BACKBONE.PATH "$CLIP_WEIGHTS"); fi
TRAINER=IVLP
DATASET=$1
SEED=$2
shift 2
CFG=vit_b16_c2_ep5_batch4_2+2ctx
SHOTS=16

DIR=${OUTPUT}/base2new/train_base/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
if [ -d "$DIR" ]; then
    echo "Results are available in ${DIR}. Skip this job"
else
    echo "Run this job and save the output to ${DIR}"
    $PYTHON train.py --root ${DATA} --seed ${SEED} --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir ${DIR} DATASET.NUM_SHOTS ${SHOTS} DATASET.SUBSAMPLE_CLASSES base "${WEIGHTS[@]}" "$@"
fi
