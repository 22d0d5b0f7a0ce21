#!/bin/bash
# CoCoOp cross-dataset transfer, step 1: train on ImageNet (16 shots, all classes).
# usage: bash scripts/cocoop/xd_train.sh SEED
# Datasets are read from $DATA (default ./data). An existing output folder is skipped.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=CoCoOp

SEED=$1

CFG=vit_b16_c4_ep10_batch1_ctxv1
SHOTS=16
DATASET=imagenet

DIR=output/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
if [ -d "$DIR" ]; then
    echo "Results are available in ${DIR}. Skip this job"
else
    echo "Run this job and save the output to ${DIR}"
    python train.py \
    --root ${DATA} \
    --seed ${SEED} \
    --trainer ${TRAINER} \
    --dataset-config-file configs/datasets/${DATASET}.yaml \
    --config-file configs/trainers/${TRAINER}/${CFG}.yaml \
    --output-dir ${DIR} \
    DATASET.NUM_SHOTS ${SHOTS}
fi
