#!/bin/bash
# PromptSRC: evaluate released few-shot weights (epoch 50) for SHOTS shots, seeds 1-3.
# usage: bash scripts/promptsrc/reproduce_few_shot.sh DATASET SHOTS WEIGHTSPATH [KEY VALUE ...]
#   e.g. bash scripts/promptsrc/reproduce_few_shot.sh food101 4 /path/to/food101
#   WEIGHTSPATH holds <SHOTS>shot/seed<SEED>/VLPromptLearner/model.pth.tar-50, as the release ships it.
# Existing output folders are skipped.
set -e
cd "$(dirname "$0")/../.."

DATA=${DATA:-./data}
TRAINER=PromptSRC

DATASET=$1
SHOTS=$2
WEIGHTSPATH=$3

CFG=vit_b16_c2_ep50_batch4_4+4ctx_few_shot
LOADEP=50

for SEED in 1 2 3
do
    MODEL_DIR=${WEIGHTSPATH}/${SHOTS}shot/seed${SEED}
    DIR=output/few_shot/${DATASET}/${TRAINER}/${CFG}_${SHOTS}shots/seed${SEED}
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
done
