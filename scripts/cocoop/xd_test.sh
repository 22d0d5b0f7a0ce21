#!/bin/bash
# CoCoOp cross-dataset transfer / domain generalisation, step 2: evaluate the
# ImageNet-trained prompts (epoch 10) on another dataset, all its classes.
# usage: bash scripts/cocoop/xd_test.sh DATASET SEED
#   e.g. bash scripts/cocoop/xd_test.sh caltech101 1
# Expects the output of scripts/cocoop/xd_train.sh for the same SEED.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=CoCoOp

DATASET=$1
SEED=$2

CFG=vit_b16_c4_ep10_batch1_ctxv1
SHOTS=16

DIR=output/evaluation/${TRAINER}/${CFG}_${SHOTS}shots/${DATASET}/seed${SEED}
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
    --model-dir output/imagenet/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED} \
    --load-epoch 10 \
    --eval-only
fi
