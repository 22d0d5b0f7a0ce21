#!/bin/bash
# PromptSRC: evaluate released ImageNet weights (epoch 20) on DATASET (cross-dataset transfer or
# domain generalisation).
# usage: bash scripts/promptsrc/reproduce_xd.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/reproduce_xd.sh food101 1 /path/to/imagenet
#   WEIGHTSPATH holds seed<SEED>/VLPromptLearner/model.pth.tar-20, as the release ships it.
# An existing output folder is skipped.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=PromptSRC

DATASET=$1
SEED=$2
WEIGHTSPATH=$3

CFG=vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets
SHOTS=16
LOADEP=20

MODEL_DIR=${WEIGHTSPATH}/seed${SEED}
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
    --model-dir ${MODEL_DIR} \
    --load-epoch ${LOADEP} \
    --eval-only \
    DATASET.NUM_SHOTS ${SHOTS} \
    "${@:4}"
fi
