#!/bin/bash
# PromptSRC cross-dataset transfer / domain generalisation, step 2: evaluate the ImageNet-trained
# prompts (epoch 20, the GPA model) on DATASET, all its classes (one of the 10 other datasets, or
# imagenetv2 / imagenet_sketch / imagenet_a / imagenet_r).
# usage: bash scripts/promptsrc/xd_test.sh DATASET SEED [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/xd_test.sh caltech101 1
# Expects the output of scripts/promptsrc/xd_train.sh imagenet SEED.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=PromptSRC

DATASET=$1
SEED=$2

# The release's scripts name vit_b16_c2_ep5_batch4_4+4ctx_cross_datasets, which does not exist.
CFG=vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets
SHOTS=16
LOADEP=20

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
    --load-epoch ${LOADEP} \
    --eval-only \
    "${@:3}"
fi
