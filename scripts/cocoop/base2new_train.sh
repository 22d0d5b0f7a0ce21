#!/bin/bash
# CoCoOp base-to-new, step 1: train on the base half of the classes (16 shots).
# usage: bash scripts/cocoop/base2new_train.sh DATASET SEED
#   e.g. bash scripts/cocoop/base2new_train.sh oxford_pets 1
# Datasets are read from $DATA (default ./data). An existing output folder is skipped.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=CoCoOp

DATASET=$1
SEED=$2

CFG=vit_b16_c4_ep10_batch1_ctxv1
SHOTS=16

DIR=output/base2new/train_base/${DATASET}/shots_${SHOTS}/${TRAINER}/${CFG}/seed${SEED}
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
    DATASET.NUM_SHOTS ${SHOTS} \
    DATASET.SUBSAMPLE_CLASSES base
fi
